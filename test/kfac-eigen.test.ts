// The curvature block's eigendecomposition seam (src/kfac/blocks.ts): damped inverses built
// from float64 eigendecompositions of a factor snapshot (what src/async's matrix service
// computes off the main thread) equal the block's own damped inverses (the explicit/Schur path
// of src/layers/dense.ts), with the same pi-adjusted damping; a cached inverse is reused.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { eigh } from '../src/linalg/index.js';
import { DenseBlock } from '../src/layers/dense.js';
import { KroneckerFactoredBlock, type FactorEigen, type FactorSnapshot } from '../src/kfac/blocks.js';
import type { SlotState } from '../src/optim/base.js';

beforeAll(async () => {
  await initBackend('cpu');
});

/** Slots in a Map (the optimizer's are tf.Variables; copies here). */
function mapSlots(): SlotState {
  const values = new Map<string, tf.Tensor>();
  return {
    step: 0,
    get: (slot) => values.get(slot),
    set: (slot, value) => {
      values.get(slot)?.dispose();
      values.set(slot, tf.keep(tf.clone(value)));
    },
    has: (slot) => values.has(slot),
    slots: () => [...values.keys()],
  };
}

function eigenOf(s: FactorSnapshot): FactorEigen {
  const { values, vectors } = eigh({ rows: s.n, cols: s.n, data: s.data });
  return { n: s.n, values, vectors: vectors.data };
}

function maxRel(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]! / tf.max(tf.abs(b)).dataSync()[0]!);
}

describe('K-FAC block: inverses from precomputed eigendecompositions', () => {
  it('equal the explicit damped inverses, for several dampings, and the cache is reused', () => {
    const kernel = tf.variable(tf.zeros([6, 4]));
    const bias = tf.variable(tf.zeros([4]));
    const slots = mapSlots();
    const block = new KroneckerFactoredBlock(new DenseBlock({ name: 'd', kernel, bias }), () => slots);
    expect(block.factorSnapshot()).toBeUndefined();
    tf.tidy(() => {
      const a = tf.randomNormal([10, 6], 0, 1, 'float32', 1);
      const ds = tf.randomNormal([10, 4], 0, 0.1, 'float32', 2) as tf.Tensor2D;
      block.updateCurvatureEstimate(a, [ds], 0.95, true);
    });
    const snap = block.factorSnapshot()!;
    expect([snap.A.n, snap.G.n]).toEqual([7, 4]);
    const eigen = { A: eigenOf(snap.A), G: eigenOf(snap.G) };
    const { A, G } = block.factors()!;
    for (const lambda of [1e-3, 0.1, 3]) {
      tf.tidy(() => {
        const fromEigen = block.updateCache(lambda, true, 0, 1, eigen)!;
        const explicit = DenseBlock.dampedInverses(A, G, lambda);
        expect(maxRel(fromEigen.Ainv as tf.Tensor, explicit.Ainv as tf.Tensor)).toBeLessThan(1e-4);
        expect(maxRel(fromEigen.Ginv as tf.Tensor, explicit.Ginv as tf.Tensor)).toBeLessThan(1e-4);
        // Not due: the cached inverse comes back (the damping is not re-applied).
        const cached = block.updateCache(lambda * 10, false, 0, 1)!;
        expect(maxRel(cached.Ainv as tf.Tensor, fromEigen.Ainv as tf.Tensor)).toBe(0);
        DenseBlock.disposeInverse(explicit.Ainv);
        DenseBlock.disposeInverse(explicit.Ginv);
      });
    }
    tf.dispose([kernel, bias, ...slots.slots().map((s) => slots.get(s)!)]);
  });
});
