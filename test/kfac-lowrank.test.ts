// Low-rank-plus-tail factor inverses (K-FAC's factorRank) against float64 references built
// with ml-matrix (cpu backend):
// - orthonormalisation of independent and dependent columns;
// - a factor of rank below r: the low-rank form is the exact damped inverse;
// - a full-rank factor with a spectral gap: equals the formula from exact eigenpairs, and is
//   never larger than the exact damped inverse (conservative tail);
// - K-FAC with factorRank on a network whose factors have rank <= batch: the same step as the
//   exact inverses; with full-rank factors it still trains, restores and does not leak.
import * as tf from '@tensorflow/tfjs';
import { EigenvalueDecomposition, Matrix, inverse } from 'ml-matrix';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { toMatrix, maxRelDiff } from './helpers/matrix.js';
import '../src/autodiff/index.js';
import { KFAC } from '../optimizers/kfac.js';
import { applyLeft, applyRight, lowRankDampedInverse, orthonormalColumns, useLowRank } from '../src/layers/lowrank.js';
import { seededRandom } from './helpers/fd.js';

beforeAll(async () => {
  await initBackend('cpu');
});

/** A random orthogonal n x n matrix (QR of a Gaussian-like matrix, float64). */
function orthogonal(n: number, seed: number): Matrix {
  const rand = seededRandom(seed);
  const q = orthonormalColumns(
    Float64Array.from({ length: n * n }, () => rand() - 0.5),
    n,
    n,
  );
  return new Matrix(Array.from({ length: n }, (_, i) => Array.from(q.subarray(i * n, (i + 1) * n))));
}

/** Q diag(s) Q^T. */
function withSpectrum(Q: Matrix, s: number[]): Matrix {
  return Q.mmul(Matrix.diag(s)).mmul(Q.transpose());
}

describe('orthonormalColumns', () => {
  it('returns orthonormal columns spanning independent input columns, and completes dependent ones', () => {
    const rand = seededRandom(3);
    const n = 30;
    const k = 6;
    const y = Float64Array.from({ length: n * k }, () => rand() - 0.5);
    for (let i = 0; i < n; i++) {
      y[i * k + 3] = 2 * y[i * k + 1]!; // column 3 depends on column 1
      y[i * k + 5] = 0; // column 5 vanishes
    }
    const q = new Matrix(
      Array.from({ length: n }, (_, i) => Array.from(orthonormalColumns(y, n, k).subarray(i * k, (i + 1) * k))),
    );
    const gram = q.transpose().mmul(q);
    expect(maxRelDiff(gram, Matrix.eye(k))).toBeLessThan(1e-12);
    // The first column is the normalised input column.
    const c0 = Array.from({ length: n }, (_, i) => y[i * k]!);
    const norm = Math.hypot(...c0);
    for (let i = 0; i < n; i++) expect(q.get(i, 0)).toBeCloseTo(c0[i]! / norm, 12);
  });
});

describe('lowRankDampedInverse', () => {
  it('is the exact damped inverse when the factor has rank below r', () => {
    const n = 40;
    const Q = orthogonal(n, 5);
    const s = Array.from({ length: n }, (_, i) => (i < 5 ? 10 / (i + 1) : 0));
    const M = withSpectrum(Q, s);
    const d = 0.05;
    const inv = lowRankDampedInverse(tf.tensor2d(M.to2DArray()), d, 8);
    expect(Array.from(inv.values.subarray(0, 5)).map((v, i) => v / s[i]!)).toEqual(
      s.slice(0, 5).map(() => expect.closeTo(1, 4)),
    );
    const exact = inverse(M.clone().add(Matrix.eye(n).mul(d)));
    const rand = seededRandom(9);
    const V = new Matrix(Array.from({ length: n }, () => Array.from({ length: 7 }, () => rand() - 0.5)));
    const left = toMatrix(applyLeft(inv, tf.tensor2d(V.to2DArray())));
    const right = toMatrix(applyRight(inv, tf.tensor2d(V.transpose().to2DArray())));
    expect(maxRelDiff(left, exact.mmul(V))).toBeLessThan(1e-4);
    expect(maxRelDiff(right, V.transpose().mmul(exact))).toBeLessThan(1e-4);
  });

  it('matches the formula from exact eigenpairs for a full-rank factor, and never exceeds the exact inverse', () => {
    const n = 60;
    const r = 10;
    const Q = orthogonal(n, 6);
    // Top 10 eigenvalues 50..5, then a gap down to a tail in [0.01, 0.5].
    const s = Array.from({ length: n }, (_, i) => (i < r ? 50 - 5 * i : 0.5 * 0.93 ** (i - r)));
    const M = withSpectrum(Q, s);
    const d = 0.1;
    const inv = lowRankDampedInverse(tf.tensor2d(M.to2DArray()), d, r, { iterations: 4, seed: 2 });
    // Reference: exact top-r eigenvectors from ml-matrix.
    const evd = new EigenvalueDecomposition(M, { assumeSymmetric: true });
    const order = evd.realEigenvalues.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0]);
    const U = new Matrix(n, r);
    order.slice(0, r).forEach(([, idx], j) => U.setColumn(j, evd.eigenvectorMatrix.getColumn(idx)));
    const sr = order[r - 1]![0];
    const t = 1 / (sr + d);
    const coef = order.slice(0, r).map(([v]) => 1 / (v + d) - t);
    const ref = Matrix.eye(n)
      .mul(t)
      .add(U.mmul(Matrix.diag(coef)).mmul(U.transpose()));
    const P = toMatrix(applyLeft(inv, tf.eye(n) as tf.Tensor2D));
    expect(maxRelDiff(P, ref)).toBeLessThan(1e-4);
    for (let i = 0; i < r; i++) expect(inv.values[i]! / s[i]!).toBeCloseTo(1, 4);
    // Conservative tail: exact^-1 - P is positive semidefinite.
    const gap = inverse(M.clone().add(Matrix.eye(n).mul(d))).sub(P);
    const sym = gap.add(gap.transpose()).mul(0.5);
    const minEig = Math.min(...new EigenvalueDecomposition(sym, { assumeSymmetric: true }).realEigenvalues);
    expect(minEig).toBeGreaterThan(-1e-4 * t);
  });

  it('warm-starts from the previous basis and names bad input', () => {
    const n = 50;
    const Q = orthogonal(n, 8);
    const s = Array.from({ length: n }, (_, i) => 10 * 0.8 ** i);
    const M = tf.tensor2d(withSpectrum(Q, s).to2DArray());
    const cold = lowRankDampedInverse(M, 0.01, 6, { iterations: 6 });
    const warm = lowRankDampedInverse(M, 0.01, 6, { basis: cold.basis });
    for (let i = 0; i < 6; i++) expect(warm.values[i]! / s[i]!).toBeCloseTo(1, 3);
    expect(() => lowRankDampedInverse(M, 0, 6)).toThrow(/damping must be > 0/);
    expect(() => lowRankDampedInverse(M, 0.1, 0)).toThrow(/rank must be an integer in \[1, 50\]/);
    expect(() => lowRankDampedInverse(tf.ones([3, 4]) as tf.Tensor2D, 0.1, 1)).toThrow(/must be square/);
    const bad = tf.tensor2d([
      [1, Number.NaN],
      [Number.NaN, 1],
    ]);
    expect(() => lowRankDampedInverse(bad, 0.1, 1)).toThrow(/not finite/);
    expect(useLowRank(785, 64)).toBe(true);
    expect(useLowRank(10, 64)).toBe(false);
    expect(useLowRank(128, 64)).toBe(false);
  });
});

describe('K-FAC with factorRank', () => {
  function net(batch: number, seed: number) {
    const x = tf.randomNormal([batch, 40], 0, 1, 'float32', seed) as tf.Tensor2D;
    const y = tf
      .oneHot(
        tf.tensor1d(
          Array.from({ length: batch }, (_, i) => i % 3),
          'int32',
        ),
        3,
      )
      .toFloat();
    const W1 = tf.variable(tf.randomNormal([40, 30], 0, 0.3, 'float32', seed + 1));
    const b1 = tf.variable(tf.zeros([30]));
    const W2 = tf.variable(tf.randomNormal([30, 3], 0, 0.3, 'float32', seed + 2));
    const b2 = tf.variable(tf.zeros([3]));
    const vars = [W1, b1, W2, b2];
    const loss = () =>
      tf.tidy(
        () =>
          tf.losses.softmaxCrossEntropy(
            y,
            tf.add(tf.matMul(tf.tanh(tf.add(tf.matMul(x, W1), b1)), W2), b2),
          ) as tf.Scalar,
      );
    const make = (factorRank: number) =>
      new KFAC({
        ...KFAC.STEP_EFFICIENT_SETTINGS, // statistics every step, inverses every 5, no KL clip
        estimation: 'empirical',
        adaptive: false,
        adaptDamping: false,
        momentum: 0,
        learningRate: 0.3,
        damping: 0.03,
        factorRank,
      })
        .registerDense({ kernel: W1, bias: b1, name: 'hidden' })
        .registerDense({ kernel: W2, bias: b2, name: 'out' });
    return { vars, loss, make, dispose: () => tf.dispose([x, y, ...vars]) };
  }

  it('takes the exact K-FAC step when the factors have rank below factorRank', () => {
    // Batch 6: A (41 x 41) and G (30 x 30) have rank <= 6 after one step; factorRank 8 uses the
    // low-rank form for both (41, 30 > 16) and must reproduce the explicit inverses' step.
    const steps: number[][][] = [];
    for (const rank of [0, 8]) {
      const p = net(6, 21);
      const before = p.vars.map((v) => v.clone());
      p.make(rank).minimize(p.loss, false, p.vars);
      steps.push(p.vars.map((v, i) => Array.from(tf.sub(v, before[i]!).dataSync())));
      tf.dispose(before);
      p.dispose();
    }
    let num = 0;
    let den = 0;
    steps[0]!.forEach((a, i) =>
      a.forEach((v, j) => {
        num = Math.max(num, Math.abs(v - steps[1]![i]![j]!));
        den = Math.max(den, Math.abs(v));
      }),
    );
    expect(den).toBeGreaterThan(0);
    expect(num / den).toBeLessThan(2e-3);
  });

  it('FAST_SETTINGS are valid options that train the network', () => {
    const p = net(128, 41);
    const [W1, b1, W2, b2] = p.vars as [tf.Variable, tf.Variable, tf.Variable, tf.Variable];
    const opt = new KFAC({ ...KFAC.FAST_SETTINGS, lossKind: 'softmax-cross-entropy', factorRank: 8 })
      .registerDense({ kernel: W1, bias: b1, name: 'hidden' })
      .registerDense({ kernel: W2, bias: b2, name: 'out' });
    expect(opt.options.adaptive).toBe(false);
    expect(opt.options.statsUpdatePeriod).toBe(10);
    expect(Object.isFrozen(KFAC.FAST_SETTINGS)).toBe(true);
    const first = p.loss().dataSync()[0]!;
    for (let i = 0; i < 25; i++) opt.minimize(p.loss, false, p.vars);
    expect(p.loss().dataSync()[0]!).toBeLessThan(0.5 * first);
    p.dispose();
  });

  it('trains with full-rank factors, keeps its state through a checkpoint and does not leak', async () => {
    const p = net(128, 31);
    let opt = p.make(6);
    const first = p.loss().dataSync()[0]!;
    for (let i = 0; i < 8; i++) opt.minimize(p.loss, false, p.vars);
    const saved = await opt.getWeights();
    expect(saved.map((s) => s.name)).toEqual(
      expect.arrayContaining(['@kfac/hidden/AU', '@kfac/hidden/Gbasis', '@kfac/out/AU', '@kfac/out/Ginv']),
    );
    const next = p.make(6);
    await next.setWeights(saved);
    tf.dispose(saved.map((s) => s.tensor));
    opt.dispose();
    opt = next;
    opt.minimize(p.loss, false, p.vars);
    const tensors = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) opt.minimize(p.loss, false, p.vars);
    expect(tf.memory().numTensors).toBe(tensors);
    expect(p.loss().dataSync()[0]!).toBeLessThan(0.5 * first);
    opt.dispose();
    p.dispose();
  });
});
