/**
 * Trajectory parity: (1) with tfjs's own optimizers where the semantics coincide, on an MLP,
 * 100 steps; (2) with an independent float64 reference of PyTorch's formulas (plain JS
 * numbers, written here without the library) for every option, on least squares.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { Adam, RMSProp, SGD } from '../optimizers/index.js';
import { schedules } from '../src/optim/index.js';
import { Mlp, randomArray, relErr } from './optim-helpers.js';

beforeAll(async () => {
  await initBackend('cpu');
});

function runPair(make: () => tf.Optimizer, makeTfjs: () => tf.Optimizer, steps = 100): number {
  const a = Mlp.create(3);
  const b = a.clone();
  const oa = make();
  const ob = makeTfjs();
  for (let i = 0; i < steps; i++) {
    oa.minimize(a.loss, false, a.vars);
    ob.minimize(b.loss, false, b.vars);
  }
  const err = relErr(a.flat(), b.flat());
  oa.dispose();
  ob.dispose();
  a.dispose();
  b.dispose();
  return err;
}

describe('parity with tfjs optimizers over 100 MLP steps', () => {
  it('SGD equals tf.train.sgd', () => {
    expect(
      runPair(
        () => new SGD({ learningRate: 0.1 }),
        () => tf.train.sgd(0.1),
      ),
    ).toBeLessThan(1e-5);
  });
  it('SGD with momentum equals tf.train.momentum (zero dampening)', () => {
    const err = runPair(
      () => new SGD({ learningRate: 0.05, momentum: 0.9 }),
      () => tf.train.momentum(0.05, 0.9),
    );
    expect(err).toBeLessThan(1e-5);
  });
  it('SGD with Nesterov momentum equals tf.train.momentum(useNesterov)', () => {
    const err = runPair(
      () => new SGD({ learningRate: 0.05, momentum: 0.9, nesterov: true }),
      () => tf.train.momentum(0.05, 0.9, true),
    );
    expect(err).toBeLessThan(1e-5);
  });
  it('Adam equals tf.train.adam with the same epsilon', () => {
    const err = runPair(
      () => new Adam({ learningRate: 0.01 }),
      () => tf.train.adam(0.01, 0.9, 0.999, 1e-8),
    );
    expect(err).toBeLessThan(1e-5);
  });
});

// ------------------------------------------------------------------ float64 reference

/** Least squares: loss = 0.5 * mean_rows ||X W + b - Y||^2 with X 16x5, W 5x3, b 3. */
const N = 16;
const D = 5;
const K = 3;
const X = randomArray(N * D, 101);
const Y = randomArray(N * K, 102);
const W0 = randomArray(D * K, 103, 0.3);
const B0 = randomArray(K, 104, 0.3);

function lsGrads(w: number[], b: number[]): [number[], number[]] {
  const gw = new Array<number>(D * K).fill(0);
  const gb = new Array<number>(K).fill(0);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      let r = b[k]! - Y[n * K + k]!;
      for (let d = 0; d < D; d++) r += X[n * D + d]! * w[d * K + k]!;
      r /= N;
      gb[k]! += r;
      for (let d = 0; d < D; d++) gw[d * K + k]! += X[n * D + d]! * r;
    }
  }
  return [gw, gb];
}

type Opts = Record<string, number | boolean>;
type RefState = Record<string, number[]>;
/** PyTorch's per-parameter update, in float64; mutates p and st. t is 1-based. */
type RefStep = (p: number[], g: number[], st: RefState, t: number, lr: number, o: Opts) => void;

const refSGD: RefStep = (p, g0, st, t, lr, o) => {
  const mu = (o.momentum as number) ?? 0;
  const tau = (o.dampening as number) ?? 0;
  const wd = (o.weightDecay as number) ?? 0;
  for (let i = 0; i < p.length; i++) {
    let g = (o.maximize ? -g0[i]! : g0[i]!) + wd * p[i]!;
    if (mu !== 0) {
      st.buf ??= new Array<number>(p.length).fill(0);
      st.buf[i] = t === 1 ? g : mu * st.buf[i]! + (1 - tau) * g;
      g = o.nesterov ? g + mu * st.buf[i]! : st.buf[i]!;
    }
    p[i] = p[i]! - lr * g;
  }
};

const refRMSProp: RefStep = (p, g0, st, _t, lr, o) => {
  const alpha = (o.alpha as number) ?? 0.99;
  const eps = (o.epsilon as number) ?? 1e-8;
  const wd = (o.weightDecay as number) ?? 0;
  const mu = (o.momentum as number) ?? 0;
  st.v ??= new Array<number>(p.length).fill(0);
  st.gAvg ??= new Array<number>(p.length).fill(0);
  st.buf ??= new Array<number>(p.length).fill(0);
  for (let i = 0; i < p.length; i++) {
    const g = g0[i]! + wd * p[i]!;
    st.v[i] = alpha * st.v[i]! + (1 - alpha) * g * g;
    let avg: number;
    if (o.centered) {
      st.gAvg[i] = alpha * st.gAvg[i]! + (1 - alpha) * g;
      avg = Math.sqrt(st.v[i]! - st.gAvg[i]! ** 2) + eps;
    } else {
      avg = Math.sqrt(st.v[i]!) + eps;
    }
    if (mu > 0) {
      st.buf[i] = mu * st.buf[i]! + g / avg;
      p[i] = p[i]! - lr * st.buf[i]!;
    } else {
      p[i] = p[i]! - (lr * g) / avg;
    }
  }
};

const refAdam: RefStep = (p, g0, st, t, lr, o) => {
  const b1 = (o.beta1 as number) ?? 0.9;
  const b2 = (o.beta2 as number) ?? 0.999;
  const eps = (o.epsilon as number) ?? 1e-8;
  const wd = (o.weightDecay as number) ?? 0;
  st.m ??= new Array<number>(p.length).fill(0);
  st.v ??= new Array<number>(p.length).fill(0);
  st.vMax ??= new Array<number>(p.length).fill(0);
  for (let i = 0; i < p.length; i++) {
    let g = g0[i]!;
    if (o.decoupledWeightDecay) p[i] = p[i]! * (1 - lr * wd);
    else g += wd * p[i]!;
    st.m[i] = b1 * st.m[i]! + (1 - b1) * g;
    st.v[i] = b2 * st.v[i]! + (1 - b2) * g * g;
    st.vMax[i] = Math.max(st.vMax[i]!, st.v[i]!);
    const vHat = o.amsgrad ? st.vMax[i]! : st.v[i]!;
    const denom = Math.sqrt(vHat) / Math.sqrt(1 - b2 ** t) + eps;
    p[i] = p[i]! - (lr / (1 - b1 ** t)) * (st.m[i]! / denom);
  }
};

function reference(step: RefStep, o: Opts, lrAt: (t: number) => number, steps: number): number[] {
  const w = [...W0];
  const b = [...B0];
  const sw: RefState = {};
  const sb: RefState = {};
  for (let t = 1; t <= steps; t++) {
    const [gw, gb] = lsGrads(w, b);
    step(w, gw, sw, t, lrAt(t - 1), o);
    step(b, gb, sb, t, lrAt(t - 1), o);
  }
  return [...w, ...b];
}

function ours(opt: tf.Optimizer, steps: number): number[] {
  const x = tf.tensor2d(X, [N, D]);
  const y = tf.tensor2d(Y, [N, K]);
  const w = tf.variable(tf.tensor2d(W0, [D, K]));
  const b = tf.variable(tf.tensor1d(B0));
  const loss = (): tf.Scalar =>
    tf.tidy(() => tf.mul(tf.mean(tf.sum(tf.square(tf.sub(tf.add(tf.matMul(x, w), b), y)), 1)), 0.5) as tf.Scalar);
  for (let i = 0; i < steps; i++) opt.minimize(loss, false, [w, b]);
  const out = [...w.dataSync(), ...b.dataSync()];
  tf.dispose([x, y, w, b]);
  opt.dispose();
  return out;
}

const cosineRef = (t: number): number => 0.05 * (0.9 * 0.5 * (1 + Math.cos((Math.PI * Math.min(t, 80)) / 80)) + 0.1);
const warmupRef = (t: number): number =>
  t < 10 ? 0.1 * (t / 10) : 0.1 * 0.5 * (1 + Math.cos((Math.PI * Math.min(t - 10, 90)) / 90));

interface Case {
  name: string;
  make: () => tf.Optimizer;
  ref: RefStep;
  opts: Opts;
  lr: number | ((t: number) => number);
}

const cases: Case[] = [
  { name: 'SGD', make: () => new SGD({ learningRate: 0.1 }), ref: refSGD, opts: {}, lr: 0.1 },
  {
    name: 'SGD momentum',
    make: () => new SGD({ learningRate: 0.05, momentum: 0.9 }),
    ref: refSGD,
    opts: { momentum: 0.9 },
    lr: 0.05,
  },
  {
    name: 'SGD momentum with dampening',
    make: () => new SGD({ learningRate: 0.05, momentum: 0.9, dampening: 0.5 }),
    ref: refSGD,
    opts: { momentum: 0.9, dampening: 0.5 },
    lr: 0.05,
  },
  {
    name: 'SGD Nesterov with weight decay',
    make: () => new SGD({ learningRate: 0.05, momentum: 0.8, nesterov: true, weightDecay: 0.01 }),
    ref: refSGD,
    opts: { momentum: 0.8, nesterov: true, weightDecay: 0.01 },
    lr: 0.05,
  },
  {
    name: 'SGD maximize (few steps)',
    make: () => new SGD({ learningRate: 0.01, maximize: true }),
    ref: refSGD,
    opts: { maximize: true },
    lr: 0.01,
  },
  // RMSProp's g / sqrt(v) is sign-like near an optimum, where float32 rounding decides the
  // sign; learning rates are chosen so that 100 steps stay in the well-conditioned phase.
  {
    name: 'RMSProp defaults (lr 2e-3)',
    make: () => new RMSProp({ learningRate: 2e-3 }),
    ref: refRMSProp,
    opts: {},
    lr: 2e-3,
  },
  {
    name: 'RMSProp centered with momentum and weight decay',
    make: () => new RMSProp({ learningRate: 1e-3, centered: true, momentum: 0.5, weightDecay: 0.01 }),
    ref: refRMSProp,
    opts: { centered: true, momentum: 0.5, weightDecay: 0.01 },
    lr: 1e-3,
  },
  { name: 'Adam defaults (lr 1e-2)', make: () => new Adam({ learningRate: 1e-2 }), ref: refAdam, opts: {}, lr: 1e-2 },
  {
    name: 'Adam amsgrad',
    make: () => new Adam({ learningRate: 1e-2, amsgrad: true, beta2: 0.9 }),
    ref: refAdam,
    opts: { amsgrad: true, beta2: 0.9 },
    lr: 1e-2,
  },
  {
    name: 'AdamW (decoupled weight decay)',
    make: () => new Adam({ learningRate: 1e-2, weightDecay: 0.1, decoupledWeightDecay: true }),
    ref: refAdam,
    opts: { weightDecay: 0.1, decoupledWeightDecay: true },
    lr: 1e-2,
  },
  {
    name: 'Adam with L2 weight decay',
    make: () => new Adam({ learningRate: 1e-2, weightDecay: 0.1 }),
    ref: refAdam,
    opts: { weightDecay: 0.1 },
    lr: 1e-2,
  },
  {
    name: 'SGD momentum with a cosine schedule',
    make: () =>
      new SGD({ learningRate: schedules.cosineDecay({ initial: 0.05, decaySteps: 80, alpha: 0.1 }), momentum: 0.9 }),
    ref: refSGD,
    opts: { momentum: 0.9 },
    lr: cosineRef,
  },
  {
    name: 'Adam with linear warmup then cosine',
    make: () => new Adam({ learningRate: schedules.warmupCosine({ peak: 0.1, warmupSteps: 10, decaySteps: 100 }) }),
    ref: refAdam,
    opts: {},
    lr: warmupRef,
  },
  {
    name: 'RMSProp with a step schedule',
    make: () => new RMSProp({ learningRate: schedules.stepDecay({ initial: 1e-2, stepSize: 30, gamma: 0.5 }) }),
    ref: refRMSProp,
    opts: {},
    lr: (t) => 1e-2 * 0.5 ** Math.floor(t / 30),
  },
  {
    name: 'Adam with a user function schedule',
    make: () => new Adam({ learningRate: (t: number) => 0.02 / (1 + t) }),
    ref: refAdam,
    opts: {},
    lr: (t) => 0.02 / (1 + t),
  },
];

describe('float64 reference of the PyTorch formulas, 100 least-squares steps', () => {
  for (const c of cases) {
    it(`${c.name} matches the reference to 1e-5 relative`, () => {
      const steps = c.name.includes('few steps') ? 10 : 100;
      const lrAt = typeof c.lr === 'number' ? () => c.lr as number : c.lr;
      const expected = reference(c.ref, c.opts, lrAt, steps);
      const got = ours(c.make(), steps);
      const err = relErr(got, expected);
      expect(err).toBeLessThan(1e-5);
      // The trajectory must actually have moved (the test is not vacuous).
      expect(relErr([...W0, ...B0], expected)).toBeGreaterThan(1e-3);
    });
  }
});
