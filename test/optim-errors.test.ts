// A bad loss closure is named by the optimizer, not left to fail inside tfjs.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { Adam, SGD, Shampoo } from '../optimizers/index.js';

describe('minimize with a bad loss closure', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  for (const [name, make] of [
    ['Adam', () => new Adam()],
    ['SGD', () => new SGD({ learningRate: 0.1 })],
    ['Shampoo', () => new Shampoo()],
  ] as const) {
    it(`${name}: non-function, non-tensor and non-scalar losses get errors naming the optimizer`, () => {
      const w = tf.variable(tf.ones([3]));
      const opt = make();
      expect(() => opt.minimize(5 as unknown as () => tf.Scalar)).toThrow(
        new RegExp(`${name}.minimize: the loss must be a function.*got number`),
      );
      expect(() => opt.minimize(() => 1 as unknown as tf.Scalar, false, [w])).toThrow(
        /must return a tf.Tensor, got number/,
      );
      expect(() => opt.minimize(() => tf.square(w) as tf.Scalar, false, [w])).toThrow(
        /must return a scalar \(rank 0\) but returned shape \[3\]/,
      );
      expect(Array.from(w.dataSync())).toEqual([1, 1, 1]);
      w.dispose();
      opt.dispose();
    });
  }
});
