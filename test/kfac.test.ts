// K-FAC as a drop-in optimizer: model.fit (softmax cross-entropy, mean squared error), minimize
// with registered plain-tf layers, checkpoints, leaks, non-finite losses, option validation.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import '../src/autodiff/index.js';
import { KFAC } from '../optimizers/kfac.js';
import { getOptimizerEntry } from '../optimizers/index.js';

beforeAll(async () => {
  await initBackend('cpu');
});

function classification(n = 128): { x: tf.Tensor2D; y: tf.Tensor2D } {
  return tf.tidy(() => {
    const x = tf.randomNormal([n, 8], 0, 1, 'float32', 1) as tf.Tensor2D;
    const w = tf.randomNormal([8, 3], 0, 1, 'float32', 2);
    const y = tf.oneHot(tf.argMax(tf.matMul(x, w), 1) as tf.Tensor1D, 3).toFloat() as tf.Tensor2D;
    return { x, y };
  });
}

function mlp(outActivation: 'softmax' | 'linear', out = 3): tf.Sequential {
  const model = tf.sequential();
  model.add(
    tf.layers.dense({
      units: 16,
      activation: 'tanh',
      inputShape: [8],
      kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }),
    }),
  );
  model.add(
    tf.layers.dense({
      units: out,
      activation: outActivation,
      kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }),
    }),
  );
  return model;
}

describe('KFAC in model.fit', () => {
  it('trains a softmax classifier compiled with categoricalCrossentropy', async () => {
    const { x, y } = classification();
    const model = mlp('softmax');
    const opt = new KFAC({ model });
    model.compile({ optimizer: opt, loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    const h = await model.fit(x, y, { epochs: 6, batchSize: 32, shuffle: false, verbose: 0 });
    const loss = h.history.loss as number[];
    expect(loss.at(-1)!).toBeLessThan(0.35 * loss[0]!);
    expect(h.history.acc!.at(-1)).toBeGreaterThan(0.9);
    expect(opt.blocks.map((b) => b.name)).toEqual(model.layers.map((l) => l.name));
    expect(opt.factors(model.layers[0]!.name)!.A.shape).toEqual([9, 9]);
    expect(opt.iterations).toBe(6 * 4);
    expect(opt.lossKindInUse).toBe('softmax-cross-entropy');
    model.dispose();
    tf.dispose([x, y]);
  });

  it('trains in model.fit with FAST_SETTINGS (low-rank inverses of the 16-unit layer factors)', async () => {
    const { x, y } = classification(256);
    const model = mlp('softmax');
    // factorRank 4: the hidden layer's A (9) and G (16) and the output's A (17) exceed 2 x 4.
    const opt = new KFAC({ model, ...KFAC.FAST_SETTINGS, factorRank: 4 });
    model.compile({ optimizer: opt, loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    const h = await model.fit(x, y, { epochs: 8, batchSize: 32, shuffle: false, verbose: 0 });
    const loss = h.history.loss as number[];
    expect(loss.at(-1)!).toBeLessThan(0.5 * loss[0]!);
    expect(h.history.acc!.at(-1)).toBeGreaterThan(0.85);
    const saved = await opt.getWeights();
    expect(saved.map((s) => s.name)).toEqual(expect.arrayContaining([`@kfac/${model.layers[0]!.name}/GU`]));
    tf.dispose(saved.map((s) => s.tensor));
    model.dispose();
    tf.dispose([x, y]);
  });

  it('trains a regression model compiled with meanSquaredError (Gaussian sampling detected)', async () => {
    const x = tf.randomNormal([128, 8], 0, 1, 'float32', 5);
    const y = tf.tidy(() => tf.tanh(tf.matMul(x, tf.randomNormal([8, 2], 0, 1, 'float32', 6))));
    const model = mlp('linear', 2);
    const opt = new KFAC({ model });
    model.compile({ optimizer: opt, loss: 'meanSquaredError' });
    const h = await model.fit(x, y, { epochs: 6, batchSize: 32, shuffle: false, verbose: 0 });
    const loss = h.history.loss as number[];
    expect(loss.at(-1)!).toBeLessThan(0.3 * loss[0]!);
    expect(opt.lossKindInUse).toBe('mse');
    expect(opt.estimationInUse).toBe('fisher');
    model.dispose();
    tf.dispose([x, y]);
  });

  it('keeps the number of tensors constant over epochs', async () => {
    const { x, y } = classification(64);
    const model = mlp('softmax');
    model.compile({ optimizer: new KFAC({ model }), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    await model.fit(x, y, { epochs: 1, batchSize: 16, verbose: 0 });
    const after1 = tf.memory().numTensors;
    await model.fit(x, y, { epochs: 3, batchSize: 16, verbose: 0 });
    expect(tf.memory().numTensors).toBe(after1);
    model.dispose();
    tf.dispose([x, y]);
  });
});

describe('KFAC with registered plain-tf layers', () => {
  function plain() {
    const W1 = tf.variable(tf.randomNormal([8, 12], 0, 0.3, 'float32', 7));
    const b1 = tf.variable(tf.zeros([12]));
    const W2 = tf.variable(tf.randomNormal([12, 3], 0, 0.3, 'float32', 8));
    const b2 = tf.variable(tf.zeros([3]));
    const { x, y } = classification(96);
    const loss = () =>
      tf.tidy(
        () =>
          tf.losses.softmaxCrossEntropy(
            y,
            tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(x, W1), b1)), W2), b2),
          ) as tf.Scalar,
      );
    return { vars: [W1, b1, W2, b2], loss, dispose: () => tf.dispose([W1, b1, W2, b2, x, y]) };
  }

  it('minimizes with registerDense and lossKind', () => {
    const p = plain();
    const [W1, b1, W2, b2] = p.vars as [tf.Variable, tf.Variable, tf.Variable, tf.Variable];
    const opt = new KFAC({ lossKind: 'softmax-cross-entropy' })
      .registerDense({ kernel: W1, bias: b1, name: 'hidden' })
      .registerDense({ kernel: W2, bias: b2, name: 'out' });
    const first = p.loss().dataSync()[0]!;
    for (let i = 0; i < 20; i++) opt.minimize(p.loss, false, p.vars);
    expect(p.loss().dataSync()[0]!).toBeLessThan(0.3 * first);
    expect(opt.factors('hidden')!.G.shape).toEqual([12, 12]);
    expect(opt.factors('out')!.A.shape).toEqual([13, 13]);
    p.dispose();
  });

  it('counts its loss evaluations and backward passes for the harness', () => {
    const p = plain();
    const [W1, b1, W2, b2] = p.vars as [tf.Variable, tf.Variable, tf.Variable, tf.Variable];
    // The adaptive step (the defaults before issue 16's time-to-target choice).
    const opt = new KFAC({
      ...KFAC.STEP_EFFICIENT_SETTINGS,
      lossKind: 'softmax-cross-entropy',
      estimation: 'empirical',
      dampingInterval: 5,
    })
      .registerDense({ kernel: W1, bias: b1 })
      .registerDense({ kernel: W2, bias: b2 });
    for (let i = 0; i < 10; i++) opt.minimize(p.loss, false, p.vars);
    // Empirical Fisher: one backward pass per step, plus one per output unit (3) for the exact
    // quadratic model; a gradient includes its loss, so lossEvals counts only the extra loss
    // value per step (the step-rejection check, which doubles as the damping check every 5 steps).
    expect(opt.counters).toEqual({ lossEvals: 10, gradEvals: 10 * (1 + 3), hvpEvals: 0 });
    // A sampled quadratic model on the empirical Fisher adds no backward pass.
    // Without step rejection: only the damping check's loss every 5 steps.
    const sampled = new KFAC({
      ...KFAC.STEP_EFFICIENT_SETTINGS,
      lossKind: 'softmax-cross-entropy',
      estimation: 'empirical',
      quadraticModel: 'sampled',
      rejectSteps: false,
    })
      .registerDense({ kernel: W1, bias: b1 })
      .registerDense({ kernel: W2, bias: b2 });
    for (let i = 0; i < 10; i++) sampled.minimize(p.loss, false, p.vars);
    expect(sampled.counters).toEqual({ lossEvals: 2, gradEvals: 10, hvpEvals: 0 });
    // 'fisher' with the exact quadratic model: the statistics' sample and 3 columns per step.
    const fisher = new KFAC({ ...KFAC.STEP_EFFICIENT_SETTINGS, lossKind: 'softmax-cross-entropy' })
      .registerDense({ kernel: W1, bias: b1 })
      .registerDense({ kernel: W2, bias: b2 });
    for (let i = 0; i < 10; i++) fisher.minimize(p.loss, false, p.vars);
    expect(fisher.counters).toEqual({ lossEvals: 10, gradEvals: 10 * (1 + 1 + 3), hvpEvals: 0 });
    p.dispose();
  });

  it('restores a checkpoint and continues the same trajectory', async () => {
    const run = async (restoreAt: number | undefined) => {
      const p = plain();
      const [W1, b1, W2, b2] = p.vars as [tf.Variable, tf.Variable, tf.Variable, tf.Variable];
      const make = () =>
        new KFAC({ lossKind: 'softmax-cross-entropy', seed: 3 })
          .registerDense({ kernel: W1, bias: b1, name: 'hidden' })
          .registerDense({ kernel: W2, bias: b2, name: 'out' });
      let opt = make();
      for (let i = 0; i < 12; i++) {
        if (i === restoreAt) {
          const saved = await opt.getWeights();
          const next = make();
          await next.setWeights(saved);
          tf.dispose(saved.map((s) => s.tensor));
          opt.dispose();
          opt = next;
        }
        opt.minimize(p.loss, false, p.vars);
      }
      const values = p.vars.map((v) => Array.from(v.dataSync()));
      const damping = opt.damping;
      p.dispose();
      return { values, damping };
    };
    const straight = await run(undefined);
    const restored = await run(7);
    expect(restored.damping).toBe(straight.damping);
    for (let i = 0; i < straight.values.length; i++) {
      const a = straight.values[i]!;
      const b = restored.values[i]!;
      expect(Math.max(...a.map((v, j) => Math.abs(v - b[j]!)))).toBeLessThan(1e-6);
    }
  });

  it('skips a step with a NaN loss, leaves the variables untouched and raises the damping', () => {
    const p = plain();
    const [W1, b1, W2, b2] = p.vars as [tf.Variable, tf.Variable, tf.Variable, tf.Variable];
    const opt = new KFAC({ lossKind: 'softmax-cross-entropy' })
      .registerDense({ kernel: W1, bias: b1 })
      .registerDense({ kernel: W2, bias: b2 });
    opt.minimize(p.loss, false, p.vars);
    const before = p.vars.map((v) => Array.from(v.dataSync()));
    const damping = opt.damping;
    const events: string[] = [];
    opt.addSkipListener((e) => events.push(e.reason));
    opt.minimize(() => tf.mul(p.loss(), NaN) as tf.Scalar, false, p.vars);
    expect(events).toEqual(['loss']);
    expect(p.vars.map((v) => Array.from(v.dataSync()))).toEqual(before);
    expect(opt.damping).toBeGreaterThan(damping);
    expect(opt.iterations).toBe(1);
    p.dispose();
  });

  it('without damping adaptation (the defaults), a damping raised by non-finite steps decays back', () => {
    const p = plain();
    const [W1, b1, W2, b2] = p.vars as [tf.Variable, tf.Variable, tf.Variable, tf.Variable];
    const opt = new KFAC({ lossKind: 'softmax-cross-entropy' })
      .registerDense({ kernel: W1, bias: b1 })
      .registerDense({ kernel: W2, bias: b2 });
    const configured = opt.damping;
    opt.minimize(p.loss, false, p.vars);
    for (let i = 0; i < 3; i++) opt.minimize(() => tf.mul(p.loss(), Infinity) as tf.Scalar, false, p.vars);
    expect(opt.skippedSteps).toBe(3);
    expect(opt.damping).toBeCloseTo(configured * 1000, 3);
    const trace: number[] = [];
    for (let i = 0; i < 80; i++) {
      opt.minimize(p.loss, false, p.vars);
      trace.push(opt.damping);
    }
    // dampingDecay 0.9 per applied step: 1000x -> 1x in 66 steps, never below the configured value.
    expect(trace[0]).toBeCloseTo(configured * 900, 2);
    for (let i = 1; i < trace.length; i++) expect(trace[i]!).toBeLessThanOrEqual(trace[i - 1]!);
    expect(trace.at(-1)).toBe(configured);
    expect(Math.min(...trace)).toBe(configured);
    p.dispose();
  });

  it('defaults on a layer wider than 2 x factorRank: rank-64 inverses, trains without a skipped step', async () => {
    // 200 inputs: the hidden layer's A is 201 x 201 > 128, so the default factorRank 64 applies.
    const x = tf.randomNormal([256, 200], 0, 1, 'float32', 21);
    const y = tf.tidy(() => tf.oneHot(tf.argMax(tf.matMul(x, tf.randomNormal([200, 4], 0, 1, 'float32', 22)), 1), 4));
    const W1 = tf.variable(tf.randomNormal([200, 32], 0, 0.07, 'float32', 23));
    const b1 = tf.variable(tf.zeros([32]));
    const W2 = tf.variable(tf.randomNormal([32, 4], 0, 0.2, 'float32', 24));
    const b2 = tf.variable(tf.zeros([4]));
    const vars = [W1, b1, W2, b2];
    const loss = (i: number) => (): tf.Scalar =>
      tf.tidy(() => {
        const xb = x.slice([(i % 8) * 32, 0], [32, 200]);
        const yb = y.slice([(i % 8) * 32, 0], [32, 4]);
        return tf.losses.softmaxCrossEntropy(
          yb,
          tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(xb, W1), b1)), W2), b2),
        ) as tf.Scalar;
      });
    const full = () =>
      tf.tidy(
        () =>
          tf.losses
            .softmaxCrossEntropy(y, tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(x, W1), b1)), W2), b2))
            .dataSync()[0]!,
      );
    const opt = new KFAC({ lossKind: 'softmax-cross-entropy' })
      .registerDense({ kernel: W1, bias: b1, name: 'hidden' })
      .registerDense({ kernel: W2, bias: b2, name: 'out' });
    const start = full();
    for (let i = 0; i < 60; i++) opt.minimize(loss(i), false, vars);
    expect(opt.skippedSteps).toBe(0);
    expect(full()).toBeLessThan(0.5 * start);
    expect(Number.isFinite(full())).toBe(true);
    // The wide factor (A of the hidden layer, 201) holds the low-rank inverse's slots; the others
    // (its G, 32, and the output layer's 33 and 4) are exact inverses.
    const saved = await opt.getWeights();
    const names = saved.map((w) => w.name);
    expect(names).toEqual(expect.arrayContaining(['@kfac/hidden/AU', '@kfac/hidden/Ginv', '@kfac/out/Ainv']));
    expect(names).not.toContain('@kfac/hidden/Ainv');
    tf.dispose(saved.map((w) => w.tensor));
    opt.dispose();
    tf.dispose([x, y, ...vars]);
  });

  it('skips a step whose update overflows although loss and gradient are finite', () => {
    const p = plain();
    const [W1, b1, W2, b2] = p.vars as [tf.Variable, tf.Variable, tf.Variable, tf.Variable];
    // A learning rate near float32's maximum: lr * Delta overflows to Infinity.
    // No KL clip (the default's would shrink the step back to a finite one).
    const opt = new KFAC({
      lossKind: 'softmax-cross-entropy',
      adaptive: false,
      learningRate: 3e38,
      momentum: 0,
      klClip: 0,
    })
      .registerDense({ kernel: W1, bias: b1 })
      .registerDense({ kernel: W2, bias: b2 });
    const before = p.vars.map((v) => Array.from(v.dataSync()));
    const events: string[] = [];
    opt.addSkipListener((e) => events.push(e.reason));
    opt.minimize(p.loss, false, p.vars);
    expect(events).toEqual(['update']);
    expect(p.vars.map((v) => Array.from(v.dataSync()))).toEqual(before);
    expect(p.vars.every((v) => v.dataSync().every(Number.isFinite))).toBe(true);
    expect(opt.iterations).toBe(0);
    expect(opt.skippedSteps).toBe(1);
    p.dispose();
  });

  it('falls back to a diagonal preconditioner for unregistered variables', () => {
    const p = plain();
    const [W1, b1] = p.vars as [tf.Variable, tf.Variable];
    const opt = new KFAC({ lossKind: 'softmax-cross-entropy' }).registerDense({ kernel: W1, bias: b1 });
    const first = p.loss().dataSync()[0]!;
    for (let i = 0; i < 10; i++) opt.minimize(p.loss, false, p.vars);
    expect(p.loss().dataSync()[0]!).toBeLessThan(first);
    p.dispose();
  });
});

describe('KFAC options', () => {
  it('names bad options', () => {
    expect(() => new KFAC({ damping: -1 })).toThrow(/Invalid damping: -1/);
    expect(() => new KFAC({ estimation: 'magic' as never })).toThrow(/Invalid estimation: "magic"/);
    expect(() => new KFAC({ inverseUpdatePeriod: 0 })).toThrow(/Invalid inverseUpdatePeriod/);
    expect(() => new KFAC({ model: {} as never })).toThrow(/Invalid model/);
    expect(() => new KFAC({ lr: 1 } as never)).toThrow(/Unknown option 'lr' for KFAC/);
  });

  it('refuses applyGradients with a clear message', () => {
    expect(() => new KFAC().applyGradients({})).toThrow(/needs the loss closure/);
  });

  it('is in the registry and takes model and lossKind from the problem', () => {
    const model = mlp('linear');
    const opt = getOptimizerEntry('kfac').create({}, { problem: { model, lossKind: 'softmax-cross-entropy' } }) as KFAC;
    expect(opt).toBeInstanceOf(KFAC);
    expect(opt.options.lossKind).toBe('softmax-cross-entropy');
    expect(opt.blocks.length).toBe(2);
    model.dispose();
  });
});
