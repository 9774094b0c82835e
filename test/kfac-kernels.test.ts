// K-FAC's fast paths against straightforward references (cpu backend):
// - the damped factor inverse on a float64 leaf (n <= LEAF, src/linalg's kernels) and through
//   the Schur recursion with float64 leaves matches ml-matrix's float64 inverse; a matrix that
//   is not positive definite throws instead of being jittered;
// - `projectionSets` (one ã V product shared by several cotangent sets) equals `projections`
//   per set, and both equal the per-example sums a_i^T V ds_i.
import * as tf from '@tensorflow/tfjs';
import { inverse } from 'ml-matrix';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { toMatrix, maxRelDiff } from './helpers/matrix.js';
import '../src/autodiff/index.js';
import { DenseBlock } from '../src/layers/dense.js';
import { LEAF, spdInverse } from '../src/layers/inverse.js';

beforeAll(async () => {
  await initBackend('cpu');
});

function dampedFactor(n: number, seed: number, damping: number): tf.Tensor2D {
  return tf.tidy(() => {
    const r = tf.randomNormal([n, Math.ceil(n / 2)], 0, 1, 'float32', seed);
    return tf.add(tf.div(tf.matMul(r, tf.transpose(r)), Math.ceil(n / 2)), tf.mul(tf.eye(n), damping)) as tf.Tensor2D;
  });
}

describe('damped factor inverse', () => {
  it.each([
    ['a float64 leaf', LEAF - 1],
    ['exactly LEAF', LEAF],
    ['the Schur recursion', LEAF + 37],
  ])('%s (n = %i) matches a float64 inverse and is symmetric', (_, n) => {
    const M = dampedFactor(n, 3 + n, 0.05);
    const inv = spdInverse(M);
    const X = toMatrix(inv);
    const err = maxRelDiff(X, inverse(toMatrix(M)));
    console.log(`damped inverse n=${n}: max relative error ${err.toExponential(2)}`);
    expect(err).toBeLessThan(n <= LEAF ? 1e-5 : 1e-3);
    expect(maxRelDiff(X.transpose(), X)).toBeLessThan(1e-6);
    tf.dispose([M, inv]);
  });

  it('throws on a matrix that is not positive definite (no silent jitter)', () => {
    const M = tf.tidy(() => tf.sub(dampedFactor(20, 5, 0), tf.mul(tf.eye(20), 100))) as tf.Tensor2D;
    expect(() => spdInverse(M)).toThrow(/not positive definite/);
    M.dispose();
  });
});

describe('quadratic-model projections', () => {
  it('projectionSets shares ã V across cotangent sets and equals projections and a_i^T V ds_i', () => {
    const [n, fanIn, fanOut] = [7, 5, 3];
    const kernel = tf.variable(tf.randomNormal([fanIn, fanOut], 0, 1, 'float32', 1));
    const bias = tf.variable(tf.randomNormal([fanOut], 0, 1, 'float32', 2));
    const block = new DenseBlock({ name: 'l', kernel, bias });
    const a = tf.randomNormal([n, fanIn], 0, 1, 'float32', 3) as tf.Tensor2D;
    const aHom = block.homogeneous(a);
    const V = tf.randomNormal([fanIn + 1, fanOut], 0, 1, 'float32', 4) as tf.Tensor2D;
    const ds = [5, 6, 7].map((s) => tf.randomNormal([n, fanOut], 0, 1, 'float32', s) as tf.Tensor2D);
    const sets = block.projectionSets(aHom, V, ds);
    expect(sets).toHaveLength(ds.length);
    const A = toMatrix(aHom);
    const Vm = toMatrix(V);
    ds.forEach((d, k) => {
      const single = block.projections(aHom, V, d).dataSync();
      const shared = sets[k]!.dataSync();
      const D = toMatrix(d);
      for (let i = 0; i < n; i++) {
        const ref = A.getRowVector(i).mmul(Vm).mmul(D.getRowVector(i).transpose()).get(0, 0);
        expect(shared[i]).toBeCloseTo(ref, 4);
        expect(shared[i]).toBe(single[i]);
      }
    });
    // The stacked form gives the same projections.
    const stack = tf.stack(ds) as tf.Tensor3D;
    const stacked = block.projectionStack(aHom, V, stack);
    expect(stacked.shape).toEqual([ds.length, n]);
    const st = stacked.dataSync();
    ds.forEach((_, k) => {
      const shared = sets[k]!.dataSync();
      for (let i = 0; i < n; i++) expect(st[k * n + i]).toBeCloseTo(shared[i]!, 5);
    });
    tf.dispose([kernel, bias, a, aHom, V, ...ds, ...sets, stack, stacked]);
  });
});
