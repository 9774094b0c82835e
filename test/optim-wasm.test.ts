/** The optimizers on the wasm backend: parity with tfjs and leak-freedom. */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { Adam, RMSProp, SGD } from '../optimizers/index.js';
import { Mlp, relErr } from './optim-helpers.js';

beforeAll(async () => {
  expect(await initBackend('wasm')).toBe('wasm');
});

describe('wasm backend', () => {
  it('Adam and Nesterov SGD match tfjs over 100 MLP steps', () => {
    for (const [ours, theirs] of [
      [new Adam({ learningRate: 0.01 }), tf.train.adam(0.01, 0.9, 0.999, 1e-8)],
      [new SGD({ learningRate: 0.05, momentum: 0.9, nesterov: true }), tf.train.momentum(0.05, 0.9, true)],
    ] as const) {
      const a = Mlp.create(11);
      const b = a.clone();
      for (let i = 0; i < 100; i++) {
        ours.minimize(a.loss, false, a.vars);
        theirs.minimize(b.loss, false, b.vars);
      }
      expect(relErr(a.flat(), b.flat())).toBeLessThan(1e-5);
    }
  });

  it('RMSProp steps are leak-free', () => {
    const a = Mlp.create(12);
    const o = new RMSProp({ centered: true, momentum: 0.5 });
    o.minimize(a.loss, false, a.vars);
    const n = tf.memory().numTensors;
    for (let i = 0; i < 200; i++) o.minimize(a.loss, false, a.vars);
    expect(tf.memory().numTensors).toBe(n);
  });
});
