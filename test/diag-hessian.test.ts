/**
 * AdaHessian and Sophia against float64 references written from the papers and the authors' code
 * (scripts/reference/adahessian_reference.py and sophia_reference.py, exact torch float64 HVPs ->
 * test/fixtures/adahessian-reference.json and sophia-reference.json): one step and 20 steps on a
 * small tanh MLP (softmax and sigmoid cross-entropy) and a conv2d kernel (mean squared error),
 * with the fixture's Rademacher probes and sampling uniforms injected through `probes`. Then the
 * estimators against exact curvature (Hutchinson over every sign vector = diag(H) exactly; the
 * GNB mean over many sampled targets ~ diag of the Gauss-Newton matrix), the spatial averaging
 * rules, and the drop-in conventions (validation, closure-only, NaN guard, leaks, model.fit,
 * config round trip, GNB through a bound problem).
 */
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { ggnvpVars, hessian } from '../src/autodiff/index.js';
import type { LossKind } from '../src/autodiff/losses.js';
import {
  AdaHessian,
  Sophia,
  getOptimizerEntry,
  gnbDiagonal,
  hutchinsonDiagonal,
  spatialAverage,
  type ProbeGenerator,
} from '../optimizers/index.js';
import { lossOfKind, StepProbes } from '../src/optim/diagonal-hessian.js';
import { relErr } from './optim-helpers.js';

interface ProblemJson {
  kind: LossKind;
  x: number[];
  xShape: number[];
  y: number[];
  yShape: number[];
  params: Record<string, number[]>;
  shapes: Record<string, number[]>;
}
interface CaseJson {
  name: string;
  problem: string;
  options: Record<string, unknown>;
  afterStep1: Record<string, number[]>;
  afterStep20: Record<string, number[]>;
  losses: number[];
  probes: { iteration: number; rademacher?: string; uniforms?: number[] }[];
}
interface Fixture {
  steps: number;
  problems: Record<string, ProblemJson>;
  cases: CaseJson[];
}

const load = (f: string): Fixture =>
  JSON.parse(readFileSync(new URL(`./fixtures/${f}`, import.meta.url), 'utf8')) as Fixture;
const adaFixture = load('adahessian-reference.json');
const sophiaFixture = load('sophia-reference.json');

/** The fixture problem in tfjs: variables, outputs() and the loss closure. */
function build(name: string, p: ProblemJson) {
  const vars: Record<string, tf.Variable> = {};
  for (const [k, v] of Object.entries(p.params)) vars[k] = tf.variable(tf.tensor(v, p.shapes[k]), true, `${k}_${name}`);
  const x = tf.tensor(p.x, p.xShape);
  const y = tf.tensor(p.y, p.yShape);
  const outputs = (): tf.Tensor =>
    tf.tidy(() => {
      if (name.startsWith('mlp')) {
        const h = tf.tanh(tf.add(tf.matMul(x as tf.Tensor2D, vars.W1 as unknown as tf.Tensor2D), vars.b1!));
        return tf.add(tf.matMul(h, vars.W2 as unknown as tf.Tensor2D), vars.b2!);
      }
      const c = tf.conv2d(x as tf.Tensor4D, vars.K as unknown as tf.Tensor4D, 1, 'valid');
      return tf.tanh(tf.add(c, vars.b!));
    });
  const loss = (): tf.Scalar => tf.tidy(() => lossOfKind(p.kind, y, outputs()));
  return {
    vars,
    varList: Object.values(vars),
    outputs,
    loss,
    kind: p.kind,
    dispose: () => tf.dispose([...Object.values(vars), x, y]),
  };
}

/** Replays the fixture's probes: by iteration, Rademacher bits in order, uniforms in order. */
function replay(c: CaseJson) {
  const byIteration = new Map(c.probes.map((p) => [p.iteration, p]));
  return (iteration: number): ProbeGenerator => {
    const p = byIteration.get(iteration);
    if (p === undefined) throw new Error(`no fixture probes for iteration ${iteration}`);
    let r = 0;
    let u = 0;
    return {
      rademacher(n: number) {
        const bits = p.rademacher!;
        const out = new Float32Array(n);
        for (let i = 0; i < n; i++) out[i] = bits[r + i] === '1' ? 1 : -1;
        r += n;
        return out;
      },
      uniform() {
        return p.uniforms![u++]!;
      },
    };
  };
}

function checkTrajectory(
  fixture: Fixture,
  c: CaseJson,
  make: (probes: ReturnType<typeof replay>) => AdaHessian | Sophia,
) {
  const pb = build(c.problem, fixture.problems[c.problem]!);
  const opt = make(replay(c));
  const step = () => {
    if (opt instanceof Sophia) opt.setCurvatureOutputs({ outputs: pb.outputs, lossKind: pb.kind });
    const cost = opt.minimize(pb.loss, true, pb.varList)!;
    const v = cost.dataSync()[0]!;
    cost.dispose();
    return v;
  };
  const names = Object.keys(pb.vars);
  const init = fixture.problems[c.problem]!.params;
  const l0 = step();
  expect(Math.abs(l0 - c.losses[0]!)).toBeLessThan(1e-5 * Math.max(1, Math.abs(c.losses[0]!)));
  for (const k of names) {
    const got = pb.vars[k]!.dataSync();
    const s = Array.from(got, (v, i) => v - init[k]![i]!);
    const ref = c.afterStep1[k]!.map((v, i) => v - init[k]![i]!);
    expect(relErr(s, ref), `${k}: step 1`).toBeLessThan(1e-4);
  }
  const before = tf.memory().numTensors;
  for (let i = 1; i < fixture.steps; i++) step();
  expect(tf.memory().numTensors).toBe(before);
  for (const k of names) {
    expect(relErr(pb.vars[k]!.dataSync(), c.afterStep20[k]!), `${k} after ${fixture.steps} steps`).toBeLessThan(2e-4);
    // The parameters moved: the comparison is not between two near-initial points.
    expect(relErr(c.afterStep20[k]!, init[k]!)).toBeGreaterThan(0.02);
  }
  opt.dispose();
  pb.dispose();
}

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`AdaHessian and Sophia vs the float64 references (${backend})`, () => {
    beforeAll(async () => {
      expect(await initBackend(backend)).toBe(backend);
    });
    for (const c of adaFixture.cases) {
      it(`AdaHessian ${c.name}: 1 and ${adaFixture.steps} steps`, () => {
        checkTrajectory(adaFixture, c, (probes) => new AdaHessian({ ...c.options, probes }));
      });
    }
    for (const c of sophiaFixture.cases) {
      it(`Sophia ${c.name}: 1 and ${sophiaFixture.steps} steps`, () => {
        checkTrajectory(sophiaFixture, c, (probes) => new Sophia({ ...c.options, probes }));
      });
    }
  });
}

describe('diagonal estimators against exact curvature', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('Hutchinson averaged over all 2^n sign vectors is diag(H) exactly (tanh network)', () => {
    const w = tf.variable(tf.tensor1d([0.3, -0.7, 0.5, 0.9]), true, 'hutch_w');
    const loss = () =>
      tf.tidy(() => {
        const [a, b, c, d] = tf.unstack(w);
        return tf.add(
          tf.sum(tf.square(tf.tanh(tf.mul(tf.add(a!, tf.mul(b!, c!)), d!)))),
          tf.mul(tf.sin(a!), c!),
        ) as tf.Scalar;
      });
    const n = 4;
    const sum = new Float64Array(n);
    for (let mask = 0; mask < 1 << n; mask++) {
      const gen: ProbeGenerator = {
        rademacher: (m) => Float32Array.from({ length: m }, (_, i) => ((mask >> i) & 1 ? 1 : -1)),
        uniform: () => 0.5,
      };
      const [d] = hutchinsonDiagonal(loss, [w], gen);
      d!.dataSync().forEach((v, i) => (sum[i] += v / (1 << n)));
      d!.dispose();
    }
    const H = hessian((x) => {
      const [a, b, c, d] = tf.unstack(x);
      return tf.add(
        tf.sum(tf.square(tf.tanh(tf.mul(tf.add(a!, tf.mul(b!, c!)), d!)))),
        tf.mul(tf.sin(a!), c!),
      ) as tf.Scalar;
    }, w);
    const h = H.dataSync();
    for (let i = 0; i < n; i++) expect(sum[i]!).toBeCloseTo(h[i * n + i]!, 5);
    // Not trivially diagonal: the off-diagonal entries are what the average cancels.
    expect(Math.abs(h[1]!)).toBeGreaterThan(0.05);
    H.dispose();
    w.dispose();
  });

  for (const kind of ['softmax-cross-entropy', 'sigmoid-cross-entropy', 'mse'] as const) {
    it(`GNB (${kind}): the mean of S g^2 over sampled targets is the Gauss-Newton diagonal`, () => {
      const W = tf.variable(
        tf.tensor(tf.randomNormal([3, 4], 0, 0.8, 'float32', 5).dataSync(), [3, 4]),
        true,
        `gnb_${kind}`,
      );
      const x = tf.tensor(tf.randomNormal([5, 3], 0, 1, 'float32', 6).dataSync(), [5, 3]);
      const outputs = () => tf.matMul(x, W as unknown as tf.Tensor2D);
      const samples = 3000;
      const gen = new StepProbes(1, 0);
      const sum = new Float64Array(W.size);
      for (let s = 0; s < samples; s++) {
        const [d] = gnbDiagonal({ outputs, lossKind: kind }, [W], gen);
        d!.dataSync().forEach((v, i) => (sum[i] += v / samples));
        d!.dispose();
      }
      // Exact G diagonal from G e_i (Gauss-Newton products of the project's losses).
      const y = tf.tidy(() => (kind === 'softmax-cross-entropy' ? tf.softmax(outputs()) : tf.sigmoid(outputs())));
      const exact = new Float64Array(W.size);
      for (let i = 0; i < W.size; i++) {
        const e = tf.oneHot([i], W.size).reshape(W.shape).toFloat();
        const [g] = ggnvpVars(outputs, (z) => lossOfKind(kind, y, z), [W], [e]);
        exact[i] = g!.dataSync()[i]!;
        tf.dispose([e, g!]);
      }
      // Monte Carlo: 3000 samples, relative error of the whole diagonal a few percent.
      expect(relErr(sum, exact)).toBeLessThan(0.06);
      tf.dispose([W, x, y]);
    });
  }
});

describe('AdaHessian spatial averaging (tfjs layouts, the authors PyTorch rules)', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });
  it('-1: none for biases, per output unit for Dense kernels, per conv filter over kh x kw', () => {
    const b = tf.tensor1d([1, 2, 3]);
    expect(Array.from(spatialAverage(b, [-1, -1, -1, -1]).dataSync())).toEqual([1, 2, 3]);
    const k = tf.tensor2d([1, 2, 3, 6, 5, 10], [3, 2]); // [in 3, out 2]
    expect(Array.from(spatialAverage(k, [-1, -1, -1, -1]).dataSync())).toEqual([3, 6, 3, 6, 3, 6]);
    const conv = tf.tensor(
      Array.from({ length: 2 * 2 * 1 * 2 }, (_, i) => i),
      [2, 2, 1, 2],
    );
    // filter 0 entries 0,2,4,6 -> 3; filter 1 entries 1,3,5,7 -> 4.
    expect(Array.from(spatialAverage(conv, [-1, -1, -1, -1]).dataSync())).toEqual([3, 4, 3, 4, 3, 4, 3, 4]);
    // Block 4 in torch layout [out, in, kh, kw] is the same kh x kw average here.
    expect(Array.from(spatialAverage(conv, [-1, -1, -1, 4]).dataSync())).toEqual([3, 4, 3, 4, 3, 4, 3, 4]);
    expect(() => spatialAverage(b, [2, -1, -1, -1])).toThrow(/spatialAverageBlockSize 2 .* does not divide/);
    tf.dispose([b, k, conv]);
  });
});

describe('AdaHessian and Sophia conventions', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('validates options with errors naming them', () => {
    expect(() => new AdaHessian({ updateEach: 0 })).toThrow(/updateEach/);
    expect(() => new AdaHessian({ hessianPower: 2 })).toThrow(/hessianPower/);
    expect(() => new AdaHessian({ spatialAverageBlockSize: [1, 0, 1, 1] as never })).toThrow(/spatialAverageBlockSize/);
    expect(() => new Sophia({ rho: 0 })).toThrow(/rho/);
    expect(() => new Sophia({ estimator: 'fisher' as never })).toThrow(/estimator/);
    expect(() => new Sophia({ probes: 3 as never })).toThrow(/probes/);
    expect(() => new Sophia({ bogus: 1 } as never)).toThrow(/bogus/);
    expect(getOptimizerEntry('adahessian').create({})).toBeInstanceOf(AdaHessian);
    expect(() => getOptimizerEntry('sophia').create({ estimator: 'gnb' }, { problem: { name: 'rosenbrock' } })).toThrow(
      /estimator 'gnb' needs a network problem .*'rosenbrock'/,
    );
  });

  it('need the closure: applyGradients throws; GNB without outputs throws; auto falls back to Hutchinson', () => {
    const w = tf.variable(tf.tensor1d([1, 2]), true, 'conv_w');
    const loss = () => tf.sum(tf.square(tf.mul(w, tf.tensor1d([1, 3])))) as tf.Scalar;
    expect(() => new AdaHessian().applyGradients({ conv_w: tf.zeros([2]) })).toThrow(/loss closure/);
    expect(() => new Sophia({ estimator: 'gnb' }).minimize(loss)).toThrow(/estimator 'gnb' needs the network outputs/);
    const s = new Sophia({ learningRate: 0.1 });
    s.minimize(loss);
    expect(s.lastEstimator).toBe('hutchinson');
    expect(s.counters).toEqual({ lossEvals: 1, gradEvals: 1, hvpEvals: 1 });
    // A diagonal quadratic: Hutchinson is exact, h = 0.01 * [2, 18]; m = 0.035 g = 0.035 [2, 36]; the ratio is
    // m / (rho h) = [87.5, 175] > 1: clipped, so after the decay p (1 - lr 0.1) both coordinates move by lr.
    expect(Array.from(w.dataSync()).map((v) => +v.toFixed(5))).toEqual([
      +(1 * (1 - 0.01) - 0.1).toFixed(5),
      +(2 * (1 - 0.01) - 0.1).toFixed(5),
    ]);
    s.dispose();
    w.dispose();
  });

  it('the NaN guard: a non-finite loss or Hessian estimate leaves the weights and state untouched', () => {
    const w = tf.variable(tf.tensor1d([1, -1]), true, 'nan_w');
    let poison = false;
    const loss = () => tf.tidy(() => tf.add(tf.sum(tf.square(w)), poison ? NaN : 0) as tf.Scalar);
    for (const opt of [new AdaHessian({ updateEach: 1 }), new Sophia({ learningRate: 0.01 })]) {
      opt.minimize(loss);
      const before = Array.from(w.dataSync());
      poison = true;
      opt.minimize(loss);
      poison = false;
      expect(Array.from(w.dataSync())).toEqual(before);
      expect(opt.skippedSteps).toBe(1);
      expect(opt.iterations).toBe(1);
      opt.dispose();
    }
    w.dispose();
  });

  it('model.fit drop-in: losses fall, no leaks between epochs, config round trip', async () => {
    const x = tf.tensor(tf.randomNormal([64, 4], 0, 1, 'float32', 8).dataSync(), [64, 4]);
    const labels = tf.tidy(() =>
      tf
        .oneHot(
          tf.argMax(
            tf.matMul(x, tf.tensor2d([1, -1, 0.5, 0.2, -0.3, 1, 0.7, 0.1, -1, 0.4, 0.2, 0.9], [4, 3])),
            1,
          ) as tf.Tensor1D,
          3,
        )
        .toFloat(),
    );
    for (const opt of [
      new AdaHessian({ learningRate: 0.05, updateEach: 2 }),
      new Sophia({ learningRate: 0.02, rho: 1 }),
    ]) {
      const m = tf.sequential({
        layers: [
          tf.layers.dense({ inputShape: [4], units: 8, activation: 'tanh' }),
          tf.layers.dense({ units: 3, activation: 'softmax' }),
        ],
      });
      m.compile({ optimizer: opt, loss: 'categoricalCrossentropy' });
      const h1 = await m.fit(x, labels, { epochs: 2, batchSize: 16, shuffle: false, verbose: 0 });
      const n = tf.memory().numTensors;
      const h2 = await m.fit(x, labels, { epochs: 6, batchSize: 16, shuffle: false, verbose: 0 });
      expect(tf.memory().numTensors).toBe(n);
      expect(h2.history.loss.at(-1) as number).toBeLessThan((h1.history.loss[0] as number) * 0.8);
      const cls = opt.constructor as typeof AdaHessian | typeof Sophia;
      const copy = tf.serialization.SerializationMap.getMap().classNameMap[cls.className]![1](
        cls as never,
        opt.getConfig(),
      ) as AdaHessian | Sophia;
      expect(copy.getConfig()).toEqual(opt.getConfig());
      expect('probes' in opt.getConfig()).toBe(false);
      m.dispose();
    }
    tf.dispose([x, labels]);
  });

  it('inside model.fit the HVP through the compiled Keras loss is exact: same step as the project loss on logits', async () => {
    const x = tf.tensor(tf.randomNormal([16, 4], 0, 1, 'float32', 11).dataSync(), [16, 4]);
    const y = tf
      .oneHot(
        tf.tensor1d(
          Array.from({ length: 16 }, (_, i) => i % 3),
          'int32',
        ),
        3,
      )
      .toFloat();
    const model = () => {
      const m = tf.sequential({
        layers: [
          tf.layers.dense({ inputShape: [4], units: 5, activation: 'tanh' }),
          tf.layers.dense({ units: 3, activation: 'softmax' }),
        ],
      });
      m.setWeights(
        m
          .getWeights()
          .map((w, i) => tf.tensor(tf.randomNormal(w.shape, 0, 0.7, 'float32', 40 + i).dataSync(), w.shape)),
      );
      return m;
    };
    // Probes independent of the variable names and of the step (the same numbers for both runs).
    const probes = () => new StepProbes(5, 0);
    const opts = {
      learningRate: 0.05,
      updateEach: 1,
      spatialAverageBlockSize: [1, 1, 1, 1] as [number, number, number, number],
      probes,
    };
    const a = model();
    a.compile({ optimizer: new AdaHessian(opts), loss: 'categoricalCrossentropy' });
    await a.fit(x, y, { epochs: 1, batchSize: 16, shuffle: false, verbose: 0 });
    const b = model();
    const [W1, b1, W2, b2] = b.trainableWeights.map((w) => w.read() as tf.Variable);
    const logits = () =>
      tf.add(tf.matMul(tf.tanh(tf.add(tf.matMul(x as tf.Tensor2D, W1 as tf.Tensor2D), b1!)), W2 as tf.Tensor2D), b2!);
    const opt = new AdaHessian(opts);
    opt.minimize(() => lossOfKind('softmax-cross-entropy', y, logits()), false, [W1!, b1!, W2!, b2!]);
    const wa = a.getWeights().map((w) => Array.from(w.dataSync()));
    const wb = b.getWeights().map((w) => Array.from(w.dataSync()));
    const m0 = model();
    const w0 = m0.getWeights().map((w) => Array.from(w.dataSync()));
    m0.dispose();
    wa.forEach((w, i) => {
      const stepA = w.map((v, j) => v - w0[i]![j]!);
      const stepB = wb[i]!.map((v, j) => v - w0[i]![j]!);
      expect(relErr(stepA, stepB), `weight ${i}`).toBeLessThan(1e-4);
    });
    a.dispose();
    b.dispose();
    opt.dispose();
    tf.dispose([x, y]);
  });

  it('Sophia-G through a bound problem (the harness path): GNB estimates, one extra gradient per estimate', () => {
    const pb = build('mlp-softmax', sophiaFixture.problems['mlp-softmax']!);
    const batch = { x: tf.zeros([1]), y: tf.zeros([1]), size: 6 };
    const problem = { outputs: () => pb.outputs(), lossKind: pb.kind };
    const opt = getOptimizerEntry('sophia').create(
      { learningRate: 0.01, rho: 20, updateInterval: 2 },
      { problem },
    ) as Sophia;
    const first = pb.loss().dataSync()[0]!;
    for (let i = 0; i < 10; i++) {
      opt.setCurvatureBatch(batch);
      opt.minimize(pb.loss, false, pb.varList);
    }
    expect(opt.lastEstimator).toBe('gnb');
    expect(opt.counters).toEqual({ lossEvals: 0, gradEvals: 15, hvpEvals: 0 });
    expect(pb.loss().dataSync()[0]!).toBeLessThan(first);
    // Without a batch for the step, 'auto' cannot build outputs: Hutchinson.
    opt.minimize(pb.loss, false, pb.varList);
    expect(opt.lastEstimator).toBe('hutchinson');
    tf.dispose(batch.x);
    tf.dispose(batch.y);
    opt.dispose();
    pb.dispose();
  });

  it('seeded probes: the same seed gives the same trajectory, another seed a different one', () => {
    const run = (seed: number) => {
      const pb = build('conv-mse', adaFixture.problems['conv-mse']!);
      const opt = new AdaHessian({ learningRate: 0.02, updateEach: 1, seed, spatialAverageBlockSize: [1, 1, 1, 1] });
      for (let i = 0; i < 3; i++) opt.minimize(pb.loss, false, pb.varList);
      const out = Array.from(pb.vars.K!.dataSync());
      opt.dispose();
      pb.dispose();
      return out;
    };
    const a = run(1);
    expect(run(1)).toEqual(a);
    expect(run(2)).not.toEqual(a);
  });
});
