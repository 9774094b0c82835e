/**
 * Shampoo's products form on the host backend: the roots applied as float32 P = W^T W
 * (P_L F P_R, two products per block) instead of the factors (W_L^T (W_L F W_R^T) W_R, four),
 * where float32 P is safe (optimizers/shampoo.ts productFormSafe). Checked against a float64
 * loop of the factored products, against the factored path over a training run (also at the
 * default block of 64), for the fallback to factors at an absolute epsilon and at a relative one
 * past the bound (root 2 at n = 64), and for P being recomputed from the restored
 * factors after setWeights (P is derived, never saved).
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { Shampoo, type ShampooOptions } from '../optimizers/shampoo.js';
import {
  allocBuffer,
  bufferView,
  releaseBuffer,
  shampooKernels,
  type HostBuffer,
} from '../src/optim/shampoo-kernels.js';
import { Mlp, randomArray, relErr } from './optim-helpers.js';

beforeAll(async () => {
  await initBackend('cpu');
});

const options: ShampooOptions = { learningRate: 0.01, maxPreconditionerDim: 8, preconditionFrequency: 4 };

function run(o: ShampooOptions, rootProducts: boolean, steps: number, seed = 3): number[] {
  const m = Mlp.create(seed);
  const opt = new Shampoo(o, { rootProducts });
  for (let i = 0; i < steps; i++) opt.minimize(m.loss, false, m.vars);
  const out = m.flat();
  opt.dispose();
  m.dispose();
  return out;
}

/**
 * A 96x70 least-squares weight (X W ~ Y, 32 examples): at the default maxPreconditionerDim 64 it
 * is cut into 64 + 32 rows and 64 + 6 columns, so the largest preconditioned side is n = 64.
 */
function runWide(o: ShampooOptions, rootProducts: boolean, steps: number): number[] {
  const [m, h, w] = [32, 96, 70];
  const x = tf.tensor2d(randomArray(m * h, 21), [m, h]);
  const y = tf.tensor2d(randomArray(m * w, 22), [m, w]);
  const W = tf.variable(tf.tensor2d(randomArray(h * w, 23, 0.1), [h, w]));
  const loss = (): tf.Scalar => tf.tidy(() => tf.mean(tf.square(tf.sub(tf.matMul(x, W), y))));
  const opt = new Shampoo(o, { rootProducts });
  for (let i = 0; i < steps; i++) opt.minimize(loss, false, [W]);
  expect(opt.failedInverseRoots).toBe(0);
  const out = Array.from(W.dataSync());
  opt.dispose();
  tf.dispose([x, y, W]);
  return out;
}

describe('Shampoo products form (host kernels)', () => {
  it('P_L F P_R from gramInto equals the float64 factored product W_L^T W_L F W_R^T W_R', () => {
    const K = shampooKernels()!;
    expect(K).not.toBeNull();
    const [h, w] = [13, 9];
    const WL = Float32Array.from(randomArray(h * h, 1));
    const WR = Float32Array.from(randomArray(w * w, 2));
    const f = Float32Array.from(randomArray(h * w, 3));
    const bufs: HostBuffer[] = [];
    const put = (x: Float32Array) => {
      const b = allocBuffer(x.length);
      bufferView(b).set(x);
      bufs.push(b);
      return b;
    };
    const [bl, br] = [put(WL), put(WR)];
    const [pl, pr] = [allocBuffer(h * h), allocBuffer(w * w)];
    bufs.push(pl, pr);
    K.gramInto(bl, h, pl);
    K.gramInto(br, w, pr);
    const PL = bufferView(pl).slice();
    for (let i = 0; i < h; i++) for (let j = 0; j < h; j++) expect(PL[i * h + j]).toBe(PL[j * h + i]);
    const grid = { m: h, n: w, rows: [h], rowOffsets: [0], cols: [w], colOffsets: [0] };
    const d = K.direction(f, undefined, undefined, grid, [[pl, pr]], false, true, true).d;
    // float64 reference: (W_L^T (W_L F W_R^T) W_R)
    const mul = (a: ArrayLike<number>, b: ArrayLike<number>, n: number, k: number, p: number, ta = false) => {
      const c = new Float64Array(n * p);
      for (let i = 0; i < n; i++)
        for (let j = 0; j < p; j++) {
          let s = 0;
          for (let q = 0; q < k; q++) s += (ta ? a[q * n + i]! : a[i * k + q]!) * b[q * p + j]!;
          c[i * p + j] = s;
        }
      return c;
    };
    const tr = (a: ArrayLike<number>, n: number, p: number) => {
      const c = new Float64Array(n * p);
      for (let i = 0; i < n; i++) for (let j = 0; j < p; j++) c[j * n + i] = a[i * p + j]!;
      return c;
    };
    const x = mul(mul(WL, f, h, h, w), tr(WR, w, w), h, w, w);
    const ref = mul(mul(WL, x, h, h, w, true), WR, h, w, w);
    const err = relErr(d, ref);
    console.log(`products form vs float64 factored: relative error ${err.toExponential(2)}`);
    expect(err).toBeLessThan(2e-6);
    bufs.forEach(releaseBuffer);
  });

  it('trains like the factored form to float32 rounding, and is in use at a relative epsilon', () => {
    const a = run(options, true, 40);
    const b = run(options, false, 40);
    const err = relErr(a, b);
    console.log(`products vs factors after 40 steps: relative difference ${err.toExponential(2)}`);
    expect(err).toBeGreaterThan(0); // a different summation: the products form ran
    expect(err).toBeLessThan(1e-5);
  });

  it('falls back to the factors at an absolute epsilon (no condition bound): identical runs', () => {
    const o: ShampooOptions = { ...options, epsilon: 1e-6, epsilonMode: 'absolute' };
    expect(run(o, true, 20)).toEqual(run(o, false, 20));
  });

  it('at the default block (64; all defaults) the products form is used and trains like the factors', () => {
    // 96x70: blocks of 64 + 32 rows and 64 + 6 columns, n = 64: 64 u 17.8^2 = 1.2e-3 <= 1e-2.
    const a = runWide({}, true, 45);
    const b = runWide({}, false, 45);
    const err = relErr(a, b);
    console.log(`block 64, products vs factors after 45 steps (roots at 5, 40): ${err.toExponential(2)}`);
    expect(err).toBeGreaterThan(0); // a different summation: the products form ran
    expect(err).toBeLessThan(1e-5);
  });

  it('falls back to the factors past the bound at a relative epsilon (root 2, n = 64): identical runs', () => {
    // cond(P) = (1e5)^(1/2) = 316 per side: 64 u 316^2 = 0.38 > 1e-2, so the factors are used.
    const o: ShampooOptions = { rootExponent: 2 };
    const a = runWide(o, true, 45);
    expect(a).toEqual(runWide(o, false, 45));
    // The problem moved (the roots were applied), so identical runs are not a no-op.
    expect(relErr(a, runWide(o, false, 0))).toBeGreaterThan(1e-3);
  });

  it('recomputes P from the restored factors after setWeights (same optimizer and a new one)', async () => {
    const m = Mlp.create(4);
    const opt = new Shampoo(options);
    for (let i = 0; i < 10; i++) opt.minimize(m.loss, false, m.vars);
    const saved = await opt.getWeights();
    const params = m.flat();
    // Continue (new roots at steps 12, 16, 20), then go back to the saved state.
    for (let i = 0; i < 10; i++) opt.minimize(m.loss, false, m.vars);
    const continued = m.flat();
    await opt.setWeights(saved);
    m.vars.forEach((v, i) => v.assign(tf.tensor(params.slice(...range(m, i)), v.shape)));
    for (let i = 0; i < 10; i++) opt.minimize(m.loss, false, m.vars);
    expect(m.flat()).toEqual(continued);

    const fresh = new Shampoo(options);
    await fresh.setWeights(saved);
    m.vars.forEach((v, i) => v.assign(tf.tensor(params.slice(...range(m, i)), v.shape)));
    for (let i = 0; i < 10; i++) fresh.minimize(m.loss, false, m.vars);
    expect(m.flat()).toEqual(continued);
    opt.dispose();
    fresh.dispose();
    m.dispose();
  });
});

/** [start, end) of variable i in Mlp.flat(). */
function range(m: Mlp, i: number): [number, number] {
  const start = m.vars.slice(0, i).reduce((s, v) => s + v.size, 0);
  return [start, start + m.vars[i]!.size];
}
