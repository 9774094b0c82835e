// A tfjs-layers model compiled with categoricalCrossentropy: its HVP in the weights against
// central differences of the gradient, on cpu and wasm.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { hvpVars, valueAndGradVars } from '../src/autodiff/index.js';
import { expectClose, randomTensor, seededRandom } from './helpers/fd.js';

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`tfjs-layers model on ${backend}`, () => {
    beforeAll(async () => {
      await initBackend(backend);
    });

    it('HVP of the compiled loss in the weights matches central differences of the gradient', () => {
      const rand = seededRandom(3);
      const model = tf.sequential({
        layers: [
          tf.layers.dense({
            inputShape: [5],
            units: 6,
            activation: 'tanh',
            kernelInitializer: tf.initializers.glorotNormal({ seed: 1 }),
          }),
          tf.layers.dense({
            units: 4,
            activation: 'sigmoid',
            kernelInitializer: tf.initializers.glorotNormal({ seed: 2 }),
          }),
          tf.layers.dense({
            units: 3,
            activation: 'softmax',
            kernelInitializer: tf.initializers.glorotNormal({ seed: 3 }),
          }),
        ],
      });
      model.compile({ optimizer: 'sgd', loss: 'categoricalCrossentropy' });
      const X = randomTensor([10, 5], rand);
      const Y = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1, 2, 0], 'int32'), 3).toFloat();
      // The same loss function fit uses (clips probabilities, then log): through ClipByValue,
      // LogicalAnd and Softmax, all re-registered.
      const lossFn = model.loss as unknown as string;
      expect(lossFn).toBe('categoricalCrossentropy');
      const vars = model.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val);
      const loss = () => tf.mean(tf.metrics.categoricalCrossentropy(Y, model.apply(X) as tf.Tensor)) as tf.Scalar;
      const vs = vars.map((v) => randomTensor(v.shape, rand));
      const ws = vars.map((v) => randomTensor(v.shape, rand));
      const Hv = hvpVars(loss, vars, vs);
      Hv.forEach((h, i) => expect(h.shape).toEqual(vars[i].shape));
      const wHv = Hv.reduce((s, h, i) => s + tf.sum(tf.mul(h, ws[i])).dataSync()[0], 0);
      const h = 1e-2;
      const dirGrad = (sign: number): number => {
        const saved = vars.map((v) => v.clone());
        vars.forEach((v, i) => v.assign(tf.add(saved[i], tf.mul(ws[i], sign * h))));
        const { value, grads } = valueAndGradVars(loss, vars);
        const d = grads.reduce((s, g, i) => s + tf.sum(tf.mul(g, vs[i])).dataSync()[0], 0);
        tf.dispose([value, ...grads]);
        vars.forEach((v, i) => v.assign(saved[i]));
        tf.dispose(saved);
        return d;
      };
      const fd = (dirGrad(1) - dirGrad(-1)) / (2 * h);
      expectClose(wHv, fd, 3e-3, 1e-4, 'layers model w^T H v');
      model.dispose();
    });
  });
}
