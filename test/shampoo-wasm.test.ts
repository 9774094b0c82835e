/**
 * Shampoo on the wasm backend, where the kernel path hands tfjs a view of the module's memory
 * (copied by tfjs at once): same trajectory as the tfjs-ops path, and leak-free.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { Shampoo, type ShampooOptions } from '../optimizers/shampoo.js';
import { Mlp, relErr } from './optim-helpers.js';

beforeAll(async () => {
  expect(await initBackend('wasm')).toBe('wasm');
});

describe('Shampoo on the wasm backend', () => {
  const options: ShampooOptions = {
    learningRate: 0.01,
    grafting: 'adam',
    beta2: 0.99,
    maxPreconditionerDim: 8,
    preconditionFrequency: 4,
    startPreconditioningStep: -1, // start = frequency (the default before issue 16's round 4)
    epsilon: 1e-4,
  };

  it('kernel path matches the tfjs-ops path over 30 MLP steps', () => {
    const a = Mlp.create(5);
    const b = a.clone();
    const oa = new Shampoo(options);
    const ob = new Shampoo(options, { backend: 'tfjs' });
    for (let i = 0; i < 30; i++) {
      oa.minimize(a.loss, false, a.vars);
      ob.minimize(b.loss, false, b.vars);
    }
    expect(relErr(a.flat(), b.flat())).toBeLessThan(1e-5);
    expect(oa.inverseRootCount).toBe(ob.inverseRootCount);
  });

  it('steps are leak-free', () => {
    const a = Mlp.create(6);
    const o = new Shampoo(options);
    // Through the first root refresh (step 4), which creates the P slots.
    for (let i = 0; i < 4; i++) o.minimize(a.loss, false, a.vars);
    const n = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) o.minimize(a.loss, false, a.vars);
    expect(tf.memory().numTensors).toBe(n);
  });
});
