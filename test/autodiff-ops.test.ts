// Every re-registered kernel: second- and third-order directional derivatives against central
// differences of the order below, on cpu and wasm; first-order values equal stock tfjs.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { hvp, grad, REGISTERED_GRADIENT_KERNELS } from '../src/autodiff/index.js';
import { withStockGradients } from '../src/autodiff/registrations.js';
import { centralDiff, dotData, expectClose, randomTensor, seededRandom } from './helpers/fd.js';

type Op = (x: tf.Tensor) => tf.Tensor;

// Points are kept away from kinks (0, +-0.5, 6) so piecewise ops are smooth where tested.
const X0 = [0.31, -0.72, 1.23, -1.41, 0.83, -0.27];
const OPS: Record<string, { op: Op; kernels: string[] }> = {
  tanh: { op: tf.tanh, kernels: ['Tanh'] },
  sigmoid: { op: tf.sigmoid, kernels: ['Sigmoid'] },
  exp: { op: tf.exp, kernels: ['Exp'] },
  elu: { op: tf.elu, kernels: ['Elu', 'Greater'] },
  selu: { op: tf.selu, kernels: ['Selu', 'Greater'] },
  softmax: { op: (x) => tf.softmax(tf.reshape(x, [2, 3])), kernels: ['Softmax'] },
  max: { op: (x) => tf.max(tf.reshape(x, [2, 3]), 1), kernels: ['Max', 'Equal'] },
  min: { op: (x) => tf.min(tf.reshape(x, [3, 2]), 0), kernels: ['Min', 'Equal'] },
  logSumExp: { op: (x) => tf.logSumExp(tf.reshape(x, [2, 3]), 1), kernels: ['Max', 'Exp', 'Equal'] },
  powBase: { op: (x) => tf.pow(tf.add(tf.abs(x), 0.5), tf.scalar(2.5)), kernels: ['Pow'] },
  powExponent: { op: (x) => tf.pow(tf.scalar(1.7), x), kernels: ['Pow', 'Greater'] },
  leakyRelu: { op: (x) => tf.leakyRelu(x, 0.1), kernels: ['Greater'] },
  prelu: { op: (x) => tf.prelu(x, tf.scalar(0.2)), kernels: ['Greater'] },
  relu6: { op: (x) => tf.relu6(tf.mul(x, 5)), kernels: ['LessEqual'] },
  clipByValue: { op: (x) => tf.clipByValue(x, -1, 1), kernels: ['LogicalAnd', 'GreaterEqual', 'LessEqual'] },
  maximum: { op: (x) => tf.maximum(x, 0.5), kernels: ['GreaterEqual', 'Less'] },
  minimum: { op: (x) => tf.minimum(x, 0.5), kernels: ['LessEqual', 'Greater'] },
  select: { op: (x) => tf.where(tf.greater(x, 0), tf.square(x), tf.mul(x, 3)), kernels: ['Greater', 'LogicalNot'] },
  matMul: {
    op: (x) => tf.matMul(tf.reshape(x, [2, 3]), tf.tanh(tf.reshape(x, [3, 2]))),
    kernels: ['BatchMatMul', 'Tanh'],
  },
  matMulTransposed: {
    op: (x) => tf.matMul(tf.reshape(x, [3, 2]), tf.sin(tf.reshape(x, [3, 2])), true, false),
    kernels: ['BatchMatMul'],
  },
};

// A smooth scalar wrapper whose Hessian mixes coordinates: f(x) = sum(c * sin(op(x)) + op(x)^2 / 2).
function scalarOf(op: Op, c: tf.Tensor): (x: tf.Tensor) => tf.Scalar {
  return (x) => {
    const y = tf.reshape(op(x), [-1]);
    const cc = tf.slice(c, [0], [y.size]);
    return tf.sum(tf.add(tf.mul(cc, tf.sin(y)), tf.mul(0.5, tf.square(y)))) as tf.Scalar;
  };
}

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`higher-order gradients on ${backend}`, () => {
    const rand = seededRandom(7);
    let x: tf.Tensor;
    let v: tf.Tensor;
    let w: tf.Tensor;
    let c: tf.Tensor;
    beforeAll(async () => {
      await initBackend(backend);
      x = tf.tensor(X0);
      v = randomTensor([6], rand);
      w = randomTensor([6], rand);
      c = randomTensor([6], rand);
    });
    afterAll(() => tf.dispose([x, v, w, c]));

    it('covers every kernel listed in the issue', () => {
      const required = ['Tanh', 'Sigmoid', 'Exp', 'Elu', 'Selu', 'Softmax', 'Max', 'Min', 'Pow', 'BatchMatMul'];
      for (const k of required) expect(REGISTERED_GRADIENT_KERNELS).toContain(k);
      for (const k of ['Equal', 'Greater', 'GreaterEqual', 'Less', 'LessEqual', 'LogicalAnd', 'LogicalNot']) {
        expect(REGISTERED_GRADIENT_KERNELS).toContain(k);
      }
    });

    for (const [name, { op }] of Object.entries(OPS)) {
      it(`${name}: first order equals stock tfjs, second and third order match central differences`, () => {
        const f = scalarOf(op, c);
        // First order: same values as stock tfjs (where stock can compute it at all).
        const ours = tf.tidy(() => grad(f, [x])[0].dataSync().slice());
        const stock = withStockGradients(() => tf.tidy(() => tf.grad(f)(x).dataSync().slice()));
        for (let i = 0; i < ours.length; i++) expectClose(ours[i], stock[i], 1e-6, 1e-6, `${name} grad[${i}]`);

        // Second order: v^T H w against the central difference of w -> v . grad f(x + t w).
        const vHw = tf.tidy(() => dotData(hvp(f, [x], [w])[0], v));
        const fd2 = centralDiff((y) => tf.tidy(() => dotData(grad(f, [y])[0], v)), x, w);
        expectClose(vHw, fd2, 2e-3, 2e-3, `${name} v^T H w`);

        // Third order: d/dt v^T H(x + t w) v, autodiff (grad of the HVP) against central differences.
        const third = tf.tidy(() => {
          const g = tf.grad((y: tf.Tensor) => tf.sum(tf.mul(hvp(f, [y], [v])[0], v)))(x);
          return dotData(g, w);
        });
        const fd3 = centralDiff((y) => tf.tidy(() => dotData(hvp(f, [y], [v])[0], v)), x, w);
        expectClose(third, fd3, 5e-3, 5e-3, `${name} third order`);
      });
    }

    it('fixes the silently wrong stock HVP of sum(tanh(x)^2) (tfjs#3252)', () => {
      const f = (y: tf.Tensor) => tf.sum(tf.square(tf.tanh(y))) as tf.Scalar;
      const t = tf.tanh(x).dataSync();
      const vd = v.dataSync();
      const exact = Array.from(t, (ti, i) => (2 * (1 - ti * ti) ** 2 - 4 * ti * ti * (1 - ti * ti)) * vd[i]);
      const ours = tf.tidy(() => hvp(f, [x], [v])[0].dataSync().slice());
      for (let i = 0; i < exact.length; i++) expectClose(ours[i], exact[i], 1e-5, 1e-5, `tanh^2 Hv[${i}]`);
      // Stock tfjs is wrong here (that is the bug being fixed); if it ever becomes right, this
      // comparison tells us the registration is no longer needed.
      const stock = withStockGradients(() =>
        tf.tidy(() =>
          tf
            .grad((y: tf.Tensor) => tf.sum(tf.mul(tf.grad(f)(y), v)))(x)
            .dataSync()
            .slice(),
        ),
      );
      const stockErr = Math.max(...exact.map((e, i) => Math.abs(stock[i] - e)));
      expect(stockErr).toBeGreaterThan(1e-2);
    });

    it('leaves no tensors behind', () => {
      const f = scalarOf(OPS.softmax.op, c);
      tf.dispose(hvp(f, [x], [v]));
      const before = tf.memory().numTensors;
      for (let i = 0; i < 5; i++) tf.dispose(hvp(f, [x], [v]));
      expect(tf.memory().numTensors).toBe(before);
    });
  });
}
