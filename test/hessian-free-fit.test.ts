// HessianFree in model.fit and in mini-batches: Gauss-Newton products captured from the tape
// against float64 references (scripts/reference/hessian_free_reference.py), monotone epoch
// losses of the issue-13 MLP for 3 seeds, lambda raised past negative curvature in Hessian mode
// (reference trajectory), clear fallbacks, and the squared-gradient EMA carried by
// getWeights / setWeights.
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { initBackend } from '../src/backend.js';
import { HessianFree } from '../optimizers/hessian-free.js';
import { captureGaussNewton } from '../src/layers/gauss-newton-capture.js';
import { ggnvpVars, losses } from '../src/autodiff/index.js';
import { Mlp, relErr } from './optim-helpers.js';

interface GGNCase {
  activation: 'softmax' | 'sigmoid' | 'linear' | 'tanh';
  loss: string;
  at: 'logits' | 'outputs';
  y: number[][];
  lossValue: number;
  v: number[];
  Gv: number[];
  vGv: number;
}
interface RaiseStep {
  dampingUsed: number;
  raises: number;
  cgStop: string;
  rho: number;
  stepSize: number;
  damping: number;
  w: number[];
  f: number;
}
interface FitStep {
  loss: number;
  mode: 'batch' | 'next-batch';
  heldOutRho: number | null;
  dampingUsed: number;
  rho: number;
  damping: number;
  stepSize: number;
  backtrackedIteration: number;
  theta: number[];
}
const ref = JSON.parse(fs.readFileSync(new URL('./fixtures/hessian-free-reference.json', import.meta.url), 'utf8')) as {
  ggn: { x: number[][]; kernel1: number[][]; bias1: number[]; kernel2: number[][]; bias2: number[]; cases: GGNCase[] };
  raise: { w0: number[]; damping: number; steps: RaiseStep[] };
  fit: {
    x: number[][];
    y: number[][];
    batchSize: number;
    kernel1: number[][];
    bias1: number[];
    kernel2: number[][];
    bias2: number[];
    steps: FitStep[];
  };
};

beforeAll(async () => {
  await initBackend('cpu');
});

afterEach(() => {
  vi.restoreAllMocks();
});

/** The issue's task: 96 examples, 6 features, 3 classes from a noisy linear teacher. */
function issueData(seed: number) {
  return tf.tidy(() => {
    const x = tf.randomNormal([96, 6], 0, 1, 'float32', 100 + seed);
    const w = tf.randomNormal([6, 3], 0, 1, 'float32', 200 + seed);
    const logits = tf.add(tf.matMul(x, w), tf.randomNormal([96, 3], 0, 0.5, 'float32', 300 + seed));
    return { x, y: tf.oneHot(tf.argMax(logits, 1), 3).toFloat() };
  });
}

/** The issue's 6-12-3 tanh / softmax MLP. */
function issueModel(seed: number): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.dense({
        units: 12,
        inputShape: [6],
        activation: 'tanh',
        kernelInitializer: tf.initializers.glorotUniform({ seed }),
      }),
      tf.layers.dense({
        units: 3,
        activation: 'softmax',
        kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 50 }),
      }),
    ],
  });
}

/** An optimizer that only captures the fit closure's Gauss-Newton product with given vectors. */
class CaptureProbe extends tf.Optimizer {
  static get className(): string {
    return 'TestCaptureProbe';
  }
  result: { loss?: string; at?: string; activation?: string; Gv?: number[]; failure?: string } = {};
  constructor(private readonly v: number[]) {
    super();
  }
  override minimize(f: () => tf.Scalar, returnCost = false, varList?: tf.Variable[]): tf.Scalar | null {
    const cap = captureGaussNewton(f, varList);
    tf.dispose(Object.values(cap.grads));
    if (cap.ggn !== undefined) {
      const vars = cap.ggn.vars;
      const flat = tf.tensor1d(this.v);
      const vs = tf
        .split(
          flat,
          vars.map((w) => w.size),
        )
        .map((t, i) => t.reshape(vars[i]!.shape));
      const out = cap.ggn.product(vs);
      this.result = {
        loss: cap.ggn.loss,
        at: cap.ggn.at,
        activation: cap.ggn.activation,
        Gv: out.flatMap((t) => Array.from(t.dataSync())),
      };
      tf.dispose([flat, ...vs, ...out]);
      cap.ggn.dispose();
    } else {
      this.result = { failure: cap.failure?.message };
    }
    if (returnCost) return cap.value;
    cap.value.dispose();
    return null;
  }
  override applyGradients(): void {
    throw new Error('not used');
  }
  override getConfig(): tf.serialization.ConfigDict {
    return {};
  }
}

describe('HessianFree in model.fit', () => {
  it('captures G v = J^T H_L J v from the fit closure for each supported output/loss pair (float64 reference)', async () => {
    const g = ref.ggn;
    const x = tf.tensor2d(g.x);
    for (const c of g.cases) {
      const model = tf.sequential({
        layers: [
          tf.layers.dense({ units: 5, inputShape: [3], activation: 'tanh' }),
          tf.layers.dense({ units: 3, activation: c.activation }),
        ],
      });
      const weights = [tf.tensor2d(g.kernel1), tf.tensor1d(g.bias1), tf.tensor2d(g.kernel2), tf.tensor1d(g.bias2)];
      model.setWeights(weights);
      const probe = new CaptureProbe(c.v);
      model.compile({ optimizer: probe, loss: c.loss });
      const y = tf.tensor2d(c.y);
      const before = tf.memory().numTensors;
      const h = await model.fit(x, y, { epochs: 1, batchSize: 6, shuffle: false, verbose: 0 });
      expect(tf.memory().numTensors).toBe(before);
      expect(h.history.loss![0] as number).toBeCloseTo(c.lossValue, 5);
      expect(probe.result.failure).toBeUndefined();
      expect(probe.result.loss).toBe(c.loss);
      expect(probe.result.at).toBe(c.at);
      expect(relErr(probe.result.Gv!, c.Gv)).toBeLessThan(1e-4);
      const vGv = probe.result.Gv!.reduce((s, gv, i) => s + gv * c.v[i]!, 0);
      expect(vGv).toBeGreaterThan(0);
      tf.dispose([...weights, y]);
      model.dispose();
    }
    x.dispose();
  });

  it("follows the float64 reference trajectory in fit: GGN at the logits, the 'next-batch' ratio, CG backtracking", async () => {
    const r = ref.fit;
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ units: 4, inputShape: [3], activation: 'tanh' }),
        tf.layers.dense({ units: 3, activation: 'softmax' }),
      ],
    });
    const weights = [tf.tensor2d(r.kernel1), tf.tensor1d(r.bias1), tf.tensor2d(r.kernel2), tf.tensor1d(r.bias2)];
    model.setWeights(weights);
    const opt = new HessianFree({ maxIterations: 8, miniBatchMaxIterations: 10 });
    model.compile({ optimizer: opt, loss: 'categoricalCrossentropy' });
    const x = tf.tensor2d(r.x);
    const y = tf.tensor2d(r.y);
    const seen: { step: NonNullable<typeof opt.lastStep>; theta: number[] }[] = [];
    await model.fit(x, y, {
      epochs: r.steps.length / 2,
      batchSize: r.batchSize,
      shuffle: false,
      verbose: 0,
      callbacks: {
        onBatchEnd: async () => {
          seen.push({ step: opt.lastStep!, theta: model.getWeights().flatMap((w) => Array.from(w.dataSync())) });
        },
      },
    });
    expect(seen.length).toBe(r.steps.length);
    r.steps.forEach((want, k) => {
      const { step, theta } = seen[k]!;
      const at = `step ${k}`;
      expect(step.curvatureSource, at).toBe('tape');
      expect(step.dampingRatio, at).toBe(want.mode);
      expect(step.loss, at).toBeCloseTo(want.loss, 5);
      if (want.heldOutRho === null) expect(step.heldOutRho, at).toBeNaN();
      else
        expect(Math.abs(step.heldOutRho - want.heldOutRho), at).toBeLessThan(
          1e-3 * Math.max(1, Math.abs(want.heldOutRho)),
        );
      expect(step.dampingUsed / want.dampingUsed - 1, at).toBeLessThan(1e-6);
      expect(Math.abs(step.rho - want.rho), at).toBeLessThan(1e-3 * Math.abs(want.rho));
      expect(step.damping / want.damping - 1, at).toBeLessThan(1e-6);
      expect(step.stepSize, at).toBeCloseTo(want.stepSize, 6);
      expect(step.backtrackedIteration, at).toBe(want.backtrackedIteration);
      expect(relErr(theta, want.theta), at).toBeLessThan(1e-4);
    });
    tf.dispose([...weights, x, y]);
    model.dispose();
  });

  it('epoch losses fall monotonically with new HessianFree({}) (6-12-3 tanh/softmax, 96 examples, batch 32, 3 seeds)', async () => {
    for (const seed of [0, 1, 2]) {
      const { x, y } = issueData(seed);
      const model = issueModel(seed);
      const opt = new HessianFree({});
      model.compile({ optimizer: opt, loss: 'categoricalCrossentropy' });
      const fullLoss = () =>
        tf.tidy(() => tf.mean(tf.metrics.categoricalCrossentropy(y, model.predict(x) as tf.Tensor)).dataSync()[0]!);
      const epochLoss: number[] = [];
      const full: number[] = [fullLoss()];
      for (let epoch = 0; epoch < 10; epoch++) {
        const h = await model.fit(x, y, { epochs: 1, batchSize: 32, shuffle: false, verbose: 0 });
        epochLoss.push(h.history.loss![0] as number);
        full.push(fullLoss());
        expect(opt.lastStep!.curvature).toBe('ggn');
        expect(opt.lastStep!.curvatureSource).toBe('tape');
        expect(opt.lastStep!.dampingRatio).toBe('next-batch');
      }
      for (let k = 1; k < epochLoss.length; k++)
        expect(epochLoss[k]!, `seed ${seed} epoch ${k}`).toBeLessThan(epochLoss[k - 1]!);
      for (let k = 1; k < full.length; k++) expect(full[k]!, `seed ${seed} full loss ${k}`).toBeLessThan(full[k - 1]!);
      // It learns, not only stays put: well below the chance level log 3.
      expect(full[full.length - 1]!).toBeLessThan(0.5 * full[0]!);
      // lambda settled without a floor: bounded away from 0 and from the blow-up of an all-negative ratio.
      expect(opt.damping).toBeGreaterThan(1e-2);
      expect(opt.damping).toBeLessThan(10);
      tf.dispose([x, y]);
      model.dispose();
    }
  });

  it('is leak-free in fit with captured products', async () => {
    const { x, y } = issueData(0);
    const model = issueModel(0);
    model.compile({ optimizer: new HessianFree({ maxIterations: 20 }), loss: 'categoricalCrossentropy' });
    const counts: number[] = [];
    for (let epoch = 0; epoch < 3; epoch++) {
      await model.fit(x, y, { epochs: 1, batchSize: 32, shuffle: false, verbose: 0 });
      counts.push(tf.memory().numTensors);
    }
    expect(new Set(counts.slice(1)).size).toBe(1);
    tf.dispose([x, y]);
    model.dispose();
  });

  it('falls back to Hessian products with one warning for a loss it cannot split', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const { x, y } = issueData(1);
    const model = issueModel(1);
    const opt = new HessianFree({ maxIterations: 10 });
    const custom = (t: tf.Tensor, p: tf.Tensor) => tf.mean(tf.abs(tf.sub(t, p)), -1);
    model.compile({ optimizer: opt, loss: custom });
    await model.fit(x, y, { epochs: 2, batchSize: 32, shuffle: false, verbose: 0 });
    expect(opt.lastStep!.curvature).toBe('hessian');
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]![0])).toMatch(/no Gauss-Newton products.*custom loss function.*Hessian products/);
    // curvature 'ggn' refuses instead, naming the reason.
    const strict = new HessianFree({ curvature: 'ggn' });
    model.compile({ optimizer: strict, loss: custom });
    await expect(model.fit(x, y, { epochs: 1, batchSize: 32, shuffle: false, verbose: 0 })).rejects.toThrow(
      /curvature 'ggn' needs the network outputs.*custom loss function/s,
    );
    tf.dispose([x, y]);
    model.dispose();
  });

  it('refuses cross-entropy after an output that is not softmax (no convex split), falling back', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const { x, y } = issueData(2);
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ units: 4, inputShape: [6], activation: 'tanh' }),
        tf.layers.dense({ units: 3, activation: 'sigmoid' }),
      ],
    });
    const opt = new HessianFree({ maxIterations: 5 });
    model.compile({ optimizer: opt, loss: 'categoricalCrossentropy' });
    await model.fit(x, y, { epochs: 1, batchSize: 96, verbose: 0 });
    expect(opt.lastStep!.curvature).toBe('hessian');
    expect(String(warn.mock.calls[0]![0])).toMatch(
      /categoricalCrossentropy after a 'sigmoid' output has no convex Gauss-Newton split/,
    );
    tf.dispose([x, y]);
    model.dispose();
  });
});

describe('Gauss-Newton capture in a plain closure', () => {
  it('recognises closures of matMul layers (squared loss; softmax cross-entropy with labels built inside) and matches ggnvpVars, leak-free', () => {
    const m = Mlp.create(3);
    const before = tf.memory().numTensors;
    const cap = captureGaussNewton(m.loss, m.vars);
    expect(cap.ggn?.loss).toBe('meanSquaredError');
    expect(cap.ggn?.activation).toBe('linear');
    const vs = m.vars.map((v, i) => tf.randomNormal(v.shape, 0, 1, 'float32', 40 + i));
    const got = cap.ggn!.product(vs);
    const [w1, b1, w2, b2] = m.vars as [tf.Variable, tf.Variable, tf.Variable, tf.Variable];
    const outputs = () => tf.add(tf.matMul(tf.tanh(tf.add(tf.matMul(m.x, w1), b1)), w2), b2);
    const want = ggnvpVars(outputs, (z) => losses.meanSquaredError(m.y, z), m.vars, vs);
    const flat = (ts: tf.Tensor[]) => tf.tidy(() => tf.concat(ts.map((t) => t.reshape([-1]))).dataSync());
    expect(relErr(flat(got), flat(want))).toBeLessThan(1e-5);
    tf.dispose([cap.value, ...Object.values(cap.grads), ...got, ...want]);
    cap.ggn!.dispose();
    // Softmax cross-entropy with the labels one-hot encoded inside the closure: G at the logits.
    const labels = tf.tensor1d(
      Array.from({ length: 32 }, (_, i) => i % 4),
      'int32',
    );
    const ce = () =>
      tf.tidy(
        () =>
          tf.mean(
            tf.metrics.categoricalCrossentropy(tf.oneHot(labels, 4).toFloat(), tf.softmax(outputs())),
          ) as tf.Scalar,
      );
    const capCE = captureGaussNewton(ce, m.vars);
    expect(capCE.failure?.message).toBeUndefined();
    expect(capCE.ggn?.loss).toBe('categoricalCrossentropy');
    expect(capCE.ggn?.at).toBe('logits');
    const gotCE = capCE.ggn!.product(vs);
    const onehot = tf.tidy(() => tf.oneHot(labels, 4).toFloat());
    const wantCE = ggnvpVars(outputs, (z) => losses.softmaxCrossEntropy(onehot, z), m.vars, vs);
    expect(relErr(flat(gotCE), flat(wantCE))).toBeLessThan(1e-5);
    tf.dispose([capCE.value, ...Object.values(capCE.grads), ...gotCE, ...wantCE, onehot, labels, ...vs]);
    capCE.ggn!.dispose();
    expect(tf.memory().numTensors).toBe(before);
    const opt = new HessianFree({ maxIterations: 10 });
    opt.minimize(m.loss, false, m.vars);
    expect(opt.lastStep!.curvatureSource).toBe('tape');
    // A closure without a matMul layer has nothing to capture: Hessian mode, no warning.
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const x = tf.variable(tf.tensor1d([1, 2]));
    opt.minimize(() => tf.sum(tf.square(x)) as tf.Scalar);
    expect(opt.lastStep!.curvature).toBe('hessian');
    expect(warn).not.toHaveBeenCalled();
    x.dispose();
    m.dispose();
  });
});

describe('HessianFree at negative curvature', () => {
  it('raises lambda past the detected curvature and re-solves (float64 reference trajectory)', () => {
    const r = ref.raise;
    const w = tf.variable(tf.tensor1d(r.w0));
    const f = () =>
      tf.tidy(() => {
        const a = w.slice(0, 1);
        const b = w.slice(1, 1);
        return tf.sum(tf.add(tf.sub(tf.square(a), tf.square(b)), tf.pow(b, 4))) as tf.Scalar;
      });
    const opt = new HessianFree({ curvature: 'hessian', damping: r.damping, maxIterations: 2, warmStartDecay: 0 });
    expect(r.steps[0]!.raises).toBeGreaterThan(0); // the reference does meet negative curvature
    for (const s of r.steps) {
      opt.minimize(f);
      const step = opt.lastStep!;
      expect(step.dampingRaises).toBe(s.raises);
      expect(step.dampingUsed).toBeCloseTo(s.dampingUsed, 4);
      expect(step.stepSize).toBeCloseTo(s.stepSize, 5);
      expect(opt.damping).toBeCloseTo(s.damping, 4);
      const got = w.dataSync();
      expect(Math.abs(got[0]! - s.w[0]!)).toBeLessThan(1e-4);
      expect(Math.abs(got[1]! - s.w[1]!)).toBeLessThan(1e-4);
    }
    // The minimiser (0, 1/sqrt 2), reached from the saddle's side without a Steihaug truncation.
    expect(Math.abs(w.dataSync()[1]! - Math.SQRT1_2)).toBeLessThan(1e-3);
    w.dispose();
  });
});

describe('HessianFree state', () => {
  it("carries the 'squared-gradient' preconditioner's EMA in slots: getWeights -> setWeights continues identically", async () => {
    const options = { preconditioner: 'squared-gradient', curvature: 'hessian', maxIterations: 15 } as const;
    const a = Mlp.create(7);
    const optA = new HessianFree(options);
    for (let k = 0; k < 3; k++) optA.minimize(a.loss, false, a.vars);
    const saved = await optA.getWeights();
    expect(saved.map((s) => s.name)).toContain('@hessian-free/squaredGradient');
    const b = a.clone();
    const optB = new HessianFree(options);
    await optB.setWeights(saved);
    const c = a.clone();
    const optC = new HessianFree(options); // fresh state: the test must be able to tell
    await optC.setWeights(saved.filter((s) => !s.name.endsWith('/squaredGradient')));
    tf.dispose(saved.map((s) => s.tensor));
    for (let k = 0; k < 3; k++) {
      optA.minimize(a.loss, false, a.vars);
      optB.minimize(b.loss, false, b.vars);
      optC.minimize(c.loss, false, c.vars);
      // Identical: slots and the scalar state (saved exactly, base.ts) carry everything.
      expect(optB.lastStep!.loss).toBe(optA.lastStep!.loss);
      expect(optB.damping).toBe(optA.damping);
    }
    const drift = relErr(b.flat(), a.flat());
    const without = relErr(c.flat(), a.flat());
    expect(drift).toBe(0);
    expect(without).toBeGreaterThan(1e-5);
    [a, b, c].forEach((m) => m.dispose());
    [optA, optB, optC].forEach((o) => o.dispose());
  });
});
