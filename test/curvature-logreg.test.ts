// Curvature diagnostics on L2-regularised binary logistic regression, where everything has a
// closed form: the Gauss-Newton matrix equals the Hessian (logits are linear in the parameters),
// the explicit Hessian is small, and leave-one-out retraining is cheap in float64.
import * as tf from '@tensorflow/tfjs';
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { hessian, losses } from '../src/autodiff/index.js';
import {
  curvatureOperator,
  hessianDiagonal,
  hessianSpectrum,
  hessianTopEigenvalues,
  hessianTrace,
  influence,
} from '../src/curvature/index.js';
import type { CurvatureSourceOptions } from '../src/curvature/index.js';
import { seededRandom } from './helpers/fd.js';

const N = 100;
const F = 4; // features; parameters: w (F x 1) and b (1)
const P = F + 1;
const LAMBDA = 0.01;

interface Batch {
  x: tf.Tensor2D;
  y: tf.Tensor2D;
  size: number;
}

const rand = seededRandom(11);
const gauss = (): number => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
const trueW = [1.5, -2, 0.5, 1];
function sample(n: number): { X: number[][]; Y: number[] } {
  const X = Array.from({ length: n }, () => Array.from({ length: F }, gauss));
  const Y = X.map((x) => (rand() < 1 / (1 + Math.exp(-(x.reduce((s, v, j) => s + v * trueW[j], 0) + 0.3))) ? 1 : 0));
  return { X, Y };
}
const train = sample(N);
const test = sample(30);

// ----- Independent float64 reference: Newton / IRLS on theta = [w, b]. -----
const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));
const aug = (x: number[]): number[] => [...x, 1];

function solve(A: number[][], b: number[]): number[] {
  const n = b.length;
  const M = A.map((row, i) => [...row, b[i]]);
  for (let c = 0; c < n; c++) {
    let piv = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r][c]) > Math.abs(M[piv][c])) piv = r;
    [M[c], M[piv]] = [M[piv], M[c]];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = M[r][c] / M[c][c];
      for (let k = c; k <= n; k++) M[r][k] -= f * M[c][k];
    }
  }
  return M.map((row, i) => row[n] / row[i]);
}

/** Minimiser of mean_i l_i + LAMBDA/2 ||theta||^2 over the given points. */
function fitNewton(X: number[][], Y: number[], theta0 = new Array(P).fill(0)): number[] {
  let theta = theta0.slice();
  for (let it = 0; it < 50; it++) {
    const g = theta.map((t) => LAMBDA * t);
    const H = theta.map((_, i) => theta.map((__, j) => (i === j ? LAMBDA : 0)));
    X.forEach((x, n) => {
      const a = aug(x);
      const p = sigmoid(a.reduce((s, v, j) => s + v * theta[j], 0));
      for (let i = 0; i < P; i++) {
        g[i] += ((p - Y[n]) * a[i]) / X.length;
        for (let j = 0; j < P; j++) H[i][j] += (p * (1 - p) * a[i] * a[j]) / X.length;
      }
    });
    const step = solve(H, g);
    theta = theta.map((t, i) => t - step[i]);
    if (Math.hypot(...step) < 1e-14) break;
  }
  return theta;
}

function lossAt(theta: number[], x: number[], y: number): number {
  const z = aug(x).reduce((s, v, j) => s + v * theta[j], 0);
  return Math.max(z, 0) - z * y + Math.log1p(Math.exp(-Math.abs(z)));
}

// ----- The tfjs model. -----
let w: tf.Variable;
let b: tf.Variable;
let full: Batch;
let testBatch: Batch;
let thetaStar: number[];
const toBatch = (X: number[][], Y: number[]): Batch => ({
  x: tf.tensor2d(X.flat(), [X.length, F]),
  y: tf.tensor2d(Y, [Y.length, 1]),
  size: X.length,
});
const logits = (batch: Batch): tf.Tensor => tf.add(tf.matMul(batch.x, w), b);
const dataLoss = (z: tf.Tensor, batch: Batch): tf.Scalar => losses.sigmoidCrossEntropy(batch.y, z);
const reg = (): tf.Scalar => tf.mul(LAMBDA / 2, tf.add(tf.sum(tf.square(w)), tf.sum(tf.square(b)))) as tf.Scalar;
const trainLoss = (batch: Batch): tf.Scalar =>
  tf.tidy(() => tf.add(dataLoss(logits(batch), batch), reg()) as tf.Scalar);
// For the GGN: the regulariser is quadratic, so it sits in the loss-of-outputs with weight 1
// only through its own Hessian; we add it as an extra output-independent term.
const ggnOptions = (): CurvatureSourceOptions<Batch> => ({
  curvature: 'ggn',
  outputs: (batch) => tf.concat([tf.reshape(logits(batch), [-1]), tf.reshape(w, [-1]), tf.reshape(b, [-1])]),
  lossFromOutputs: (z, batch) =>
    tf.tidy(() => {
      const n = batch.size;
      const zl = tf.reshape(tf.slice(z, [0], [n]), [n, 1]);
      const th = tf.slice(z, [n], [P]);
      return tf.add(losses.sigmoidCrossEntropy(batch.y, zl), tf.mul(LAMBDA / 2, tf.sum(tf.square(th)))) as tf.Scalar;
    }),
});

/** Explicit Hessian of the training loss in theta = [w, b] (via src/autodiff `hessian`). */
function explicitHessian(): number[][] {
  return tf.tidy(() => {
    const f = (theta: tf.Tensor): tf.Scalar => {
      const wt = tf.reshape(tf.slice(theta, [0], [F]), [F, 1]);
      const bt = tf.slice(theta, [F], [1]);
      const z = tf.add(tf.matMul(full.x, wt), bt);
      const r = tf.mul(LAMBDA / 2, tf.sum(tf.square(theta)));
      return tf.add(losses.sigmoidCrossEntropy(full.y, z), r) as tf.Scalar;
    };
    const theta = tf.concat([tf.reshape(w, [-1]), tf.reshape(b, [-1])]);
    return hessian(f, theta).arraySync() as number[][];
  });
}

let H: number[][];
let trueEig: number[];

beforeAll(async () => {
  await initBackend('cpu');
  thetaStar = fitNewton(train.X, train.Y);
  w = tf.variable(tf.tensor2d(thetaStar.slice(0, F), [F, 1]));
  b = tf.variable(tf.tensor1d([thetaStar[F]]));
  full = toBatch(train.X, train.Y);
  testBatch = toBatch(test.X, test.Y);
  H = explicitHessian();
  trueEig = new EigenvalueDecomposition(new Matrix(H), { assumeSymmetric: true }).realEigenvalues.sort((a, c) => c - a);
});

const trace = (): number => H.reduce((s, row, i) => s + row[i], 0);

describe('diagonal and trace match the explicit Hessian (Hessian and GGN)', () => {
  for (const kind of ['hessian', 'ggn'] as const) {
    const src = (): CurvatureSourceOptions<Batch> =>
      kind === 'ggn' ? { ...ggnOptions(), batches: [full] } : { batches: [full] };

    it(`${kind}: exact diagonal to 1e-5 relative, shaped like the variables`, () => {
      const before = tf.memory().numTensors;
      const d = hessianDiagonal(trainLoss, [w, b], { ...src(), method: 'exact' });
      expect(d.diagonal[0].shape).toEqual([F, 1]);
      expect(d.diagonal[1].shape).toEqual([1]);
      H.forEach((row, i) => expect(Math.abs(d.values[i] - row[i])).toBeLessThan(1e-5 * Math.abs(row[i]) + 1e-7));
      tf.dispose([...d.diagonal, ...d.standardError]);
      expect(tf.memory().numTensors).toBe(before);
    });

    it(`${kind}: Hutchinson diagonal within 4 standard errors per entry`, () => {
      const d = hessianDiagonal(trainLoss, [w, b], { ...src(), samples: 200, seed: 5 });
      const se = d.standardError.flatMap((t) => Array.from(t.dataSync()));
      H.forEach((row, i) => expect(Math.abs(d.values[i] - row[i])).toBeLessThan(4 * se[i] + 1e-6));
      tf.dispose([...d.diagonal, ...d.standardError]);
    });

    it(`${kind}: Hutchinson trace within 3 standard errors; Hutch++ with 3 x dim products is exact`, () => {
      const h = hessianTrace(trainLoss, [w, b], { ...src(), samples: 200, seed: 6 });
      expect(Math.abs(h.trace - trace())).toBeLessThan(3 * h.standardError);
      const pp = hessianTrace(trainLoss, [w, b], { ...src(), samples: 3 * P, method: 'hutch++', seed: 6 });
      expect(pp.standardError).toBe(0);
      expect(Math.abs(pp.trace - trace()) / trace()).toBeLessThan(1e-5);
    });

    it(`${kind}: all eigenvalues by Lanczos and by power iteration match the explicit eigenvalues`, () => {
      const lz = hessianTopEigenvalues(trainLoss, [w, b], { ...src(), k: P, tol: 1e-6 });
      lz.eigenvalues.forEach((l, i) => expect(Math.abs(l - trueEig[i]) / trueEig[i]).toBeLessThan(1e-4));
      const pw = hessianTopEigenvalues(trainLoss, [w, b], {
        ...src(),
        k: 2,
        method: 'power',
        maxIter: 500,
        tol: 1e-10,
      });
      pw.eigenvalues.forEach((l, i) => expect(Math.abs(l - trueEig[i]) / trueEig[i]).toBeLessThan(1e-3));
    });
  }

  it('averaging over batches weights them by size: equal to the full-batch Hessian', () => {
    const parts = [toBatch(train.X.slice(0, 10), train.Y.slice(0, 10)), toBatch(train.X.slice(10), train.Y.slice(10))];
    const op = curvatureOperator(trainLoss, [w, b], { batches: parts });
    const d = hessianDiagonal(op, [w, b], { method: 'exact' });
    H.forEach((row, i) => expect(Math.abs(d.values[i] - row[i])).toBeLessThan(1e-5 * Math.abs(row[i]) + 1e-7));
    const s = hessianSpectrum(op, [w, b], { steps: P, runs: 2 });
    expect(Math.abs(s.trace - trace()) / trace()).toBeLessThan(0.5);
    expect(s.lambdaMax).toBeCloseTo(trueEig[0], 4);
    tf.dispose([...d.diagonal, ...d.standardError]);
    parts.forEach((p) => tf.dispose([p.x, p.y]));
  });

  it('rejects bad options with messages naming them', () => {
    expect(() => hessianTrace(trainLoss, [w, b], { batches: [full], samples: 0 })).toThrow(/samples/);
    expect(() => hessianTopEigenvalues(trainLoss, [w, b], { batches: [full], k: 99 })).toThrow(/k must be/);
    expect(() => hessianDiagonal(trainLoss, [w, b], { batches: [full], curvature: 'ggn' })).toThrow(/outputs/);
  });
});

describe('influence matches leave-one-out retraining', () => {
  // The test point: the one the trained model fits worst, so that training points matter.
  const worst = (): number => {
    let best = 0;
    test.X.forEach((x, i) => {
      if (lossAt(thetaStar, x, test.Y[i]) > lossAt(thetaStar, test.X[best], test.Y[best])) best = i;
    });
    return best;
  };

  function leaveOneOut(t: number): number[] {
    const base = lossAt(thetaStar, test.X[t], test.Y[t]);
    return train.X.map((_, i) => {
      const X = train.X.filter((__, j) => j !== i);
      const Y = train.Y.filter((__, j) => j !== i);
      return lossAt(fitNewton(X, Y, thetaStar), test.X[t], test.Y[t]) - base;
    });
  }

  function ranks(v: number[]): number[] {
    const order = v.map((_, i) => i).sort((a, c) => v[a] - v[c]);
    const r = new Array<number>(v.length);
    order.forEach((idx, k) => (r[idx] = k));
    return r;
  }
  function spearman(a: number[], c: number[]): number {
    const ra = ranks(a);
    const rc = ranks(c);
    const n = a.length;
    const d2 = ra.reduce((s, r, i) => s + (r - rc[i]) ** 2, 0);
    return 1 - (6 * d2) / (n * (n * n - 1));
  }

  let points: Batch[];
  let actual: number[];
  let t: number;
  beforeAll(() => {
    t = worst();
    actual = leaveOneOut(t);
    points = train.X.map((x, i) => toBatch([x], [train.Y[i]]));
  });

  const testPoint = (): Batch => ({
    x: tf.slice(testBatch.x, [t, 0], [1, F]),
    y: tf.slice(testBatch.y, [t, 0], [1, 1]),
    size: 1,
  });

  function check(predicted: Float64Array): void {
    const byActual = actual.map((_, i) => i).sort((a, c) => Math.abs(actual[c]) - Math.abs(actual[a]));
    // Sign of the 10 most influential points.
    for (const i of byActual.slice(0, 10)) expect(Math.sign(predicted[i])).toBe(Math.sign(actual[i]));
    // Rank order: the top-5 by |effect| are the same points in the same order, and overall
    // Spearman correlation is high.
    const byPredicted = Array.from(predicted.keys()).sort((a, c) => Math.abs(predicted[c]) - Math.abs(predicted[a]));
    expect(byPredicted.slice(0, 5)).toEqual(byActual.slice(0, 5));
    expect(spearman(Array.from(predicted), actual)).toBeGreaterThan(0.95);
  }

  it('conjugate gradient: sign and rank order of the most influential points', () => {
    const tp = testPoint();
    const before = tf.memory().numTensors;
    const r = influence(trainLoss, [w, b], {
      batches: [full],
      testLoss: () => dataLoss(logits(tp), tp),
      points,
      pointLoss: (p: Batch) => dataLoss(logits(p), p),
    });
    expect(r.solve.converged).toBe(true);
    expect(r.removalEffect.length).toBe(N);
    check(r.removalEffect);
    tf.dispose(r.sTest);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([tp.x, tp.y]);
  });

  it('LiSSA agrees with conjugate gradient (deterministic on the full batch, noisy over mini-batches)', () => {
    const tp = testPoint();
    const common = {
      testLoss: () => dataLoss(logits(tp), tp),
      points,
      pointLoss: (p: Batch) => dataLoss(logits(p), p),
      numTrain: N,
    };
    const relTo = (x: Float64Array, y: Float64Array): number =>
      Math.hypot(...x.map((v, i) => v - y[i])) / Math.hypot(...y);
    const cg = influence(trainLoss, [w, b], { ...common, batches: [full] });
    const li = influence(trainLoss, [w, b], { ...common, batches: [full], solver: 'lissa', lissa: { depth: 400 } });
    expect(relTo(li.influence, cg.influence)).toBeLessThan(1e-2);
    check(li.removalEffect);
    // Stochastic LiSSA (a random half of the data per step): an unbiased but noisy estimate.
    const halves = [
      toBatch(train.X.slice(0, N / 2), train.Y.slice(0, N / 2)),
      toBatch(train.X.slice(N / 2), train.Y.slice(N / 2)),
    ];
    const noisy = influence(trainLoss, [w, b], {
      ...common,
      batches: halves,
      solver: 'lissa',
      lissa: { depth: 200, repeats: 2 },
      seed: 3,
    });
    expect(relTo(noisy.influence, cg.influence)).toBeLessThan(0.5);
    const top = actual
      .map((_, i) => i)
      .sort((i, j) => Math.abs(actual[j]) - Math.abs(actual[i]))
      .slice(0, 5);
    for (const i of top) expect(Math.sign(noisy.removalEffect[i])).toBe(Math.sign(actual[i]));
    tf.dispose([...cg.sTest, ...li.sTest, ...noisy.sTest, tp.x, tp.y]);
    halves.forEach((h) => tf.dispose([h.x, h.y]));
  });
});
