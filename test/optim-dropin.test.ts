/**
 * Drop-in behaviour: tfjs-layers fit/save/load, getWeights/setWeights, leak-freedom, the
 * non-finite guard, option validation, serialisation and the registry.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { Adam, RMSProp, SGD, getOptimizerEntry } from '../optimizers/index.js';
import { CurvatureOptimizer, schedules, type SkipEvent } from '../src/optim/index.js';
import { Mlp, randomArray } from './optim-helpers.js';
import { saveToMemory } from './helpers/save.js';

let xs: tf.Tensor2D;
let ys: tf.Tensor2D;

beforeAll(async () => {
  await initBackend('cpu');
  xs = tf.tensor2d(randomArray(64 * 4, 7), [64, 4]);
  ys = tf.tensor2d(randomArray(64, 8), [64, 1]);
});

function model(seed = 0): tf.LayersModel {
  const m = tf.sequential({
    layers: [tf.layers.dense({ inputShape: [4], units: 8, activation: 'tanh' }), tf.layers.dense({ units: 1 })],
  });
  const shapes = m.getWeights().map((w) => w.shape);
  m.setWeights(
    shapes.map((s, i) =>
      tf.tensor(
        randomArray(
          s.reduce((a, b) => a * b, 1),
          seed + i,
          0.5,
        ),
        s,
      ),
    ),
  );
  return m;
}

async function fitLosses(m: tf.LayersModel, optimizer: tf.Optimizer, epochs = 5): Promise<number[]> {
  m.compile({ optimizer, loss: 'meanSquaredError' });
  const h = await m.fit(xs, ys, { epochs, batchSize: 16, shuffle: false, verbose: 0 });
  return h.history.loss as number[];
}

function maxRel(a: number[], b: number[]): number {
  return Math.max(...a.map((v, i) => Math.abs(v - b[i]!) / Math.abs(b[i]!)));
}

describe('tfjs-layers fit', () => {
  const pairs: [string, () => tf.Optimizer, () => tf.Optimizer][] = [
    ['SGD', () => new SGD({ learningRate: 0.1 }), () => tf.train.sgd(0.1)],
    ['SGD momentum', () => new SGD({ learningRate: 0.05, momentum: 0.9 }), () => tf.train.momentum(0.05, 0.9)],
    ['Adam', () => new Adam({ learningRate: 0.01 }), () => tf.train.adam(0.01, 0.9, 0.999, 1e-8)],
  ];
  for (const [name, ours, theirs] of pairs) {
    it(`${name}: loss history under fit matches the tfjs optimizer`, async () => {
      const a = await fitLosses(model(), ours());
      const b = await fitLosses(model(), theirs());
      expect(a[a.length - 1]).toBeLessThan(a[0]!);
      expect(maxRel(a, b)).toBeLessThan(1e-5);
    });
  }
  it('RMSProp trains under fit', async () => {
    const a = await fitLosses(model(), new RMSProp({ learningRate: 0.01, centered: true }));
    expect(a[a.length - 1]).toBeLessThan(0.9 * a[0]!);
  });
});

describe('model.save with includeOptimizer', () => {
  const makers: [string, () => tf.Optimizer][] = [
    [
      'Adam (amsgrad, warmup-cosine schedule)',
      () =>
        new Adam({
          learningRate: schedules.warmupCosine({ peak: 0.02, warmupSteps: 5, decaySteps: 60 }),
          amsgrad: true,
        }),
    ],
    [
      'SGD (Nesterov, weight decay)',
      () => new SGD({ learningRate: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-3 }),
    ],
    ['RMSProp (centered, momentum)', () => new RMSProp({ learningRate: 0.005, centered: true, momentum: 0.5 })],
  ];
  for (const [name, make] of makers) {
    it(`${name}: reload continues identically`, async () => {
      const a = model(3);
      await fitLosses(a, make(), 2);
      const artifacts = await saveToMemory(a);
      const b = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
      expect(b.optimizer.getClassName()).toBe(a.optimizer.getClassName());
      expect(b.optimizer.getConfig()).toEqual(a.optimizer.getConfig());
      const ha = await a.fit(xs, ys, { epochs: 3, batchSize: 16, shuffle: false, verbose: 0 });
      const hb = await b.fit(xs, ys, { epochs: 3, batchSize: 16, shuffle: false, verbose: 0 });
      expect(hb.history.loss).toEqual(ha.history.loss);
      const wa = a.getWeights().flatMap((w) => Array.from(w.dataSync()));
      const wb = b.getWeights().flatMap((w) => Array.from(w.dataSync()));
      expect(wb).toEqual(wa);
    });
  }
});

describe('getWeights / setWeights', () => {
  it('a fresh optimizer given the state continues the same trajectory (other variable names)', async () => {
    const a = Mlp.create(5);
    const oa = new Adam({ learningRate: 0.01, amsgrad: true });
    for (let i = 0; i < 20; i++) oa.minimize(a.loss, false, a.vars);
    const b = a.clone();
    const ob = new Adam({ learningRate: 0.01, amsgrad: true });
    const weights = await oa.getWeights();
    await ob.setWeights(weights);
    tf.dispose(weights.map((w) => w.tensor));
    expect(ob.iterations).toBe(20);
    for (let i = 0; i < 20; i++) {
      oa.minimize(a.loss, false, a.vars);
      ob.minimize(b.loss, false, b.vars);
    }
    expect(b.flat()).toEqual(a.flat());
  });

  it('restoring a snapshot into the same optimizer replays the same steps', async () => {
    const a = Mlp.create(6);
    const o = new SGD({ learningRate: 0.05, momentum: 0.9, dampening: 0.1 });
    for (let i = 0; i < 10; i++) o.minimize(a.loss, false, a.vars);
    const snap = await o.getWeights();
    const params = a.vars.map((v) => v.clone());
    for (let i = 0; i < 10; i++) o.minimize(a.loss, false, a.vars);
    const first = a.flat();
    await o.setWeights(snap);
    a.vars.forEach((v, i) => v.assign(params[i]!));
    for (let i = 0; i < 10; i++) o.minimize(a.loss, false, a.vars);
    expect(a.flat()).toEqual(first);
    tf.dispose([...params, ...snap.map((w) => w.tensor)]);
  });

  it('carries every slot, the per-variable steps, iterations and skippedSteps', async () => {
    const a = Mlp.create(7);
    const o = new RMSProp({ centered: true, momentum: 0.9 });
    o.minimize(a.loss, false, a.vars);
    const names = (await o.getWeights()).map((w) => w.name);
    expect(names[0]).toBe('iter');
    expect(names).toContain('__optimizer__/skippedSteps');
    for (const v of a.vars) {
      for (const slot of ['step', 'squareAvg', 'gradAvg', 'momentumBuffer'])
        expect(names).toContain(`${v.name}/${slot}`);
    }
  });
});

describe('memory', () => {
  const makers: [string, () => tf.Optimizer][] = [
    ['SGD', () => new SGD({ learningRate: 0.01, momentum: 0.9, nesterov: true, weightDecay: 1e-4 })],
    ['RMSProp', () => new RMSProp({ centered: true, momentum: 0.5, weightDecay: 1e-4 })],
    [
      'Adam',
      () =>
        new Adam({
          amsgrad: true,
          weightDecay: 1e-2,
          decoupledWeightDecay: true,
          learningRate: schedules.cosineDecay({ initial: 1e-3, decaySteps: 300 }),
        }),
    ],
  ];
  for (const [name, make] of makers) {
    it(`${name}: tf.memory().numTensors is constant over 500 steps and dispose frees the state`, () => {
      const a = Mlp.create(8);
      const before = tf.memory().numTensors;
      const o = make();
      o.minimize(a.loss, false, a.vars);
      const afterFirst = tf.memory().numTensors;
      for (let i = 0; i < 500; i++) o.minimize(a.loss, false, a.vars);
      expect(tf.memory().numTensors).toBe(afterFirst);
      const cost = o.minimize(a.loss, true, a.vars);
      cost?.dispose();
      o.dispose();
      expect(tf.memory().numTensors).toBe(before);
    });
  }
});

describe('non-finite guard', () => {
  it('a NaN loss skips the step: weights and state untouched, counted, reported', async () => {
    const a = Mlp.create(9);
    const events: SkipEvent[] = [];
    const o = new Adam({ learningRate: 0.01, onSkip: (e) => events.push(e) });
    const listened: SkipEvent[] = [];
    o.addSkipListener((e) => listened.push(e));
    for (let i = 0; i < 3; i++) o.minimize(a.loss, false, a.vars);
    const params = a.flat();
    const state = (await o.getWeights()).map((w) => Array.from(w.tensor.dataSync()));
    const nanLoss = (): tf.Scalar => tf.mul(a.loss(), NaN) as tf.Scalar;
    const cost = o.minimize(nanLoss, true, a.vars);
    expect(Number.isNaN(cost!.dataSync()[0])).toBe(true);
    cost!.dispose();
    expect(a.flat()).toEqual(params);
    expect(a.flat().every(Number.isFinite)).toBe(true);
    expect(o.skippedSteps).toBe(1);
    expect(o.iterations).toBe(3);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ reason: 'loss', iteration: 3, skippedSteps: 1 });
    expect(listened).toHaveLength(1);
    const stateAfter = (await o.getWeights()).map((w) => Array.from(w.tensor.dataSync()));
    // Only the skippedSteps counter (index 1) changed.
    expect(stateAfter.filter((_, i) => i !== 1)).toEqual(state.filter((_, i) => i !== 1));
    o.minimize(a.loss, false, a.vars);
    expect(o.iterations).toBe(4);
  });

  it('an infinite gradient given to applyGradients is skipped', () => {
    const v = tf.variable(tf.tensor1d([1, 2]), true, 'guardVar');
    const o = new SGD({ learningRate: 0.1, momentum: 0.9 });
    o.applyGradients({ guardVar: tf.tensor1d([Infinity, 0]) });
    expect(Array.from(v.dataSync())).toEqual([1, 2]);
    expect(o.skippedSteps).toBe(1);
    o.applyGradients([{ name: 'guardVar', tensor: tf.tensor1d([1, 1]) }]);
    expect(Array.from(v.dataSync())).toEqual([1 - 0.1, 2 - 0.1].map(Math.fround));
  });

  it('a subclass raises damping from onNonFinite', () => {
    class Damped extends SGD {
      damping = 1;
      protected override onNonFinite(): void {
        this.damping *= 10;
      }
    }
    const v = tf.variable(tf.scalar(1));
    const o = new Damped({ learningRate: 0.1 });
    o.minimize(() => tf.div(v, 0) as tf.Scalar, false, [v]);
    expect(o.damping).toBe(10);
  });
});

describe('options', () => {
  it.each([
    [() => new SGD({ learningRate: -1 }), 'Invalid learningRate: -1 (must be >= 0)'],
    [() => new Adam({ beta1: 1 }), 'Invalid beta1: 1 (must be in [0, 1))'],
    [() => new Adam({ beta2: 1.5 }), 'Invalid beta2: 1.5'],
    [() => new RMSProp({ alpha: -0.1 }), 'Invalid alpha: -0.1'],
    [() => new RMSProp({ epsilon: Number.NaN }), 'Invalid epsilon: NaN'],
    [() => new SGD({ nesterov: true }), 'Invalid nesterov: true (Nesterov momentum requires momentum > 0'],
    [() => new SGD({ momentum: 0.9, dampening: 0.1, nesterov: true }), 'dampening 0.1'],
    [() => new Adam({ lr: 0.1 } as never), "Unknown option 'lr' for Adam: expected one of"],
    [() => new Adam({ amsgrad: 1 } as never), 'Invalid amsgrad: 1 (must be true or false)'],
  ])('%# rejects with a message naming the option', (make, message) => {
    expect(make).toThrow(message);
  });

  it('PyTorch defaults', () => {
    expect(new SGD().options).toMatchObject({
      learningRate: 1e-3,
      momentum: 0,
      dampening: 0,
      weightDecay: 0,
      nesterov: false,
    });
    expect(new RMSProp().options).toMatchObject({
      learningRate: 1e-2,
      alpha: 0.99,
      epsilon: 1e-8,
      momentum: 0,
      centered: false,
    });
    expect(new Adam().options).toMatchObject({
      learningRate: 1e-3,
      beta1: 0.9,
      beta2: 0.999,
      epsilon: 1e-8,
      weightDecay: 0,
      decoupledWeightDecay: false,
      amsgrad: false,
    });
  });

  it('getConfig / fromConfig round trip, schedules included; class names do not clash with tfjs', () => {
    const o = new Adam({
      learningRate: schedules.stepDecay({ initial: 0.1, stepSize: 10, gamma: 0.5 }),
      amsgrad: true,
    });
    const copy = Adam.fromConfig(Adam, o.getConfig()) as Adam;
    expect(copy).toBeInstanceOf(Adam);
    expect(copy.getConfig()).toEqual(o.getConfig());
    expect((copy.learningRate as (t: number) => number)(25)).toBeCloseTo(0.025);
    expect([SGD.className, RMSProp.className, Adam.className]).toEqual([
      'CurvatureSGD',
      'CurvatureRMSProp',
      'CurvatureAdam',
    ]);
    expect(() => new Adam({ learningRate: (t: number) => 1 / (t + 1) }).getConfig()).toThrow('Invalid learningRate');
  });

  it('schedules follow their formulas', () => {
    const c = schedules.cosineDecay({ initial: 1, decaySteps: 10, alpha: 0.1 });
    expect(c(0)).toBeCloseTo(1);
    expect(c(5)).toBeCloseTo(0.55);
    expect(c(20)).toBeCloseTo(0.1);
    expect(schedules.exponentialDecay({ initial: 2, gamma: 0.5 })(3)).toBeCloseTo(0.25);
    const j = schedules.join([schedules.constant(1), schedules.linear({ from: 1, to: 0, steps: 4 })], [2]);
    expect([0, 1, 2, 3, 4, 6, 9].map(j)).toEqual([1, 1, 1, 0.75, 0.5, 0, 0]);
    expect(schedules.fromConfig(j.config!)(3)).toBe(0.75);
  });
});

describe('registry', () => {
  it('creates each optimizer by CLI name, as a tf.Optimizer and a CurvatureOptimizer', () => {
    for (const [name, cls] of [
      ['sgd', SGD],
      ['rmsprop', RMSProp],
      ['adam', Adam],
    ] as const) {
      const entry = getOptimizerEntry(name);
      const o = entry.create({ learningRate: 0.1 });
      expect(o).toBeInstanceOf(cls);
      expect(o).toBeInstanceOf(CurvatureOptimizer);
      expect(o).toBeInstanceOf(tf.Optimizer);
      expect(entry.className).toBe(cls.className);
      expect(entry.options.find((x) => x.name === 'learningRate')).toBeDefined();
    }
  });
});
