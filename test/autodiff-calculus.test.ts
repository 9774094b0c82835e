// The matrix-calculus API against closed forms, layouts, shape rules and bad input.
import * as tf from '@tensorflow/tfjs';
import { Matrix, inverse } from 'ml-matrix';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import {
  grad,
  hvp,
  vjp,
  jvp,
  ggnvp,
  jacobian,
  hessian,
  gradcheck,
  losses,
  hvpVars,
  valueAndGradVars,
  ggnvpVars,
} from '../src/autodiff/index.js';
import { centralDiff, dotData, expectClose, maxAbsDiff, randomTensor, seededRandom } from './helpers/fd.js';

const rand = seededRandom(42);

function arr2(t: tf.Tensor): number[][] {
  return t.arraySync() as number[][];
}

function expectMatrixClose(actual: number[][], expected: number[][], tol: number): void {
  expect(actual.length).toBe(expected.length);
  const err = maxAbsDiff(actual.flat(), expected.flat());
  const scale = Math.max(1, ...expected.flat().map(Math.abs));
  expect(err / scale).toBeLessThan(tol);
}

describe('matrix calculus (cpu)', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('grad(a^T x) = a, shaped like x', () => {
    const a = randomTensor([4, 3], rand);
    const x = randomTensor([4, 3], rand);
    const [g] = grad((y) => tf.sum(tf.mul(a, y)) as tf.Scalar, [x]);
    expect(g.shape).toEqual([4, 3]);
    expect(maxAbsDiff(g.dataSync(), a.dataSync())).toBeLessThan(1e-6);
  });

  it('hessian(x^T A x) = A + A^T', () => {
    const A = randomTensor([5, 5], rand);
    const x = randomTensor([5], rand);
    const H = hessian((y) => tf.sum(tf.mul(y, tf.squeeze(tf.matMul(A, tf.reshape(y, [5, 1]))))) as tf.Scalar, x);
    expect(H.shape).toEqual([5, 5]);
    expectMatrixClose(arr2(H), arr2(tf.add(A, tf.transpose(A))), 1e-5);
  });

  it('hessian(||A x - b||^2) = 2 A^T A', () => {
    const A = randomTensor([6, 4], rand);
    const b = randomTensor([6, 1], rand);
    const x = randomTensor([4], rand);
    const f = (y: tf.Tensor) => tf.sum(tf.square(tf.sub(tf.matMul(A, tf.reshape(y, [4, 1])), b))) as tf.Scalar;
    expectMatrixClose(arr2(hessian(f, x)), arr2(tf.mul(2, tf.matMul(tf.transpose(A), A))), 1e-5);
  });

  it('grad(log det X) = X^{-T} (3x3, det by cofactors)', () => {
    const X = tf.add(randomTensor([3, 3], rand, 0.3), tf.mul(tf.eye(3), 2));
    const logDet = (Y: tf.Tensor): tf.Scalar => {
      const e = (i: number, j: number) => tf.reshape(tf.slice(Y, [i, j], [1, 1]), []);
      const m = (a: tf.Tensor, b: tf.Tensor) => tf.mul(a, b);
      const det = tf.addN([
        m(e(0, 0), tf.sub(m(e(1, 1), e(2, 2)), m(e(1, 2), e(2, 1)))),
        tf.neg(m(e(0, 1), tf.sub(m(e(1, 0), e(2, 2)), m(e(1, 2), e(2, 0))))),
        m(e(0, 2), tf.sub(m(e(1, 0), e(2, 1)), m(e(1, 1), e(2, 0)))),
      ]);
      return tf.log(det) as tf.Scalar;
    };
    const [g] = grad(logDet, [X]);
    const invT = inverse(new Matrix(arr2(X)))
      .transpose()
      .to2DArray();
    expectMatrixClose(arr2(g), invT, 1e-5);
  });

  it('grad(tr(A X)) = A^T', () => {
    const A = randomTensor([3, 4], rand);
    const X = randomTensor([4, 3], rand);
    const [g] = grad((Y) => tf.sum(tf.mul(tf.eye(3), tf.matMul(A, Y))) as tf.Scalar, [X]);
    expectMatrixClose(arr2(g), arr2(tf.transpose(A)), 1e-6);
  });

  it('logistic regression Hessian = X^T diag(p(1-p)) X / n', () => {
    const n = 20;
    const d = 4;
    const X = randomTensor([n, d], rand, 1.5);
    const y = tf.tensor(
      Array.from({ length: n }, (_, i) => i % 2),
      [n, 1],
    );
    const w = randomTensor([d], rand, 0.5);
    const f = (v: tf.Tensor) => losses.sigmoidCrossEntropy(y, tf.matMul(X, tf.reshape(v, [d, 1])));
    const p = tf.sigmoid(tf.matMul(X, tf.reshape(w, [d, 1])));
    const D = tf.mul(p, tf.sub(1, p)); // [n, 1]
    const expected = tf.div(tf.matMul(tf.transpose(X), tf.mul(X, D)), n);
    expectMatrixClose(arr2(hessian(f, w)), arr2(expected), 1e-5);
  });

  it('softmax cross-entropy Hessian in the logits = (diag(p) - p p^T) / batch', () => {
    const z = randomTensor([1, 5], rand, 2);
    const labels = tf.oneHot([3], 5).toFloat();
    const H = tf.reshape(
      hessian((l) => losses.softmaxCrossEntropy(labels, l), z),
      [5, 5],
    );
    const p = tf.softmax(z).reshape([5, 1]);
    const expected = tf.sub(tf.diag(tf.reshape(p, [5])), tf.matMul(p, tf.transpose(p)));
    expectMatrixClose(arr2(H), arr2(expected), 1e-5);
    // Symmetric.
    expectMatrixClose(arr2(H), arr2(tf.transpose(H)), 1e-7);
  });

  it('MLP with tanh/sigmoid and softmax cross-entropy: HVP matches central differences', () => {
    const X = randomTensor([8, 5], rand);
    const Y = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], 'int32'), 3).toFloat();
    const W1 = randomTensor([5, 6], rand, 0.5);
    const b1 = randomTensor([6], rand, 0.1);
    const W2 = randomTensor([6, 4], rand, 0.5);
    const W3 = randomTensor([4, 3], rand, 0.5);
    const f = (w1: tf.Tensor, c1: tf.Tensor, w2: tf.Tensor, w3: tf.Tensor) =>
      losses.softmaxCrossEntropy(Y, tf.matMul(tf.sigmoid(tf.matMul(tf.tanh(tf.add(tf.matMul(X, w1), c1)), w2)), w3));
    const xs = [W1, b1, W2, W3];
    const vs = xs.map((t) => randomTensor(t.shape, rand));
    const ws = xs.map((t) => randomTensor(t.shape, rand));
    const Hv = hvp(f, xs, vs);
    Hv.forEach((h, i) => expect(h.shape).toEqual(xs[i].shape));
    const wHv = Hv.reduce((s, h, i) => s + dotData(h, ws[i]), 0);
    // d/dt <grad f(xs + t ws), vs> by central differences on the flattened vector.
    const flat = tf.concat(xs.map((t) => tf.reshape(t, [-1])));
    const dir = tf.concat(ws.map((t) => tf.reshape(t, [-1])));
    const unflat = (z: tf.Tensor) => {
      let o = 0;
      return xs.map((t) => {
        const part = tf.reshape(tf.slice(z, [o], [t.size]), t.shape);
        o += t.size;
        return part;
      });
    };
    const fd = centralDiff(
      (z) => tf.tidy(() => grad(f, unflat(z)).reduce((s, g, i) => s + dotData(g, vs[i]), 0)),
      flat,
      dir,
    );
    expectClose(wHv, fd, 2e-3, 1e-4, 'MLP w^T H v');
    expect(gradcheck(f, xs).ok).toBe(true);
  });

  it('vjp and jvp agree: <u, J v> = <J^T u, v>, and jvp matches central differences', () => {
    const A = randomTensor([3, 4], rand);
    const f = (x: tf.Tensor) => tf.tanh(tf.matMul(A, tf.reshape(x, [4, 1])));
    const x = randomTensor([4], rand);
    const v = randomTensor([4], rand);
    const u = randomTensor([3, 1], rand);
    const { vjp: jtU } = vjp(f, [x], u);
    const { value, jvp: jv } = jvp(f, [x], [v]);
    expect(value.shape).toEqual([3, 1]);
    expect(jv.shape).toEqual([3, 1]);
    expectClose(dotData(u, jv), dotData(jtU[0], v), 1e-5, 1e-6, '<u, Jv> vs <J^T u, v>');
    const fd = centralDiff((y) => tf.tidy(() => dotData(f(y), u)), x, v, 1e-3);
    expectClose(dotData(u, jv), fd, 1e-2, 1e-3, 'jvp vs central differences');
  });

  it('ggnvp equals J^T H_L J v from explicit matrices, and is PSD', () => {
    const X = randomTensor([4, 3], rand);
    const labels = tf.oneHot(tf.tensor1d([0, 1, 1, 0], 'int32'), 2).toFloat();
    const W = randomTensor([3, 2], rand);
    const out = (w: tf.Tensor) => tf.matMul(X, tf.reshape(w, [3, 2]));
    const loss = (z: tf.Tensor) => losses.softmaxCrossEntropy(labels, z);
    const wf = tf.reshape(W, [6]);
    const v = randomTensor([6], rand);
    const Gv = ggnvp(out, loss, [wf], [v])[0];
    const J = tf.reshape(jacobian(out, wf), [8, 6]);
    const HL = tf.reshape(hessian(loss, out(wf)), [8, 8]);
    const expected = tf.matMul(tf.transpose(J), tf.matMul(HL, tf.matMul(J, tf.reshape(v, [6, 1]))));
    expect(maxAbsDiff(Gv.dataSync(), expected.dataSync())).toBeLessThan(1e-5);
    expect(dotData(Gv, v)).toBeGreaterThanOrEqual(0);
    // For a linear model with a convex loss, GGN = Hessian.
    const Hv = hvp((w) => loss(out(w)), [wf], [v])[0];
    expect(maxAbsDiff(Gv.dataSync(), Hv.dataSync())).toBeLessThan(1e-5);
  });

  it('jacobian layouts: numerator [...out, ...in], denominator is its transpose', () => {
    const A = randomTensor([2, 3, 4], rand);
    const f = (x: tf.Tensor) => tf.sum(tf.mul(A, tf.reshape(x, [1, 1, 4])), 2); // out [2, 3], J[i, j, k] = A[i, j, k]
    const x = randomTensor([4], rand);
    const Jn = jacobian(f, x);
    expect(Jn.shape).toEqual([2, 3, 4]);
    expect(maxAbsDiff(Jn.dataSync(), A.dataSync())).toBeLessThan(1e-6);
    const Jd = jacobian(f, x, { layout: 'denominator' });
    expect(Jd.shape).toEqual([4, 2, 3]);
    expect(maxAbsDiff(Jd.dataSync(), tf.transpose(A, [2, 0, 1]).dataSync())).toBeLessThan(1e-6);
  });

  it('a bias gradient sums over the batch and has the shape of the bias', () => {
    const X = randomTensor([7, 3], rand);
    const W = randomTensor([3, 2], rand);
    const b = randomTensor([2], rand);
    const G = randomTensor([7, 2], rand); // upstream weights: loss = sum(G * (XW + b))
    const [gW, gb] = grad((w, c) => tf.sum(tf.mul(G, tf.add(tf.matMul(X, w), c))) as tf.Scalar, [W, b]);
    expect(gb.shape).toEqual([2]);
    expect(maxAbsDiff(gb.dataSync(), tf.sum(G, 0).dataSync())).toBeLessThan(1e-5);
    expect(gW.shape).toEqual([3, 2]);
    expect(maxAbsDiff(gW.dataSync(), tf.matMul(tf.transpose(X), G).dataSync())).toBeLessThan(1e-5);
  });

  it('variable forms: hvpVars and ggnvpVars on closures over tf.Variables', () => {
    const X = randomTensor([5, 3], rand);
    const y = randomTensor([5, 1], rand);
    const w = tf.variable(randomTensor([3, 1], rand));
    const out = () => tf.matMul(X, w);
    const loss = (z: tf.Tensor) => losses.meanSquaredError(y, z);
    const v = randomTensor([3, 1], rand);
    const { value, grads } = valueAndGradVars(() => loss(out()), [w]);
    expect(value.rank).toBe(0);
    expect(grads[0].shape).toEqual([3, 1]);
    const Hv = hvpVars(() => loss(out()), [w], [v])[0];
    const expected = tf.matMul(tf.transpose(X), tf.matMul(X, v)).mul(2 / 5);
    expect(maxAbsDiff(Hv.dataSync(), expected.dataSync())).toBeLessThan(1e-5);
    const Gv = ggnvpVars(out, loss, [w], [v])[0];
    expect(maxAbsDiff(Gv.dataSync(), expected.dataSync())).toBeLessThan(1e-5);
  });

  it('gradcheck flags a wrong gradient', () => {
    // Deliberately wrong: the true gradient is 2x.
    const bad = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const x = args[0] as tf.Tensor;
      return { value: tf.sum(tf.square(x)), gradFunc: (dy: tf.Tensor) => tf.mul(dy, x) };
    });
    const x = randomTensor([5], rand, 1, 2);
    const r = gradcheck((y) => bad(y) as tf.Scalar, [x]);
    expect(r.ok).toBe(false);
    expect(r.maxRelError).toBeGreaterThan(0.4);
    expect(gradcheck((y) => tf.sum(tf.square(y)) as tf.Scalar, [x]).ok).toBe(true);
  });

  it('products leave no tensors behind', () => {
    const x = randomTensor([4], rand);
    const v = randomTensor([4], rand);
    const f = (y: tf.Tensor) => losses.softmaxCrossEntropy(tf.tensor([[0, 1, 0, 0]]), tf.reshape(tf.tanh(y), [1, 4]));
    const run = () => {
      tf.dispose(hvp(f, [x], [v]));
      const r = jvp((y) => tf.exp(y), [x], [v]);
      tf.dispose([r.value, r.jvp]);
      tf.dispose(
        ggnvp(
          (y) => tf.reshape(tf.tanh(y), [1, 4]),
          (z) => losses.softmaxCrossEntropy(tf.tensor([[0, 1, 0, 0]]), z),
          [x],
          [v],
        ),
      );
    };
    run();
    const before = tf.memory().numTensors;
    run();
    run();
    expect(tf.memory().numTensors).toBe(before);
  });

  describe('bad input gets an error that names the problem', () => {
    let x: tf.Tensor;
    beforeAll(() => {
      x = tf.tensor([1, 2, 3]);
    });
    it('non-scalar f for grad, hvp, hessian', () => {
      expect(() => grad((y) => tf.square(y) as tf.Scalar, [x])).toThrow(/must return a scalar.*shape \[3\]/);
      expect(() => hvp((y) => tf.square(y) as tf.Scalar, [x], [x])).toThrow(/hvp: f must return a scalar/);
      expect(() => hessian((y) => tf.square(y) as tf.Scalar, x)).toThrow(/hessian: f must return a scalar/);
    });
    it('mismatched vector shapes', () => {
      expect(() => hvp((y) => tf.sum(y) as tf.Scalar, [x], [tf.ones([2])])).toThrow(
        /vs\[0\] has shape \[2\] but xs\[0\] has shape \[3\]/,
      );
      expect(() => hvp((y) => tf.sum(y) as tf.Scalar, [x], [x, x])).toThrow(/vs has 2 tensors but xs has 1/);
      expect(() => vjp((y) => tf.square(y), [x], tf.ones([4]))).toThrow(
        /u has shape \[4\] but f\(xs\) has shape \[3\]/,
      );
    });
    it('sizes over the limit point to the products', () => {
      const big = tf.zeros([3000]);
      expect(() => hessian((y) => tf.sum(y) as tf.Scalar, big)).toThrow(
        /9000000 entries, over the limit of 4194304.*hvp/,
      );
      expect(() => jacobian((y) => y, x, { maxEntries: 4 })).toThrow(/over the limit of 4.*vjp \/ jvp/);
    });
    it('a non-tensor argument', () => {
      expect(() => hvp((y) => tf.sum(y) as tf.Scalar, [[1, 2, 3] as unknown as tf.Tensor], [x])).toThrow(
        /hvp: xs\[0\] must be a tf.Tensor, got an array of length 3/,
      );
      expect(() => grad((y) => tf.sum(y) as tf.Scalar, x as unknown as tf.Tensor[])).toThrow(
        /xs must be an array of tf.Tensor/,
      );
      expect(() => hessian('f' as unknown as (x: tf.Tensor) => tf.Scalar, x)).toThrow(/f must be a function/);
      expect(() => jacobian((y) => y, x, { layout: 'rows' as 'numerator' })).toThrow(
        /layout must be 'numerator' or 'denominator'/,
      );
      expect(() => losses.softmaxCrossEntropy(tf.ones([2, 3]), tf.ones([2, 4]))).toThrow(
        /labels have shape \[2,3\] but logits have shape \[2,4\]/,
      );
    });
  });
});
