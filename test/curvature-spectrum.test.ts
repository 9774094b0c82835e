// Curvature diagnostics on the harness's `quadratic-deep` (DeepOBS), whose spectrum is known:
// 90 eigenvalues from U(0, 1), 10 from U(30, 60), Haar-random rotation. The Hessian of the mean
// loss 1/2 mean_i (theta - x_i)^T Q (theta - x_i) is Q on every batch.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import '../src/autodiff/index.js';
import {
  curvatureOperator,
  hessianTopEigenvalues,
  hessianTrace,
  hessianSpectrum,
  spectralMass,
} from '../src/curvature/index.js';
import { problems, quadraticDeepHessian } from '../experiments/index.js';
import type { Batch, Problem } from '../src/harness/problem.js';

const D = 100;

const { eigenvalues } = quadraticDeepHessian();
const lambda = Array.from(eigenvalues);
const top10 = [...lambda].sort((a, b) => b - a).slice(0, 10);
const trueTrace = lambda.reduce((a, b) => a + b, 0);

let problem: Problem;
let theta: tf.Variable;
let Qt: tf.Tensor2D;
let X: tf.Tensor2D;
let small: Batch;
let loss: (batch?: tf.Tensor) => tf.Scalar;

beforeAll(async () => {
  await initBackend('cpu');
  problem = problems.get('quadratic-deep');
  theta = problem.params[0];
  Qt = tf.tensor2d(Float32Array.from(quadraticDeepHessian().hessian), [D, D]);
  // A few data points suffice: the Hessian does not depend on the data, and each HVP stays cheap.
  small = problem.data!.batch(Int32Array.from([0, 1, 2, 3]));
  X = small.x as tf.Tensor2D;
  loss = (batch?: tf.Tensor) => problem.loss({ x: batch ?? X, y: batch ?? X, size: (batch ?? X).shape[0] });
});

afterAll(() => {
  tf.dispose([Qt, small.x, small.y]);
  problem.dispose();
});

function relErrors(got: number[], want: number[]): number[] {
  return got.map((g, i) => Math.abs(g - want[i]) / Math.abs(want[i]));
}

describe('hessianTopEigenvalues on quadratic-deep', () => {
  it('Lanczos finds the top-10 eigenvalues to 1e-3 relative', () => {
    const before = tf.memory().numTensors;
    const r = hessianTopEigenvalues(() => loss(), [theta], { k: 10, method: 'lanczos', maxIter: 100, tol: 1e-6 });
    expect(tf.memory().numTensors).toBe(before);
    expect(r.converged).toBe(true);
    expect(Math.max(...relErrors(r.eigenvalues, top10))).toBeLessThan(1e-3);
    expect(r.matvecs).toBeLessThanOrEqual(100);
  });

  it('power iteration with deflation finds the top-3 eigenvalues to 1e-3 relative', () => {
    // Power iteration converges like (lambda_{i+1}/lambda_i)^{2t}; the top-10 here include ratios
    // of 0.99 (hundreds of products each), so the test takes the top 3 to keep it fast.
    const r = hessianTopEigenvalues(() => loss(), [theta], { k: 3, method: 'power', maxIter: 200, tol: 1e-7 });
    expect(Math.max(...relErrors(r.eigenvalues, top10.slice(0, 3)))).toBeLessThan(1e-3);
  });

  it('averages the curvature over batches (same Hessian on every batch)', () => {
    const batches = [tf.slice(X, [0, 0], [1, D]), tf.slice(X, [1, 0], [3, D])];
    const op = curvatureOperator((b: tf.Tensor) => loss(b), [theta], { batches });
    const r = hessianTopEigenvalues(op, [theta], { k: 3, tol: 1e-6 });
    expect(Math.max(...relErrors(r.eigenvalues, top10.slice(0, 3)))).toBeLessThan(1e-3);
    expect(op.batchProducts).toBe(2 * op.matvecs);
    tf.dispose(batches);
  });

  it('returns eigenvectors shaped like the variables, with small residuals', () => {
    const r = hessianTopEigenvalues(() => loss(), [theta], { k: 2, tol: 1e-6, returnVectors: true });
    const v = r.eigenvectors![0][0];
    expect(v.shape).toEqual([1, D]);
    const hv = tf.tidy(() => tf.matMul(v, Qt));
    const res = tf.tidy(() => tf.norm(tf.sub(hv, tf.mul(v, r.eigenvalues[0]))).dataSync()[0]);
    expect(res / r.eigenvalues[0]).toBeLessThan(1e-4);
    hv.dispose();
    r.eigenvectors!.forEach((vs) => tf.dispose(vs));
  });
});

describe('hessianTrace on quadratic-deep', () => {
  it('Hutchinson is within 3 reported standard errors of the true trace', () => {
    const r = hessianTrace(() => loss(), [theta], { samples: 100, seed: 1 });
    expect(r.standardError).toBeGreaterThan(0);
    expect(Math.abs(r.trace - trueTrace)).toBeLessThan(3 * r.standardError);
    expect(r.matvecs).toBe(100);
  });

  it('Hutch++ is within 3 reported standard errors, with a much smaller error than Hutchinson', () => {
    const hutch = hessianTrace(() => loss(), [theta], { samples: 60, seed: 2 });
    const pp = hessianTrace(() => loss(), [theta], { samples: 60, seed: 2, method: 'hutch++' });
    expect(Math.abs(pp.trace - trueTrace)).toBeLessThan(3 * pp.standardError);
    expect(pp.standardError).toBeLessThan(hutch.standardError / 3);
  });
});

describe('hessianSpectrum on quadratic-deep', () => {
  it('shows the two clusters: ~90% of the mass in [0, 1], ~10% in [30, 60], none between', () => {
    const s = hessianSpectrum(() => loss(), [theta], { runs: 3, steps: 30, seed: 3 });
    const bulk = spectralMass(s, -0.05, 1.05);
    const outliers = spectralMass(s, 29, 61);
    expect(bulk + outliers).toBeCloseTo(1, 6);
    expect(bulk).toBeGreaterThan(0.8);
    expect(outliers).toBeGreaterThan(0.04);
    expect(outliers).toBeLessThan(0.2);
    expect(s.lambdaMax).toBeCloseTo(top10[0], 2);
    // Density: high in the bulk, ~0 in the gap, a second bump among the outliers.
    const at = (x: number): number => {
      let best = 0;
      s.grid.forEach((g, i) => {
        if (Math.abs(g - x) < Math.abs(s.grid[best] - x)) best = i;
      });
      return s.density[best];
    };
    expect(at(0.5)).toBeGreaterThan(100 * at(15));
    const outlierPeak = Math.max(...Array.from(s.grid).map((g, i) => (g > 30 && g < 60 ? s.density[i] : 0)));
    expect(outlierPeak).toBeGreaterThan(100 * at(15));
    // Integrates to ~1 on the default grid; the SLQ trace is near the true trace.
    let integral = 0;
    for (let i = 1; i < s.grid.length; i++)
      integral += 0.5 * (s.density[i] + s.density[i - 1]) * (s.grid[i] - s.grid[i - 1]);
    expect(integral).toBeCloseTo(1, 2);
    expect(Math.abs(s.trace - trueTrace) / trueTrace).toBeLessThan(0.5);
  });
});
