/**
 * Quadratic problems.
 *
 * `quadratic`: f(x) = 1/2 (x - x*)^T A (x - x*), A = Q diag(lambda) Q^T with a seeded Haar
 * rotation Q and eigenvalues in [1/condition, 1] (so lambda_max = 1 and the condition number is
 * exact). Spectrum shapes:
 *   - 'log-uniform': lambda_i = condition^(-i/(d-1)), evenly spaced on a log scale;
 *   - 'uniform':     evenly spaced on a linear scale;
 *   - 'two-cluster': a fraction `clusterFraction` uniformly in [1/c, 2/c], the rest uniformly in
 *                    [1/2, 1], with the extremes pinned to 1/c and 1.
 * A and x* come from `problemSeed` (the same problem for every run); the start point
 * x0 = x* + initScale * N(0, I) comes from the run `seed`. Optimum 0; the default target is
 * 1e-3 of the expected initial loss (initScale^2 * tr(A) / 2).
 *
 * `quadratic-deep`: DeepOBS's noisy quadratic (Schneider, Balles & Hennig, ICLR 2019;
 * deepobs/pytorch/testproblems/quadratic_deep.py): 100-D, Hessian Q = R^T diag(lambda) R with
 * 90 eigenvalues from U(0, 1) and 10 from U(30, 60) and a Haar-random rotation R; data
 * x_i ~ N(0, 0.6^2 I), 1,000 training and 1,000 test points; per-example loss
 * 1/2 (theta - x_i)^T Q (theta - x_i); theta starts at ones; batch size 128.
 * DeepOBS draws everything from numpy's RandomState(42) (data 42/43); we draw the same
 * distributions from our own seeded generator (Rng, seed 42, separate streams for the spectrum,
 * rotation, training and test data), so the numbers differ from DeepOBS's but the construction
 * is the same and fixed for every run. The training-loss optimum is known in closed form:
 * theta* = mean(x_i), f* = 1/2 mean_i (x_i - mean)^T Q (x_i - mean).
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { Batch, Problem, ProblemData, ProblemEntry } from '../src/harness/problem.js';
import { Rng, randomOrthogonal, rotateSpectrum } from '../src/harness/rng.js';
import { optionDocs, parseOptions, seedOption } from './registry.js';

const quadraticSchema = z
  .object({
    dim: z.number().int().min(2).max(4096).default(50).describe('dimension d'),
    condition: z.number().min(1).default(1000).describe('condition number lambda_max / lambda_min'),
    spectrum: z
      .enum(['log-uniform', 'uniform', 'two-cluster'])
      .default('log-uniform')
      .describe('shape of the eigenvalue spectrum'),
    clusterFraction: z
      .number()
      .min(0)
      .max(1)
      .default(0.9)
      .describe('two-cluster: fraction of eigenvalues in the small cluster'),
    problemSeed: z.number().int().min(0).default(0).describe('seed of A and x* (the problem itself)'),
    initScale: z.number().positive().default(1).describe('std of the start point around x*'),
    seed: seedOption,
  })
  .strict();

export function quadraticSpectrum(
  dim: number,
  condition: number,
  shape: 'log-uniform' | 'uniform' | 'two-cluster',
  rng: Rng,
  clusterFraction = 0.9,
): Float64Array {
  const lam = new Float64Array(dim);
  const lo = 1 / condition;
  for (let i = 0; i < dim; i++) {
    const t = i / (dim - 1);
    if (shape === 'log-uniform') lam[i] = Math.pow(condition, -t);
    else if (shape === 'uniform') lam[i] = 1 - t * (1 - lo);
  }
  if (shape === 'two-cluster') {
    const nSmall = Math.min(dim - 1, Math.max(1, Math.round(clusterFraction * dim)));
    for (let i = 0; i < dim; i++) {
      lam[i] = i < nSmall ? rng.uniformIn(lo, 2 * lo) : rng.uniformIn(0.5, 1);
    }
    lam[0] = lo;
    lam[dim - 1] = 1;
    lam.sort().reverse();
  }
  return lam;
}

function createQuadratic(raw?: Record<string, unknown>): Problem {
  const o = parseOptions('quadratic', quadraticSchema, raw);
  const d = o.dim;
  const prng = new Rng(o.problemSeed, 101);
  const lambda = quadraticSpectrum(d, o.condition, o.spectrum, prng, o.clusterFraction);
  const Q = randomOrthogonal(d, prng);
  const A64 = rotateSpectrum(Q, lambda);
  const xStar = prng.normalArray(d);
  const rng = new Rng(o.seed, 1);
  const x0 = new Float32Array(d);
  for (let i = 0; i < d; i++) x0[i] = xStar[i] + o.initScale * rng.normal();
  let trace = 0;
  for (const l of lambda) trace += l;

  const A = tf.tensor2d(Float32Array.from(A64), [d, d]);
  const xs = tf.tensor2d(xStar, [d, 1]);
  const x = tf.tidy(() => tf.variable(tf.tensor2d(x0, [d, 1]), true));
  const loss = (): tf.Scalar =>
    tf.tidy(() => {
      const r = tf.sub(x, xs);
      return tf.mul(0.5, tf.sum(tf.mul(r, tf.matMul(A, r)))) as tf.Scalar;
    });
  return {
    name: 'quadratic',
    description: `quadratic, d=${d}, condition ${o.condition}, ${o.spectrum} spectrum`,
    options: o,
    params: [x],
    numParams: d,
    loss,
    evaluate: () => {
      const l = loss();
      const v = l.dataSync()[0];
      l.dispose();
      return { trainLoss: v };
    },
    optimum: 0,
    target: 1e-3 * 0.5 * o.initScale ** 2 * trace,
    dispose: () => {
      A.dispose();
      xs.dispose();
      x.dispose();
    },
  };
}

const quadraticDeepSchema = z
  .object({
    batchSize: z.number().int().min(1).default(128).describe('mini-batch size'),
    noiseLevel: z.number().positive().default(0.6).describe('std of the data points around 0'),
    trainSize: z.number().int().min(2).default(1000).describe('training (and test) set size'),
    seed: seedOption,
  })
  .strict();

/** DeepOBS quadratic-deep Hessian (fixed): 90 eigenvalues in U(0,1), 10 in U(30,60), rotated. */
export function quadraticDeepHessian(): { hessian: Float64Array; eigenvalues: Float64Array } {
  const rng = new Rng(42, 1);
  const eigenvalues = new Float64Array(100);
  for (let i = 0; i < 90; i++) eigenvalues[i] = rng.uniformIn(0, 1);
  for (let i = 90; i < 100; i++) eigenvalues[i] = rng.uniformIn(30, 60);
  const R = randomOrthogonal(100, new Rng(42, 2));
  return { hessian: rotateSpectrum(R, eigenvalues), eigenvalues };
}

function createQuadraticDeep(raw?: Record<string, unknown>): Problem {
  const o = parseOptions('quadratic-deep', quadraticDeepSchema, raw);
  const d = 100;
  const { hessian } = quadraticDeepHessian();
  const trainX = new Rng(42, 3).normalArray(o.trainSize * d, o.noiseLevel);
  const testX = new Rng(43, 3).normalArray(o.trainSize * d, o.noiseLevel);

  // Closed-form optimum of the training loss, in float64.
  const mean = new Float64Array(d);
  for (let i = 0; i < o.trainSize; i++) for (let j = 0; j < d; j++) mean[j] += trainX[i * d + j] / o.trainSize;
  let fStar = 0;
  const r = new Float64Array(d);
  for (let i = 0; i < o.trainSize; i++) {
    for (let j = 0; j < d; j++) r[j] = trainX[i * d + j] - mean[j];
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += hessian[j * d + k] * r[k];
      fStar += 0.5 * r[j] * s;
    }
  }
  fStar /= o.trainSize;

  const Qt = tf.tensor2d(Float32Array.from(hessian), [d, d]);
  const Xtrain = tf.tensor2d(trainX, [o.trainSize, d]);
  const Xtest = tf.tensor2d(testX, [o.trainSize, d]);
  const theta = tf.tidy(() => tf.variable(tf.ones([1, d]), true));

  const lossOn = (X: tf.Tensor): tf.Scalar =>
    tf.tidy(() => {
      const D = tf.sub(theta, X);
      return tf.mul(0.5, tf.mean(tf.sum(tf.mul(tf.matMul(D, Qt), D), 1))) as tf.Scalar;
    });
  const data: ProblemData = {
    numTrain: o.trainSize,
    numTest: o.trainSize,
    batchSize: o.batchSize,
    batch: (indices: Int32Array): Batch =>
      tf.tidy(() => {
        const x = tf.gather(Xtrain, tf.tensor1d(indices, 'int32'));
        return { x, y: x.clone(), size: indices.length };
      }),
  };
  const value = (s: tf.Scalar): number => {
    const v = s.dataSync()[0];
    s.dispose();
    return v;
  };
  const initial = value(lossOn(Xtrain));
  return {
    name: 'quadratic-deep',
    description: `DeepOBS quadratic-deep, d=100, ${o.trainSize} points, batch ${o.batchSize}`,
    options: o,
    params: [theta],
    numParams: d,
    data,
    loss: (batch?: Batch) => lossOn(batch ? batch.x : Xtrain),
    evaluate: () => ({ trainLoss: value(lossOn(Xtrain)), testLoss: value(lossOn(Xtest)) }),
    optimum: fStar,
    target: fStar + 0.01 * (initial - fStar),
    dispose: () => {
      Qt.dispose();
      Xtrain.dispose();
      Xtest.dispose();
      theta.dispose();
    },
  };
}

export const quadraticEntry: ProblemEntry = {
  name: 'quadratic',
  description: 'Rotated quadratic with a chosen dimension, condition number and spectrum shape',
  options: optionDocs(quadraticSchema),
  create: createQuadratic,
};

export const quadraticDeepEntry: ProblemEntry = {
  name: 'quadratic-deep',
  description: "DeepOBS's noisy 100-D quadratic with a deep-learning-like eigenvalue spectrum",
  options: optionDocs(quadraticDeepSchema),
  create: createQuadraticDeep,
};
