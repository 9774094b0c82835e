// K-FAC's cheaper-step options: statistics and the quadratic model on the first examples of the
// mini-batch (statsBatchSize, quadraticBatchSize). Checked by equivalence: on a batch made of
// the same examples twice, the first half carries the whole batch's curvature, so the factors
// and the step sizes must equal the full batch's ('exact' estimation: no sampling).
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import '../src/autodiff/index.js';
import { KFAC, type KFACOptions } from '../optimizers/kfac.js';
import { losses } from '../src/autodiff/index.js';

beforeAll(async () => {
  await initBackend('cpu');
});

/** A 6-5-3 tanh/softmax MLP (plain tf, registered layers) and a batch of 8 = 4 examples twice. */
function setup(options: KFACOptions) {
  const W1 = tf.variable(tf.randomNormal([6, 5], 0, 0.5, 'float32', 1));
  const b1 = tf.variable(tf.zeros([5]));
  const W2 = tf.variable(tf.randomNormal([5, 3], 0, 0.5, 'float32', 2));
  const b2 = tf.variable(tf.zeros([3]));
  const x4 = tf.randomNormal([4, 6], 0, 1, 'float32', 3);
  const y4 = tf.oneHot(tf.tensor1d([0, 2, 1, 2], 'int32'), 3).toFloat();
  const x = tf.concat([x4, x4]);
  const y = tf.concat([y4, y4]);
  const loss = () =>
    losses.softmaxCrossEntropy(y, tf.add(tf.matMul(tf.tanh(tf.add(tf.matMul(x, W1), b1)), W2), b2)) as tf.Scalar;
  const opt = new KFAC({ lossKind: 'softmax-cross-entropy', estimation: 'exact', ...options })
    .registerDense({ kernel: W1, bias: b1, name: 'h' })
    .registerDense({ kernel: W2, bias: b2, name: 'out' });
  const vars = [W1, b1, W2, b2];
  return { opt, loss, vars, dispose: () => tf.dispose([W1, b1, W2, b2, x4, y4, x, y]) };
}

function maxRelDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]! / tf.max(tf.abs(b)).dataSync()[0]!);
}

describe('K-FAC on a sub-batch', () => {
  it('statsBatchSize 4 on a doubled batch gives the full batch factors', () => {
    const full = setup({});
    const half = setup({ statsBatchSize: 4 });
    for (const s of [full, half]) s.opt.minimize(s.loss, false, s.vars);
    for (const name of ['h', 'out']) {
      const F = full.opt.factors(name)!;
      const H = half.opt.factors(name)!;
      expect(maxRelDiff(H.A, F.A)).toBeLessThan(1e-6);
      expect(maxRelDiff(H.G, F.G)).toBeLessThan(1e-6);
    }
    // 2 of the 4 distinct examples give a different estimate.
    const quarter = setup({ statsBatchSize: 2 });
    quarter.opt.minimize(quarter.loss, false, quarter.vars);
    expect(maxRelDiff(quarter.opt.factors('h')!.A, full.opt.factors('h')!.A)).toBeGreaterThan(1e-3);
    for (const s of [full, half, quarter]) {
      s.opt.dispose();
      s.dispose();
    }
  });

  it('quadraticBatchSize 4 on a doubled batch gives the full batch step sizes, without leaks', () => {
    const full = setup({});
    const half = setup({ quadraticBatchSize: 4 });
    const steps: { alpha: number; mu: number }[][] = [[], []];
    [full, half].forEach((s, i) => {
      for (let k = 0; k < 3; k++) {
        const before = tf.memory().numTensors;
        s.opt.minimize(s.loss, false, s.vars);
        if (k > 0) expect(tf.memory().numTensors).toBe(before);
        steps[i]!.push({ ...s.opt.lastStep });
      }
    });
    for (let k = 0; k < 3; k++) {
      expect(steps[1]![k]!.alpha).toBeCloseTo(steps[0]![k]!.alpha, 4);
      expect(steps[1]![k]!.mu).toBeCloseTo(steps[0]![k]!.mu, 4);
    }
    expect(steps[0]![2]!.mu).toBeGreaterThan(0);
    for (const s of [full, half]) {
      s.opt.dispose();
      s.dispose();
    }
  });

  it('rejects example counts that are not integers >= 0', () => {
    expect(() => new KFAC({ statsBatchSize: -1 })).toThrow(/statsBatchSize/);
    expect(() => new KFAC({ quadraticBatchSize: 1.5 })).toThrow(/quadraticBatchSize/);
  });

  it('a count at or above the batch size is the whole batch', () => {
    const full = setup({});
    const big = setup({ statsBatchSize: 64, quadraticBatchSize: 8 });
    for (const s of [full, big]) for (let k = 0; k < 2; k++) s.opt.minimize(s.loss, false, s.vars);
    expect(big.opt.lastStep).toEqual(full.opt.lastStep);
    expect(maxRelDiff(big.opt.factors('h')!.A, full.opt.factors('h')!.A)).toBe(0);
    for (const s of [full, big]) {
      s.opt.dispose();
      s.dispose();
    }
  });
});
