/**
 * Shampoo's roots off the training thread (rootStaleness > 0, src/async): the worker and the
 * inline service give bit-identical trajectories in deterministic mode; the trajectory stays
 * within float32 noise plus the staleness of the synchronous one; steps are leak-free and no root
 * fails; a bad option is refused.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { createInlineMatrixService, createMatrixWorker, type MatrixService } from '../src/async/index.js';
import { Shampoo, type ShampooInternals, type ShampooOptions } from '../optimizers/shampoo.js';
import { Mlp, relErr } from './optim-helpers.js';

let worker: MatrixService;
beforeAll(async () => {
  expect(await initBackend('wasm')).toBe('wasm');
  worker = createMatrixWorker();
});
afterAll(async () => {
  await worker.close();
});

const options: ShampooOptions = {
  learningRate: 0.01,
  beta2: 0.99,
  maxPreconditionerDim: 8,
  preconditionFrequency: 3,
};

function train(o: ShampooOptions, internals: ShampooInternals, steps: number) {
  const a = Mlp.create(7);
  const opt = new Shampoo(o, internals);
  let tensors = 0;
  for (let i = 0; i < steps; i++) {
    if (i === 6) tensors = tf.memory().numTensors;
    opt.minimize(a.loss, false, a.vars);
  }
  const leak = tf.memory().numTensors - tensors;
  const loss = tf.tidy(() => a.loss().dataSync()[0]!);
  const out = { w: a.flat(), loss, roots: opt.inverseRootCount, failed: opt.failedInverseRoots, leak };
  opt.dispose();
  return out;
}

describe('Shampoo with asynchronous roots', () => {
  it('deterministic: the worker and the inline service give the same trajectory, bit for bit', () => {
    const o = { ...options, rootStaleness: 2 };
    const w = train(o, { matrixService: worker, deterministicRoots: true }, 25);
    const i = train(o, { matrixService: createInlineMatrixService(), deterministicRoots: true }, 25);
    expect(Array.from(w.w)).toEqual(Array.from(i.w));
    expect(w.roots).toBe(i.roots);
    expect(w.roots).toBeGreaterThan(0);
    expect(w.failed).toBe(0);
    expect(w.leak).toBe(0);
  });

  it('trains like the synchronous roots (up to 2 steps late): loss within 10%, weights within 3%', () => {
    const sync = train(options, {}, 25);
    const late = train({ ...options, rootStaleness: 2 }, { matrixService: worker }, 25);
    const start = tf.tidy(() => Mlp.create(7).loss().dataSync()[0]!);
    expect(sync.loss).toBeLessThan(0.8 * start);
    expect(Math.abs(late.loss - sync.loss)).toBeLessThan(0.1 * sync.loss);
    // Free-running, a small job can come back within its own step (then the trajectory equals the
    // synchronous one): only the closeness is asserted here; the lateness is asserted below.
    expect(relErr(late.w, sync.w)).toBeLessThan(3e-2);
    expect(late.failed).toBe(0);
    expect(late.leak).toBe(0);
    // Deterministic mode swaps each root in exactly rootStaleness steps late: a different, close trajectory.
    const det = train({ ...options, rootStaleness: 2 }, { matrixService: worker, deterministicRoots: true }, 25);
    const err = relErr(det.w, sync.w);
    expect(err).toBeGreaterThan(0);
    expect(err).toBeLessThan(3e-2);
    expect(Math.abs(det.loss - sync.loss)).toBeLessThan(0.1 * sync.loss);
  });

  it('refuses rootStaleness with coupled Newton roots', () => {
    expect(() => new Shampoo({ rootStaleness: 1, inverseRootMethod: 'coupled-newton' })).toThrow(/rootStaleness/);
  });
});
