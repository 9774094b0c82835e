/**
 * One-sided Shampoo (skipPreconditioningDimSizeGt, scalable_shampoo's
 * skip_preconditioning_dim_size_gt): a dimension larger than the threshold gets no statistic and
 * no root. Checked against the closed form of the first preconditioned step, computed in float64
 * with src/linalg's inverseRoot, on both backends (host kernels and tfjs ops).
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { Shampoo, type ShampooOptions } from '../optimizers/shampoo.js';
import { inverseRoot, type Mat64 } from '../src/linalg/index.js';
import { relErr, rng } from './optim-helpers.js';

beforeAll(async () => {
  await initBackend('cpu');
});

let counter = 0;

/** G (m x n) as float32 values, seeded. */
function gradient(m: number, n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: m * n }, () => r() - 0.5);
}

/** The update of one applyGradients from W = 0. */
function firstUpdate(g: Float32Array, shape: [number, number], options: ShampooOptions, tfjs: boolean) {
  const v = tf.variable(tf.zeros(shape), true, `shampoo_one_sided_${counter++}`);
  const opt = new Shampoo(options, { backend: tfjs ? 'tfjs' : 'auto' });
  const gt = tf.tensor(g, shape);
  opt.applyGradients({ [v.name]: gt });
  const d = Float64Array.from(v.dataSync());
  const slots = opt.getWeights();
  tf.dispose([gt]);
  return { d, slots, opt, v };
}

describe('one-sided Shampoo', () => {
  const options: ShampooOptions = {
    learningRate: 1,
    beta1: 0,
    grafting: 'none',
    preconditionFrequency: 1,
    startPreconditioningStep: 1,
    mergeDims: false,
    skipPreconditioningDimSizeGt: 16,
    epsilon: 1e-3,
  };

  it.each([
    ['host kernels', false],
    ['tfjs ops', true],
  ])('[40, 12] with threshold 16: d = G (G^T G + eps I)^{-1/2}, only the right side (%s)', async (_, tfjs) => {
    const [m, n] = [40, 12];
    const g = gradient(m, n, 5);
    const { d, slots, opt, v } = firstUpdate(g, [m, n], options, tfjs);
    // Closed form: S_R = G^T G (float64), one preconditioned dimension so r = 2, eps relative.
    const s = new Float64Array(n * n);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) for (let p = 0; p < m; p++) s[i * n + j] += g[p * n + i]! * g[p * n + j]!;
    const P = inverseRoot({ rows: n, cols: n, data: s } as Mat64, 2, { epsilon: 1e-3, epsilonMode: 'relative' }).root;
    const want = new Float64Array(m * n);
    for (let p = 0; p < m; p++)
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let i = 0; i < n; i++) acc += g[p * n + i]! * P.data[i * n + j]!;
        want[p * n + j] = -acc;
      }
    expect(relErr(d, want)).toBeLessThan(1e-4);
    // No statistic or root for the 40-row side.
    const names = (await slots).map((w) => w.name);
    expect(names.some((x) => x.endsWith('L0_1'))).toBe(true);
    expect(names.some((x) => x.endsWith('L0_0') || x.endsWith('W0_0'))).toBe(false);
    expect(opt.inverseRootCount).toBe(1);
    opt.dispose();
    v.dispose();
  });

  it('host kernels and tfjs ops agree over 12 steps with blocks, EMA and Adam grafting; leak-free', () => {
    const shape: [number, number] = [40, 12];
    const o: ShampooOptions = {
      learningRate: 0.01,
      beta2: 0.99,
      preconditionFrequency: 3,
      startPreconditioningStep: -1, // start = frequency (the default before issue 16's round 4)
      maxPreconditionerDim: 8,
      skipPreconditioningDimSizeGt: 16,
    };
    const run = (tfjs: boolean) => {
      const v = tf.variable(tf.zeros(shape), true, `shampoo_one_sided_${counter++}`);
      const opt = new Shampoo(o, { backend: tfjs ? 'tfjs' : 'auto' });
      let before = 0;
      for (let t = 1; t <= 12; t++) {
        if (t === 4) before = tf.memory().numTensors;
        const gt = tf.tensor(gradient(shape[0], shape[1], 100 + t), shape);
        opt.applyGradients({ [v.name]: gt });
        gt.dispose();
      }
      expect(tf.memory().numTensors).toBe(before);
      const out = Float64Array.from(v.dataSync());
      expect(opt.failedInverseRoots).toBe(0);
      // Blocks of 8 rows x 8/4 columns: only the column factors (8 and 4) are rooted.
      expect(opt.inverseRootCount).toBe(4 * 10);
      opt.dispose();
      v.dispose();
      return out;
    };
    expect(relErr(run(false), run(true))).toBeLessThan(1e-5);
  });
});
