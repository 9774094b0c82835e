// HessianFree's linearised Gauss-Newton products for bound Dense-stack problems
// (optimizers/hessian-free/dense-ggn.ts): against the float64 products of
// scripts/reference/hessian_free_reference.py, against ggnvpVars, the fallbacks (non-linear
// output layer, outputs that are not the model's, a wrongly declared loss kind), and the
// optimizer step on a bound problem (same step as autodiff products, 'auto' damping ratio on
// changing batches, leak-free).
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { ggnvpVars, losses } from '../src/autodiff/index.js';
import { HessianFree } from '../optimizers/hessian-free.js';
import { linearizeDense } from '../optimizers/hessian-free/dense-ggn.js';
import type { Batch, LossKind, Problem } from '../src/harness/problem.js';
import { relErr } from './optim-helpers.js';

interface GGNCase {
  activation: 'softmax' | 'sigmoid' | 'linear' | 'tanh';
  loss: string;
  at: 'logits' | 'outputs';
  y: number[][];
  v: number[];
  Gv: number[];
}
const ref = JSON.parse(fs.readFileSync(new URL('./fixtures/hessian-free-reference.json', import.meta.url), 'utf8')) as {
  ggn: { x: number[][]; kernel1: number[][]; bias1: number[]; kernel2: number[][]; bias2: number[]; cases: GGNCase[] };
  ggnDeep: {
    x: number[][];
    widths: number[];
    activations: string[];
    params: (number[] | number[][])[];
    cases: { loss: LossKind; y: number[][]; v: number[]; Gv: number[] }[];
  };
};

beforeAll(async () => {
  await initBackend('cpu');
});

const LOSSES: Record<LossKind, (y: tf.Tensor, z: tf.Tensor) => tf.Scalar> = {
  'softmax-cross-entropy': losses.softmaxCrossEntropy,
  'sigmoid-cross-entropy': losses.sigmoidCrossEntropy,
  mse: losses.meanSquaredError,
};

/**
 * A harness-style problem: a tfjs-layers Dense stack whose weights are `params`, outputs =
 * the last layer's output, loss of the outputs declared as `lossKind` (computed by `lossAs`).
 */
function denseProblem(opts: {
  widths: number[];
  hidden: string | string[];
  output?: string;
  lossKind: LossKind;
  lossAs?: LossKind;
  seed?: number;
  outputsOffset?: number;
}): Problem & { params: tf.Variable[]; model: tf.Sequential; dispose: () => void } {
  const { widths } = opts;
  const model = tf.sequential();
  for (let l = 0; l + 1 < widths.length; l++) {
    model.add(
      tf.layers.dense({
        units: widths[l + 1]!,
        inputShape: l === 0 ? [widths[0]!] : undefined,
        activation: (l + 2 < widths.length
          ? Array.isArray(opts.hidden)
            ? opts.hidden[l]
            : opts.hidden
          : (opts.output ?? 'linear')) as 'linear',
        kernelInitializer: tf.initializers.glorotUniform({ seed: (opts.seed ?? 1) + l }),
        biasInitializer: tf.initializers.randomNormal({ stddev: 0.1, seed: (opts.seed ?? 1) + 10 + l }),
      }),
    );
  }
  const params = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const lossOf = LOSSES[opts.lossAs ?? opts.lossKind];
  const outputs = (b: Batch) =>
    tf.tidy(() => {
      const z = model.apply(b.x) as tf.Tensor;
      return opts.outputsOffset ? tf.add(z, opts.outputsOffset) : z;
    });
  const lossFromOutputs = (z: tf.Tensor, b: Batch) => lossOf(b.y, z);
  return {
    name: 'dense-test',
    params,
    model,
    outputs,
    lossFromOutputs,
    lossKind: opts.lossKind,
    loss: (b?: Batch) => tf.tidy(() => lossFromOutputs(outputs(b!), b!)),
    dispose: () => model.dispose(),
  } as unknown as Problem & { params: tf.Variable[]; model: tf.Sequential; dispose: () => void };
}

function splitLike(flat: number[], vars: tf.Variable[]): tf.Tensor[] {
  let o = 0;
  return vars.map((v) => {
    const t = tf.tensor(flat.slice(o, o + v.size), v.shape);
    o += v.size;
    return t;
  });
}

function flat(ts: tf.Tensor[]): number[] {
  return ts.flatMap((t) => Array.from(t.dataSync()));
}

describe('linearised Dense Gauss-Newton products', () => {
  it('match the float64 reference G v = J^T H_L J v (softmax / sigmoid cross-entropy at the logits, squared error)', () => {
    const g = ref.ggn;
    const kinds: Partial<Record<string, LossKind>> = {
      categoricalCrossentropy: 'softmax-cross-entropy',
      binaryCrossentropy: 'sigmoid-cross-entropy',
    };
    let checked = 0;
    for (const c of g.cases) {
      const lossKind: LossKind | undefined =
        c.activation === 'linear' && c.loss === 'meanSquaredError' ? 'mse' : kinds[c.loss];
      if (lossKind === undefined) continue;
      const p = denseProblem({ widths: [3, 5, 3], hidden: 'tanh', lossKind });
      p.model.setWeights([tf.tensor2d(g.kernel1), tf.tensor1d(g.bias1), tf.tensor2d(g.kernel2), tf.tensor1d(g.bias2)]);
      const batch: Batch = { x: tf.tensor2d(g.x), y: tf.tensor2d(c.y), size: g.x.length };
      const lin = linearizeDense(p, batch, p.params)!;
      expect(lin).toBeDefined();
      const vs = splitLike(c.v, p.params);
      const out = lin.product(vs);
      expect(relErr(flat(out), c.Gv)).toBeLessThan(1e-4);
      checked++;
      tf.dispose([...vs, ...out, batch.x, batch.y]);
      lin.dispose();
      p.dispose();
    }
    expect(checked).toBe(3);
  });

  it('match the float64 reference on a 4-6-5-3 relu/tanh stack (softmax and sigmoid cross-entropy)', () => {
    const d = ref.ggnDeep;
    for (const c of d.cases) {
      const p = denseProblem({ widths: d.widths, hidden: d.activations, lossKind: c.loss });
      p.model.setWeights(d.params.map((w) => tf.tensor(w)));
      const batch: Batch = { x: tf.tensor2d(d.x), y: tf.tensor2d(c.y), size: d.x.length };
      const lin = linearizeDense(p, batch, p.params)!;
      expect(lin).toBeDefined();
      const vs = splitLike(c.v, p.params);
      const out = lin.product(vs);
      expect(relErr(flat(out), c.Gv)).toBeLessThan(1e-4);
      tf.dispose([...vs, ...out, batch.x, batch.y]);
      lin.dispose();
      p.dispose();
    }
  });

  it('equal ggnvpVars on a 4-layer relu autoencoder and a tanh classifier, leak-free', () => {
    for (const [widths, hidden, lossKind] of [
      [[12, 8, 3, 8, 12], 'relu', 'sigmoid-cross-entropy'],
      [[6, 10, 7, 4], 'tanh', 'softmax-cross-entropy'],
    ] as const) {
      const p = denseProblem({ widths: [...widths], hidden, lossKind });
      const n = 9;
      const x = tf.randomUniform([n, widths[0]], 0, 1, 'float32', 3);
      const y =
        lossKind === 'softmax-cross-entropy'
          ? tf.oneHot(tf.tensor1d([0, 1, 2, 3, 0, 1, 2, 3, 0], 'int32'), 4).toFloat()
          : tf.randomUniform([n, widths[widths.length - 1]!], 0, 1, 'float32', 4);
      const batch: Batch = { x, y, size: n };
      const vs = p.params.map((v, i) => tf.randomNormal(v.shape, 0, 1, 'float32', 20 + i));
      const lin = linearizeDense(p, batch, p.params)!;
      expect(lin).toBeDefined();
      const before = tf.memory().numTensors;
      const a = lin.product(vs);
      const b = ggnvpVars(
        () => p.outputs!(batch),
        (z) => p.lossFromOutputs!(z, batch),
        p.params,
        vs,
      );
      expect(relErr(flat(a), flat(b))).toBeLessThan(1e-4);
      tf.dispose([...a, ...b]);
      expect(tf.memory().numTensors).toBe(before);
      lin.dispose();
      tf.dispose([...vs, x, y]);
      p.dispose();
    }
  });

  it("fall back: a non-linear output layer or outputs that are not the model's give none; a wrong lossKind uses autodiff", () => {
    const x = tf.randomUniform([5, 4], 0, 1, 'float32', 5);
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1], 'int32'), 3).toFloat();
    const batch: Batch = { x, y, size: 5 };
    const sig = denseProblem({ widths: [4, 6, 3], hidden: 'tanh', output: 'sigmoid', lossKind: 'mse' });
    expect(linearizeDense(sig, batch, sig.params)).toBeUndefined();
    const shifted = denseProblem({ widths: [4, 6, 3], hidden: 'tanh', lossKind: 'mse', outputsOffset: 1 });
    expect(linearizeDense(shifted, batch, shifted.params)).toBeUndefined();
    // Declared 'mse' but computed as softmax cross-entropy: the closed form is refused.
    const wrong = denseProblem({ widths: [4, 6, 3], hidden: 'tanh', lossKind: 'mse', lossAs: 'softmax-cross-entropy' });
    const lin = linearizeDense(wrong, batch, wrong.params)!;
    const vs = wrong.params.map((v, i) => tf.randomNormal(v.shape, 0, 1, 'float32', 30 + i));
    const a = lin.product(vs);
    const b = ggnvpVars(
      () => wrong.outputs!(batch),
      (z) => wrong.lossFromOutputs!(z, batch),
      wrong.params,
      vs,
    );
    expect(relErr(flat(a), flat(b))).toBeLessThan(1e-4);
    lin.dispose();
    tf.dispose([...a, ...b, ...vs, x, y]);
    [sig, shifted, wrong].forEach((p) => p.dispose());
  });
});

describe('HessianFree on a bound Dense problem', () => {
  const data = () => {
    const x = tf.randomUniform([64, 10], 0, 1, 'float32', 11);
    const labels = tf.argMax(tf.matMul(x, tf.randomNormal([10, 4], 0, 1, 'float32', 12)), 1);
    return { x, y: tf.oneHot(labels as tf.Tensor1D, 4).toFloat() };
  };

  it("takes the same step with linearised and autodiff products; 'auto' ratio is 'next-batch' on changing batches", () => {
    const { x, y } = data();
    const batches: Batch[] = [0, 16, 32, 48].map((s) => ({ x: x.slice(s, 16), y: y.slice(s, 16), size: 16 }));
    const run = (ggnProduct: 'linearized' | 'autodiff', same: boolean) => {
      const p = denseProblem({ widths: [10, 12, 4], hidden: 'tanh', lossKind: 'softmax-cross-entropy', seed: 3 });
      const opt = new HessianFree({ ggnProduct, curvatureFraction: 0.5, maxIterations: 10 }).bindProblem(p);
      const steps = [];
      let n0 = 0;
      for (let k = 0; k < 6; k++) {
        const b = batches[same ? 0 : k % 4]!;
        opt.setCurvatureBatch(b);
        opt.minimize(() => p.loss(b), false, p.params);
        steps.push({ ...opt.lastStep! });
        if (k === 1) n0 = tf.memory().numTensors;
      }
      expect(tf.memory().numTensors).toBe(n0);
      const w = flat(p.params);
      p.dispose();
      return { steps, w };
    };
    const lin = run('linearized', false);
    const auto = run('autodiff', false);
    expect(lin.steps.map((s) => s.dampingRatio)).toEqual(['batch', ...Array(5).fill('next-batch')]);
    for (let k = 0; k < lin.steps.length; k++) {
      expect(lin.steps[k]!.cgIterations).toBe(auto.steps[k]!.cgIterations);
      expect(lin.steps[k]!.newLoss).toBeCloseTo(auto.steps[k]!.newLoss, 4);
      expect(lin.steps[k]!.newLoss).toBeLessThan(lin.steps[k]!.loss);
    }
    expect(relErr(lin.w, auto.w)).toBeLessThan(1e-3);
    const full = run('linearized', true);
    expect(full.steps.every((s) => s.dampingRatio === 'batch')).toBe(true);
    expect(full.steps[5]!.newLoss).toBeLessThan(full.steps[0]!.loss);
    tf.dispose([x, y, ...batches.flatMap((b) => [b.x, b.y])]);
  });

  it('MINI_BATCH_SETTINGS: valid options; on changing batches CG stops at 10 iterations and the full loss falls', () => {
    const { x, y } = data();
    const batches: Batch[] = [0, 16, 32, 48].map((s) => ({ x: x.slice(s, 16), y: y.slice(s, 16), size: 16 }));
    const p = denseProblem({ widths: [10, 12, 4], hidden: 'tanh', lossKind: 'softmax-cross-entropy', seed: 5 });
    const opt = new HessianFree({ ...HessianFree.MINI_BATCH_SETTINGS }).bindProblem(p);
    const all: Batch = { x, y, size: 64 };
    const full = () => tf.tidy(() => p.loss(all).dataSync()[0]!);
    const f0 = full();
    for (let k = 0; k < 12; k++) {
      const b = batches[k % 4]!;
      opt.setCurvatureBatch(b);
      opt.minimize(() => p.loss(b), false, p.params);
      expect(opt.lastStep!.cgIterations).toBeLessThanOrEqual(k === 0 ? 250 : 10);
    }
    expect(full()).toBeLessThan(0.8 * f0);
    p.dispose();
    tf.dispose([x, y, ...batches.flatMap((b) => [b.x, b.y])]);
  });
});
