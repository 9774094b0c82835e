// K-FAC's loss objects (src/kfac/losses.ts) against the autodiff Hessian of the losses they
// stand for (src/autodiff/losses.ts), the Keras loss-name table, and the quadratic model's
// step-size solver against its optimality conditions.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { hessian, losses } from '../src/autodiff/index.js';
import { initBackend } from '../src/backend.js';
import type { LossKind } from '../src/autodiff/losses.js';
import { lossKindOfCompiledModel, negativeLogProbLoss } from '../src/kfac/losses.js';
import { MAX_MOMENTUM, solveQuadraticModel } from '../src/kfac/quadratic-model.js';

const LOSS_FNS: Record<LossKind, (labels: tf.Tensor, z: tf.Tensor) => tf.Scalar> = {
  'softmax-cross-entropy': losses.softmaxCrossEntropy,
  'sigmoid-cross-entropy': losses.sigmoidCrossEntropy,
  mse: losses.meanSquaredError,
};
const KINDS = Object.keys(LOSS_FNS) as LossKind[];

/** Labels valid for every loss (rows of a distribution). */
function labels(n: number, d: number): tf.Tensor2D {
  return tf.softmax(tf.randomNormal([n, d], 0, 1, 'float32', 3)) as tf.Tensor2D;
}

/** Per-example d x d blocks of the Hessian of the batch loss in the logits [n, d]. */
function hessianBlocks(kind: LossKind, z: tf.Tensor2D): number[][][] {
  const [n, d] = z.shape;
  const y = labels(n, d);
  const h = hessian((x) => LOSS_FNS[kind](y, x), z)
    .reshape([n * d, n * d])
    .arraySync() as number[][];
  return [...Array(n).keys()].map((i) =>
    [...Array(d).keys()].map((a) => [...Array(d).keys()].map((b) => h[i * d + a]![i * d + b]!)),
  );
}

beforeAll(async () => {
  await initBackend('cpu');
});

describe('K-FAC loss objects (NegativeLogProbLoss)', () => {
  const Z = [
    [0.3, -1.2, 0.8, 0.1],
    [2.0, 0.5, -0.7, -1.5],
    [-0.2, 0.0, 0.4, 1.1],
  ];
  const [n, d] = [3, 4];
  const logits = () => tf.tensor2d(Z);

  for (const kind of KINDS) {
    it(`${kind}: n sum_k c_k c_k^T per example equals the autodiff Hessian of the batch loss`, () => {
      const z = logits();
      const H = hessianBlocks(kind, z);
      const cols = negativeLogProbLoss(kind)
        .fisherRootColumns(z)
        .map((c) => c.arraySync());
      expect(cols).toHaveLength(d);
      let err = 0;
      for (let i = 0; i < n; i++) {
        for (let a = 0; a < d; a++) {
          for (let b = 0; b < d; b++) {
            const root = n * cols.reduce((s, c) => s + c[i]![a]! * c[i]![b]!, 0);
            err = Math.max(err, Math.abs(root - H[i]![a]![b]!));
          }
        }
      }
      expect(err).toBeLessThan(1e-6);
    });

    it(`${kind}: sampled cotangents have n^2 E[g g^T] = the per-example Hessian (Monte Carlo)`, () => {
      const N = 20000;
      const row = tf.tensor2d([Z[1]!]);
      const H1 = hessianBlocks(kind, row as tf.Tensor2D)[0]!;
      const g = negativeLogProbLoss(kind).sampleCotangent(tf.tile(row, [N, 1]) as tf.Tensor2D, 17);
      expect(g.shape).toEqual([N, d]);
      const cov = tf.div(tf.matMul(g, g, true, false), 1 / N).arraySync() as number[][];
      let err = 0;
      for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) err = Math.max(err, Math.abs(cov[a]![b]! - H1[a]![b]!));
      expect(err).toBeLessThan(0.02);
      // A different seed draws different targets.
      const g2 = negativeLogProbLoss(kind).sampleCotangent(tf.tile(row, [N, 1]) as tf.Tensor2D, 18);
      expect(tf.max(tf.abs(tf.sub(g, g2))).dataSync()[0]).toBeGreaterThan(0);
    });
  }

  it('reads the loss kind of a compiled model from its loss name and output activation', () => {
    expect(lossKindOfCompiledModel('categoricalCrossentropy', 'softmax')).toBe('softmax-cross-entropy');
    expect(lossKindOfCompiledModel(['sparse_categorical_crossentropy'], 'softmax')).toBe('softmax-cross-entropy');
    expect(lossKindOfCompiledModel('binaryCrossentropy', 'sigmoid')).toBe('sigmoid-cross-entropy');
    expect(lossKindOfCompiledModel('meanSquaredError', 'linear')).toBe('mse');
    expect(lossKindOfCompiledModel('mse', undefined)).toBe('mse');
    // Not the negative log-likelihood of the output distribution: unknown.
    expect(lossKindOfCompiledModel('categoricalCrossentropy', 'linear')).toBeUndefined();
    expect(lossKindOfCompiledModel('meanSquaredError', 'sigmoid')).toBeUndefined();
    expect(lossKindOfCompiledModel('hinge', 'linear')).toBeUndefined();
    expect(lossKindOfCompiledModel(['mse', 'mse'], 'linear')).toBeUndefined();
    expect(lossKindOfCompiledModel(undefined, 'softmax')).toBeUndefined();
  });
});

describe('K-FAC quadratic model step sizes', () => {
  /** m(alpha, mu) = alpha gd + mu gp + 1/2 [alpha mu] (F + reg D) [alpha mu]^T. */
  const model = (p: { F: number[]; gd: number; dd: number; gp: number; dp: number; pp: number }, reg: number) => ({
    value: (a: number, m: number) =>
      a * p.gd +
      m * p.gp +
      0.5 * (a * a * (p.F[0]! + reg * p.dd) + 2 * a * m * (p.F[1]! + reg * p.dp) + m * m * (p.F[3]! + reg * p.pp)),
  });

  it('without a previous step: alpha minimises the 1-D model and the change is m0(alpha)', () => {
    const p = { F: [2.5], gd: -1.5, dd: 0.7 };
    const { alpha, mu, modelChange } = solveQuadraticModel(p, 0.3, 0.1);
    expect(mu).toBe(0);
    expect(alpha).toBeCloseTo(1.5 / (2.5 + 0.3 * 0.7), 12);
    expect(modelChange).toBeCloseTo(alpha * -1.5 + 0.5 * alpha * alpha * (2.5 + 0.1 * 0.7), 12);
  });

  it('with a previous step: (alpha, mu) is the minimiser (central differences), or mu is clipped', () => {
    const p = { F: [2, 0.3, 0.3, 1.5], gd: -1, dd: 1.2, gp: -0.4, dp: 0.2, pp: 0.9 };
    const reg = 0.05;
    const { alpha, mu } = solveQuadraticModel(p, reg, 0);
    expect(mu).toBeGreaterThan(0);
    expect(mu).toBeLessThan(MAX_MOMENTUM);
    const m = model(p, reg).value;
    const h = 1e-5;
    expect((m(alpha + h, mu) - m(alpha - h, mu)) / (2 * h)).toBeCloseTo(0, 6);
    expect((m(alpha, mu + h) - m(alpha, mu - h)) / (2 * h)).toBeCloseTo(0, 6);
    // A previous step the model says to reverse: mu clipped to 0, alpha best for mu = 0.
    const q = { ...p, gp: 0.8 };
    const c = solveQuadraticModel(q, reg, 0);
    expect(c.mu).toBe(0);
    const mq = model(q, reg).value;
    expect((mq(c.alpha + h, 0) - mq(c.alpha - h, 0)) / (2 * h)).toBeCloseTo(0, 6);
  });

  it('non-finite products give a zero step', () => {
    expect(solveQuadraticModel({ F: [Number.NaN], gd: -1, dd: 1 }, 0.1, 0)).toMatchObject({ alpha: 0, mu: 0 });
  });
});
