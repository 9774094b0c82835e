// K-FAC against independently computed references on small cases (cpu backend):
// - one example, a linear softmax layer: the K-FAC block A (x) G equals the exact Fisher block
//   E_y~p[g_y g_y^T] from per-example gradients ('exact'), and g g^T for the data label
//   ('empirical');
// - a two-layer network: the factors equal a^T a / n and n ds^T ds (ds from tf.grads at the
//   pre-activations), and the update equals -lr (A_d (x) G_d)^-1 vec(grad) solved with the
//   explicit damped Kronecker product (pi-adjusted factored damping);
// - the block Schur-complement inverse used for large factors matches a float64 inverse.
import * as tf from '@tensorflow/tfjs';
import { Matrix, inverse, solve } from 'ml-matrix';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { toMatrix, maxRelDiff } from './helpers/matrix.js';
import '../src/autodiff/index.js';
import { KFAC } from '../optimizers/kfac.js';
import { dampedFactorInverse } from '../src/layers/index.js';

beforeAll(async () => {
  await initBackend('cpu');
});

/** Row-major Kronecker product: (A (x) G)[(i,j),(k,l)] = A[i,k] G[j,l]. */
function kron(A: Matrix, G: Matrix): Matrix {
  const out = new Matrix(A.rows * G.rows, A.columns * G.columns);
  for (let i = 0; i < A.rows; i++)
    for (let k = 0; k < A.columns; k++)
      for (let j = 0; j < G.rows; j++)
        for (let l = 0; l < G.columns; l++) out.set(i * G.rows + j, k * G.columns + l, A.get(i, k) * G.get(j, l));
  return out;
}

/** vec([dW; db]) of one example's loss for label `label`, by tf.grads (no K-FAC code). */
function perExampleGrad(x: tf.Tensor2D, W: tf.Variable, b: tf.Variable, label: number, classes: number): number[] {
  const y = tf.oneHot([label], classes).toFloat();
  const [gW, gb] = tf.grads(
    (w: tf.Tensor, bb: tf.Tensor) =>
      tf.losses.softmaxCrossEntropy(y, tf.add(tf.matMul(x, w as tf.Tensor2D), bb)) as tf.Scalar,
  )([W, b]);
  const m = tf.concat([gW!, tf.reshape(gb!, [1, -1])], 0);
  const out = Array.from(m.dataSync());
  tf.dispose([y, gW, gb, m]);
  return out;
}

describe('K-FAC block of a linear softmax layer for one example', () => {
  const classes = 4;
  const features = 3;
  const setup = () => {
    const x = tf.tensor2d([[0.7, -1.2, 0.4]]);
    const W = tf.variable(
      tf.tensor2d([
        [0.3, -0.2, 0.5, 0.1],
        [-0.4, 0.6, 0.2, -0.3],
        [0.1, 0.2, -0.5, 0.4],
      ]),
    );
    const b = tf.variable(tf.tensor1d([0.05, -0.1, 0.2, 0]));
    const label = 2;
    const y = tf.oneHot([label], classes).toFloat();
    const loss = () => tf.losses.softmaxCrossEntropy(y, tf.add(tf.matMul(x, W), b)) as tf.Scalar;
    return { x, W, b, y, label, loss, dispose: () => tf.dispose([x, W, b, y]) };
  };

  it("'exact' estimation: A (x) G equals the exact Fisher block from per-example gradients", () => {
    const s = setup();
    const p = Array.from(tf.softmax(tf.add(tf.matMul(s.x, s.W), s.b)).dataSync());
    const n = (features + 1) * classes;
    const F = Matrix.zeros(n, n);
    for (let c = 0; c < classes; c++) {
      const g = Matrix.columnVector(perExampleGrad(s.x, s.W, s.b, c, classes));
      F.add(g.mmul(g.transpose()).mul(p[c]!));
    }
    const opt = new KFAC({ lossKind: 'softmax-cross-entropy', estimation: 'exact' }).registerDense({
      kernel: s.W,
      bias: s.b,
      name: 'linear',
    });
    opt.minimize(s.loss, false, [s.W, s.b]);
    const { A, G } = opt.factors('linear')!;
    const err = maxRelDiff(kron(toMatrix(A), toMatrix(G)), F);
    console.log(`exact Fisher block: max relative error ${err.toExponential(2)}`);
    expect(err).toBeLessThan(1e-5);
    s.dispose();
  });

  it("'empirical' estimation: A (x) G equals g g^T of the data label's gradient", () => {
    const s = setup();
    const g = Matrix.columnVector(perExampleGrad(s.x, s.W, s.b, s.label, classes));
    const opt = new KFAC({ estimation: 'empirical' }).registerDense({ kernel: s.W, bias: s.b, name: 'linear' });
    opt.minimize(s.loss, false, [s.W, s.b]);
    const { A, G } = opt.factors('linear')!;
    const err = maxRelDiff(kron(toMatrix(A), toMatrix(G)), g.mmul(g.transpose()));
    console.log(`empirical Fisher block: max relative error ${err.toExponential(2)}`);
    expect(err).toBeLessThan(1e-5);
    s.dispose();
  });
});

describe('K-FAC update of a two-layer network', () => {
  it('factors are a^T a / n and n ds^T ds, and the step solves the explicit damped Kronecker system', () => {
    const n = 6;
    const x = tf.randomNormal([n, 4], 0, 1, 'float32', 11) as tf.Tensor2D;
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2], 'int32'), 3).toFloat();
    const W1 = tf.variable(tf.randomNormal([4, 5], 0, 0.5, 'float32', 12));
    const b1 = tf.variable(tf.randomNormal([5], 0, 0.1, 'float32', 13));
    const W2 = tf.variable(tf.randomNormal([5, 3], 0, 0.5, 'float32', 14));
    const b2 = tf.variable(tf.randomNormal([3], 0, 0.1, 'float32', 15));
    const vars = [W1, b1, W2, b2];
    const forward = (s1Delta?: tf.Tensor, s2Delta?: tf.Tensor) => {
      let s1: tf.Tensor = tf.add(tf.matMul(x, W1), b1);
      if (s1Delta) s1 = tf.add(s1, s1Delta);
      const h = tf.tanh(s1);
      let s2: tf.Tensor = tf.add(tf.matMul(h as tf.Tensor2D, W2), b2);
      if (s2Delta) s2 = tf.add(s2, s2Delta);
      return { h, loss: tf.losses.softmaxCrossEntropy(y, s2) as tf.Scalar };
    };
    const loss = () => forward().loss;

    // References, computed before the step without any K-FAC code.
    const ones = tf.ones([n, 1]);
    const a1 = tf.concat([x, ones], 1);
    const a2 = tf.concat([forward().h, ones], 1);
    const zero1 = tf.zeros([n, 5]);
    const zero2 = tf.zeros([n, 3]);
    const [ds1, ds2] = tf.grads((d1: tf.Tensor, d2: tf.Tensor) => forward(d1, d2).loss)([zero1, zero2]);
    const refA = [a1, a2].map((a) => toMatrix(tf.div(tf.matMul(tf.transpose(a), a), n)));
    const refG = [ds1!, ds2!].map((d) => toMatrix(tf.mul(tf.matMul(tf.transpose(d), d), n)));
    const grads = tf.grads(() => loss())(vars);
    const gradMats = [
      toMatrix(tf.concat([grads[0]!, tf.reshape(grads[1]!, [1, -1])], 0)),
      toMatrix(tf.concat([grads[2]!, tf.reshape(grads[3]!, [1, -1])], 0)),
    ];
    const before = [W1, b1, W2, b2].map((v) => v.clone());

    const lr = 0.5;
    const lambda = 0.05;
    const opt = new KFAC({
      ...KFAC.STEP_EFFICIENT_SETTINGS, // exact inverses refreshed at the first step, no KL clip
      estimation: 'empirical',
      adaptive: false,
      adaptDamping: false,
      momentum: 0,
      learningRate: lr,
      damping: lambda,
    })
      .registerDense({ kernel: W1, bias: b1, name: 'l1' })
      .registerDense({ kernel: W2, bias: b2, name: 'l2' });
    opt.minimize(loss, false, vars);

    const errs: number[] = [];
    ['l1', 'l2'].forEach((name, l) => {
      const { A, G } = opt.factors(name)!;
      const Am = toMatrix(A);
      const Gm = toMatrix(G);
      errs.push(maxRelDiff(Am, refA[l]!), maxRelDiff(Gm, refG[l]!));
      // pi-adjusted factored damping, from the reference factors.
      const trA = refA[l]!.trace() / refA[l]!.rows;
      const trG = refG[l]!.trace() / refG[l]!.rows;
      const pi = Math.sqrt(trA / trG);
      const Ad = refA[l]!.clone().add(Matrix.eye(refA[l]!.rows).mul(pi * Math.sqrt(lambda)));
      const Gd = refG[l]!.clone().add(Matrix.eye(refG[l]!.rows).mul(Math.sqrt(lambda) / pi));
      const g = Matrix.columnVector(gradMats[l]!.to1DArray());
      const step = solve(kron(Ad, Gd), g).mul(-lr);
      const [Wv, bv] = l === 0 ? [W1, b1] : [W2, b2];
      const [W0, b00] = l === 0 ? [before[0]!, before[1]!] : [before[2]!, before[3]!];
      const actual = toMatrix(tf.concat([tf.sub(Wv, W0), tf.reshape(tf.sub(bv, b00), [1, -1])], 0));
      errs.push(maxRelDiff(Matrix.columnVector(actual.to1DArray()), step));
    });
    console.log(`two-layer factors and step: max relative errors ${errs.map((e) => e.toExponential(1)).join(', ')}`);
    expect(Math.max(...errs)).toBeLessThan(1e-4);
    tf.dispose([x, y, ...vars, ones, a1, a2, zero1, zero2, ds1!, ds2!, ...grads, ...before]);
  });
});

describe('targets back-propagated through the tape', () => {
  it("'exact' estimation: the hidden layer's G equals n sum_k J^T c_k c_k^T J with c_k the output Fisher's root", () => {
    const n = 5;
    const x = tf.randomNormal([n, 4], 0, 1, 'float32', 31) as tf.Tensor2D;
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1], 'int32'), 3).toFloat();
    const W1 = tf.variable(tf.randomNormal([4, 5], 0, 0.7, 'float32', 32));
    const b1 = tf.variable(tf.randomNormal([5], 0, 0.1, 'float32', 33));
    const W2 = tf.variable(tf.randomNormal([5, 3], 0, 0.7, 'float32', 34));
    const b2 = tf.variable(tf.randomNormal([3], 0, 0.1, 'float32', 35));
    const logits = (d1?: tf.Tensor) => {
      let s1: tf.Tensor = tf.add(tf.matMul(x, W1), b1);
      if (d1) s1 = tf.add(s1, d1);
      return tf.add(tf.matMul(tf.tanh(s1) as tf.Tensor2D, W2), b2);
    };
    // Reference: c_k = sqrt(p_k) (e_k - p) / n per example; ds1_k = J^T c_k by tf.grads.
    const p = tf.softmax(logits());
    let G1 = tf.zeros([5, 5]);
    for (let k = 0; k < 3; k++) {
      const ck = tf.div(
        tf.mul(tf.sqrt(tf.slice(p, [0, k], [n, 1])), tf.sub(tf.oneHot(tf.fill([n], k, 'int32'), 3), p)),
        n,
      );
      const [ds1] = tf.grads((d1: tf.Tensor) => tf.sum(tf.mul(logits(d1), ck)) as tf.Scalar)([tf.zeros([n, 5])]);
      G1 = tf.add(G1, tf.mul(tf.matMul(tf.transpose(ds1!), ds1!), n));
    }
    const opt = new KFAC({ lossKind: 'softmax-cross-entropy', estimation: 'exact' })
      .registerDense({ kernel: W1, bias: b1, name: 'l1' })
      .registerDense({ kernel: W2, bias: b2, name: 'l2' });
    opt.minimize(() => tf.losses.softmaxCrossEntropy(y, logits()) as tf.Scalar, false, [W1, b1, W2, b2]);
    const err = maxRelDiff(toMatrix(opt.factors('l1')!.G), toMatrix(G1));
    console.log(`hidden-layer G from tape back-propagation: max relative error ${err.toExponential(2)}`);
    expect(err).toBeLessThan(1e-5);
    tf.dispose([x, y, W1, b1, W2, b2, p, G1]);
  });
});

describe('damped factor inverse', () => {
  it('the block Schur-complement inverse (n > 160) matches a float64 inverse', () => {
    const n = 300;
    const r = tf.randomNormal([n, 200], 0, 1, 'float32', 21);
    const M = tf.tidy(() => tf.add(tf.div(tf.matMul(r, tf.transpose(r)), 200), tf.mul(tf.eye(n), 0.05))) as tf.Tensor2D;
    const inv = dampedFactorInverse(M);
    const ref = inverse(toMatrix(M));
    const err = maxRelDiff(toMatrix(inv), ref);
    console.log(`Schur inverse n=${n}: max relative error ${err.toExponential(2)}`);
    expect(err).toBeLessThan(1e-3);
    tf.dispose([r, M, inv]);
  });
});
