/**
 * Save and reload continue the trajectory, for every optimizer (issue 13, part 3).
 *
 * One table: for each optimizer and its main variants, a small tfjs-layers classifier is trained
 * with `fit` (several steps per epoch, no shuffling), saved with `model.save(handler,
 * { includeOptimizer: true })` through an in-memory handler, reloaded with `tf.loadLayersModel`
 * (which rebuilds the optimizer by fromConfig, compiles the reloaded model with it and
 * restores its weights), and both the original and the reloaded model fit more epochs. The
 * reloaded run must equal the uninterrupted one step for step: the loss of every batch and the
 * weights after every epoch, bit for bit (tolerance 0: both runs execute the same float32
 * kernels on bit-identical weights and optimizer state, and scalar state such as damping is
 * saved as an exact float64).
 *
 * It catches the three defects of the issue: K-FAC rebuilt without its model (now re-attached by
 * compile), Shampoo's undefined config values (tf.io.fromMemory threw), and float32-rounded
 * scalar state (Newton's damping 1e-3 came back as 0.0010000000475).
 *
 * The Node section saves to JSON files on disk and loads them back with exactly the code shown
 * in docs/optimizers.md ("Saving and loading in Node"); a test checks that the doc's code is
 * this file's code.
 */
import * as tf from '@tensorflow/tfjs';
import { promises as fs } from 'node:fs';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { Adam, HessianFree, KFAC, LBFGS, Muon, Newton, RMSProp, SGD, Shampoo, SOAP } from '../optimizers/index.js';
import { AdaHessian, Sophia } from '../optimizers/index.js';
import { CurvatureOptimizer } from '../src/optim/index.js';
import { installCompileHook } from '../src/layers/registration.js';
import { randomArray } from './optim-helpers.js';
import { saveToMemory } from './helpers/save.js';

const N = 48;
const BATCH = 16; // 3 steps per epoch
const FIRST_EPOCHS = 3; // 9 steps before the save
const MORE_EPOCHS = 2; // 6 steps after it

let xs: tf.Tensor2D;
let ys: tf.Tensor2D;

beforeAll(async () => {
  await initBackend('cpu');
  xs = tf.tensor2d(randomArray(N * 4, 21), [N, 4]);
  // Three classes from a fixed linear rule of the inputs (learnable, not separable by chance).
  const labels = tf.tidy(() => tf.argMax(tf.matMul(xs, tf.tensor2d(randomArray(12, 22), [4, 3])), 1));
  ys = tf.oneHot(labels as tf.Tensor1D, 3).toFloat() as tf.Tensor2D;
  labels.dispose();
});

/** 4-8-3 tanh/softmax classifier with fixed initial weights. */
function classifier(): tf.Sequential {
  const m = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [4], units: 8, activation: 'tanh' }),
      tf.layers.dense({ units: 3, activation: 'softmax' }),
    ],
  });
  m.setWeights(m.getWeights().map((w, i) => tf.tensor(randomArray(w.size, 30 + i, 0.6), w.shape)));
  return m;
}

/** A 4-24-3 classifier: its second layer's input factor (25 x 25) is large enough for factorRank 4. */
function wideClassifier(): tf.Sequential {
  const m = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [4], units: 24, activation: 'tanh' }),
      tf.layers.dense({ units: 3, activation: 'softmax' }),
    ],
  });
  m.setWeights(m.getWeights().map((w, i) => tf.tensor(randomArray(w.size, 40 + i, 0.4), w.shape)));
  return m;
}

/** Per-batch losses and the weights after each epoch of `epochs` more epochs of fit. */
async function continueFit(m: tf.LayersModel, epochs: number): Promise<{ losses: number[]; weights: number[][] }> {
  const losses: number[] = [];
  const weights: number[][] = [];
  await m.fit(xs, ys, {
    epochs,
    batchSize: BATCH,
    shuffle: false,
    verbose: 0,
    callbacks: {
      onBatchEnd: async (_b, logs) => {
        losses.push(logs!.loss as number);
      },
      onEpochEnd: async () => {
        weights.push(m.getWeights().flatMap((w) => Array.from(w.dataSync())));
      },
    },
  });
  return { losses, weights };
}

interface Case {
  name: string;
  make: (model: tf.LayersModel) => tf.Optimizer;
  model?: () => tf.Sequential;
  /** Checked on the original optimizer after the first epochs (that the variant is exercised). */
  before?: (opt: tf.Optimizer) => void;
}

const numeric = (opt: tf.Optimizer, key: string): number =>
  (opt as unknown as { numericState: Record<string, number> }).numericState[key]!;

const CASES: Case[] = [
  { name: 'SGD', make: () => new SGD({ learningRate: 0.2 }) },
  {
    name: 'SGD Nesterov, weight decay',
    make: () => new SGD({ learningRate: 0.1, momentum: 0.9, nesterov: true, weightDecay: 1e-3 }),
  },
  {
    name: 'RMSProp centered, momentum',
    make: () => new RMSProp({ learningRate: 0.01, centered: true, momentum: 0.5 }),
  },
  { name: 'Adam', make: () => new Adam({ learningRate: 0.02 }) },
  { name: 'Adam amsgrad', make: () => new Adam({ learningRate: 0.02, amsgrad: true }) },
  {
    name: 'AdamW (decoupled weight decay)',
    make: () => new Adam({ learningRate: 0.02, weightDecay: 0.1, decoupledWeightDecay: true }),
  },
  {
    name: 'Newton (Levenberg-Marquardt damping)',
    make: () => new Newton({ damping: 1e-3 }),
    before: (opt) => {
      const d = (opt as Newton).damping;
      expect(Math.fround(d)).not.toBe(d); // not float32-representable: a float32 save would move it
    },
  },
  {
    name: 'LBFGS strong-Wolfe (history, H_diag, d, t, previous gradient and loss carried)',
    make: () => new LBFGS({ lineSearchFn: 'strong_wolfe', maxIter: 3, historySize: 4 }),
    before: (opt) => {
      expect(numeric(opt, 'historyLength')).toBe(4); // the history is full and shifting
      expect(numeric(opt, 'nIter')).toBeGreaterThan(9); // several L-BFGS iterations per fit batch
    },
  },
  { name: 'LBFGS fixed step', make: () => new LBFGS({ learningRate: 0.3, maxIter: 2 }) },
  {
    name: 'HessianFree',
    make: () => new HessianFree({ maxIterations: 20 }),
    before: (opt) => expect(Math.fround((opt as HessianFree).damping)).not.toBe((opt as HessianFree).damping),
  },
  {
    name: 'HessianFree, squared-gradient preconditioner (its EMA is a slot)',
    make: () => new HessianFree({ maxIterations: 20, preconditioner: 'squared-gradient' }),
  },
  {
    name: 'KFAC defaults (fixed learning rate, KL clip, statistics every 5 steps, inverses every 20)',
    make: (model) => new KFAC({ model }),
    before: (opt) => expect((opt as KFAC).estimationInUse).toBe('fisher'),
  },
  {
    name: 'KFAC.STEP_EFFICIENT_SETTINGS (adaptive, exact quadratic model, damping adaptation)',
    make: (model) => new KFAC({ model, ...KFAC.STEP_EFFICIENT_SETTINGS }),
    before: (opt) => {
      expect((opt as KFAC).estimationInUse).toBe('fisher');
      expect(Number.isFinite(numeric(opt, 'rho'))).toBe(true); // a damping adaptation happened
    },
  },
  {
    name: 'KFAC.FAST_SETTINGS, factorRank 4 (low-rank inverses, inverse refresh after the reload)',
    model: wideClassifier,
    make: (model) =>
      new KFAC({ model, ...KFAC.FAST_SETTINGS, statsUpdatePeriod: 2, inverseUpdatePeriod: 4, factorRank: 4 }),
  },
  {
    name: 'Shampoo, AdaGrad grafting, preconditioning started',
    make: () => new Shampoo({ learningRate: 0.05, preconditionFrequency: 4 }),
    before: (opt) => expect((opt as Shampoo).inverseRootCount).toBeGreaterThan(0),
  },
  {
    name: 'Shampoo, no grafting, beta2 < 1, momentum',
    make: () =>
      new Shampoo({
        learningRate: 0.02,
        grafting: 'none',
        beta2: 0.99,
        momentum: 0.5,
        preconditionFrequency: 4,
        epsilon: 1e-6,
      }),
    before: (opt) => expect((opt as Shampoo).inverseRootCount).toBeGreaterThan(0),
  },
  {
    name: 'Shampoo, Adam grafting, preconditioning starts after the reload',
    make: () =>
      new Shampoo({ learningRate: 0.02, grafting: 'adam', startPreconditioningStep: 11, preconditionFrequency: 4 }),
    before: (opt) => expect((opt as Shampoo).inverseRootCount).toBe(0),
  },
  {
    name: 'Muon (momentum slot on kernels, AdamW slots on biases, own Adam learning rate)',
    make: () => new Muon({ learningRate: 0.02, weightDecay: 0.01, adamLearningRate: 3e-3 }),
  },
  {
    name: 'AdaHessian (estimate count, seeded probes per step: an estimate after the reload)',
    make: () => new AdaHessian({ learningRate: 0.05, updateEach: 4, weightDecay: 0.01 }),
    before: (opt) => expect((opt as AdaHessian).hessianSteps).toBe(3),
  },
  {
    name: 'Sophia (Hutchinson in fit, seeded probes per step, curvature EMA slot)',
    make: () => new Sophia({ learningRate: 0.01, rho: 1, updateInterval: 4 }),
    before: (opt) => expect((opt as Sophia).lastEstimator).toBe('hutchinson'),
  },
  {
    name: 'SOAP (eigenbases refreshed before and after the reload, factored biases, merged dims)',
    make: () =>
      new SOAP({
        learningRate: 0.01,
        preconditionFrequency: 3,
        precondition1d: true,
        mergeDims: true,
        shampooBeta: 0.9,
      }),
  },
];

describe('model.save({ includeOptimizer: true }) -> tf.loadLayersModel -> fit continues identically', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const a = (c.model ?? classifier)();
      const opt = c.make(a);
      a.compile({ optimizer: opt, loss: 'categoricalCrossentropy' });
      const h0 = await a.fit(xs, ys, { epochs: FIRST_EPOCHS, batchSize: BATCH, shuffle: false, verbose: 0 });
      expect(opt.iterations).toBe((FIRST_EPOCHS * N) / BATCH);
      c.before?.(opt);

      const artifacts = await saveToMemory(a);
      const b = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
      const reloaded = b.optimizer as CurvatureOptimizer;
      expect(reloaded).not.toBe(opt);
      expect(reloaded.getClassName()).toBe(opt.getClassName());
      expect(reloaded.getConfig()).toEqual(opt.getConfig());
      expect(reloaded.iterations).toBe(opt.iterations);
      const stateA = (opt as unknown as { numericState: Record<string, number> }).numericState;
      const stateB = (reloaded as unknown as { numericState: Record<string, number> }).numericState;
      expect(stateB).toEqual(stateA); // exact, NaN included

      const straight = await continueFit(a, MORE_EPOCHS);
      const resumed = await continueFit(b, MORE_EPOCHS);
      expect(straight.losses).toHaveLength((MORE_EPOCHS * N) / BATCH);
      // The runs are really training (not diverged, not frozen), so equality means something.
      expect(straight.losses.every(Number.isFinite)).toBe(true);
      expect(straight.losses.reduce((x, y) => x + y) / straight.losses.length).toBeLessThan(
        h0.history.loss[0] as number,
      );
      expect(straight.weights[1]).not.toEqual(straight.weights[0]);
      expect(resumed.losses).toEqual(straight.losses);
      expect(resumed.weights).toEqual(straight.weights);
      a.dispose();
      b.dispose();
    });
  }
});

describe('K-FAC after a reload', () => {
  it('re-attaches to the model it is compiled with (Dense blocks, loss kind, same factors)', async () => {
    const a = classifier();
    const opt = new KFAC({ model: a });
    a.compile({ optimizer: opt, loss: 'categoricalCrossentropy' });
    await a.fit(xs, ys, { epochs: 1, batchSize: BATCH, shuffle: false, verbose: 0 });
    const b = await tf.loadLayersModel(tf.io.fromMemory(await saveToMemory(a)));
    const k = b.optimizer as KFAC;
    expect(k.blocks.map((bl) => bl.name)).toEqual(opt.blocks.map((bl) => bl.name));
    expect(k.lossKindInUse).toBe('softmax-cross-entropy');
    const name = opt.blocks[0]!.name;
    expect(Array.from(k.factors(name)!.A.dataSync())).toEqual(Array.from(opt.factors(name)!.A.dataSync()));
    expect(Array.from(k.factors(name)!.G.dataSync())).toEqual(Array.from(opt.factors(name)!.G.dataSync()));
    a.dispose();
    b.dispose();
  });

  it('the compile hook is installed once and leaves compile unchanged for other optimizers', async () => {
    const hooked = tf.LayersModel.prototype.compile;
    installCompileHook();
    expect(tf.LayersModel.prototype.compile).toBe(hooked);
    const m = classifier();
    const adam = new Adam({ learningRate: 0.02 });
    m.compile({ optimizer: adam, loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    expect(m.optimizer).toBe(adam);
    const h = await m.fit(xs, ys, { epochs: 1, batchSize: BATCH, shuffle: false, verbose: 0 });
    expect(Object.keys(h.history).sort()).toEqual(['acc', 'loss']);
    m.dispose();
  });

  it('compile attaches a K-FAC without a model; one given its model keeps it', () => {
    const a = classifier();
    const b = classifier();
    const k = new KFAC({ model: a });
    b.compile({ optimizer: k, loss: 'categoricalCrossentropy' });
    expect(k.options.model).toBe(a);
    const fresh = new KFAC(); // no model: compile attaches it
    b.compile({ optimizer: fresh, loss: 'categoricalCrossentropy' });
    expect(fresh.blocks.map((bl) => bl.name)).toEqual(b.layers.map((l) => l.name));
    expect(fresh.lossKindInUse).toBe('softmax-cross-entropy');
    a.dispose();
    b.dispose();
  });

  it('refuses to train with restored factors but no model, naming the fix (never a silent diagonal fallback)', async () => {
    const a = classifier();
    const opt = new KFAC({ model: a });
    a.compile({ optimizer: opt, loss: 'categoricalCrossentropy' });
    await a.fit(xs, ys, { epochs: 1, batchSize: BATCH, shuffle: false, verbose: 0 });
    const saved = await opt.getWeights();
    const orphan = new KFAC(); // e.g. rebuilt by fromConfig and never compiled with the model
    await orphan.setWeights(saved);
    tf.dispose(saved.map((w) => w.tensor));
    const vars = a.trainableWeights.map((w) => w.read() as tf.Variable);
    const before = vars.map((v) => Array.from(v.dataSync()));
    const loss = () => tf.metrics.categoricalCrossentropy(ys, a.apply(xs) as tf.Tensor).mean() as tf.Scalar;
    expect(() => orphan.minimize(loss, false, vars)).toThrow(
      /restored factors for layers .* but has no model.*attachModel/s,
    );
    expect(vars.map((v) => Array.from(v.dataSync()))).toEqual(before);
    // attachModel is the fix the message names: it then trains with the Kronecker blocks.
    orphan.attachModel(a);
    orphan.minimize(loss, false, vars);
    expect(orphan.blocks).toHaveLength(2);
    a.dispose();
  });

  it('refuses restored factors of layers its model does not have', async () => {
    const a = classifier();
    const opt = new KFAC({ model: a });
    a.compile({ optimizer: opt, loss: 'categoricalCrossentropy' });
    await a.fit(xs, ys, { epochs: 1, batchSize: BATCH, shuffle: false, verbose: 0 });
    const saved = await opt.getWeights();
    const other = classifier(); // fresh layer names
    const k = new KFAC({ model: other });
    await k.setWeights(saved);
    tf.dispose(saved.map((w) => w.tensor));
    other.compile({ optimizer: k, loss: 'categoricalCrossentropy' });
    await expect(other.fit(xs, ys, { epochs: 1, batchSize: BATCH, verbose: 0 })).rejects.toThrow(
      /which its model does not have/,
    );
    a.dispose();
    other.dispose();
  });
});

describe('scalar state is saved exactly', () => {
  it('numericState round-trips bit-exactly through getWeights / setWeights (int32 pair)', async () => {
    const a = new Newton({ damping: 0.008 });
    const w = await a.getWeights();
    const d = w.find((x) => x.name === '__optimizer__/damping')!;
    expect(d.tensor.dtype).toBe('int32');
    expect(d.tensor.shape).toEqual([2]);
    const b = new Newton();
    await b.setWeights(w);
    tf.dispose(w.map((x) => x.tensor));
    expect(b.damping).toBe(0.008);
  });

  it('still reads checkpoints of the old format (float32 scalars)', async () => {
    const b = new Newton();
    const old = [
      { name: 'iter', tensor: tf.scalar(4, 'int32') },
      { name: '__optimizer__/skippedSteps', tensor: tf.scalar(1, 'float32') },
      { name: '__optimizer__/damping', tensor: tf.scalar(0.008, 'float32') },
    ];
    await b.setWeights(old);
    tf.dispose(old.map((x) => x.tensor));
    expect(b.iterations).toBe(4);
    expect(b.skippedSteps).toBe(1);
    expect(b.damping).toBe(Math.fround(0.008));
  });

  it('names a malformed scalar state', async () => {
    const w = [{ name: '__optimizer__/damping', tensor: tf.zeros([3]) }];
    await expect(new Newton().setWeights(w)).rejects.toThrow(
      /'__optimizer__\/damping' must be a float32 scalar or an int32 pair/,
    );
    tf.dispose(w[0]!.tensor);
  });

  it('getConfig omits unset options (JSON-safe) and fromConfig restores their defaults', () => {
    const s = new Shampoo({ grafting: 'rmsprop' });
    const config = s.getConfig();
    expect(Object.values(config).includes(undefined as never)).toBe(false);
    expect('graftingEpsilon' in config).toBe(false);
    const back = CurvatureOptimizer.fromConfig(Shampoo, config) as Shampoo;
    expect(back.getConfig()).toEqual(config);
    expect(back.options.graftingBeta2).toBeUndefined();
  });
});

// docs:begin save-load-node
// Save a model with its optimizer to model.json + weights.bin, and load it back, in Node
// without tfjs-node (no file:// handler): tf.io.withSaveHandler and tf.io.fromMemory.
async function saveModelToDir(model: tf.LayersModel, dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const { weightData, ...json } = artifacts;
      // weightData is an ArrayBuffer or a list of them (large models): one buffer on disk.
      const bytes = new tf.io.CompositeArrayBuffer(weightData).slice();
      await fs.writeFile(path.join(dir, 'weights.bin'), new Uint8Array(bytes));
      await fs.writeFile(path.join(dir, 'model.json'), JSON.stringify(json));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
    { includeOptimizer: true },
  );
}

async function loadModelFromDir(dir: string): Promise<tf.LayersModel> {
  const json = JSON.parse(await fs.readFile(path.join(dir, 'model.json'), 'utf8')) as tf.io.ModelArtifacts;
  const bin = await fs.readFile(path.join(dir, 'weights.bin'));
  const weightData = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
  return tf.loadLayersModel(tf.io.fromMemory({ ...json, weightData }));
}
// docs:end save-load-node

describe('Node without tfjs-node: JSON files on disk (the code of docs/optimizers.md)', () => {
  it('docs/optimizers.md shows exactly the code tested here', () => {
    const block = (text: string) => {
      const m = /\/\/ docs:begin save-load-node\n([\s\S]*?)\/\/ docs:end save-load-node/.exec(text);
      return m?.[1];
    };
    const here = block(readFileSync(new URL(import.meta.url).pathname, 'utf8'));
    const doc = block(readFileSync(new URL('../docs/optimizers.md', import.meta.url).pathname, 'utf8'));
    expect(here).toBeDefined();
    expect(doc).toBe(here);
  });

  // K-FAC's rho is an arbitrary float64 (exact through the files), Shampoo has host-resident slots.
  const fileCases = ['Adam amsgrad', 'KFAC defaults', 'Shampoo, AdaGrad'].map((p) =>
    CASES.find((x) => x.name.startsWith(p))!,
  );
  for (const c of fileCases) {
    it(`${c.name}: save to files, load, continue identically`, async () => {
      const dir = await fs.mkdtemp(path.join(tmpdir(), 'curvature-save-'));
      try {
        const a = classifier();
        a.compile({ optimizer: c.make(a), loss: 'categoricalCrossentropy' });
        await a.fit(xs, ys, { epochs: 2, batchSize: BATCH, shuffle: false, verbose: 0 });
        await saveModelToDir(a, dir);
        const b = await loadModelFromDir(dir);
        expect(b.optimizer.getClassName()).toBe(a.optimizer.getClassName());
        const straight = await continueFit(a, 1);
        const resumed = await continueFit(b, 1);
        expect(resumed.losses).toEqual(straight.losses);
        expect(resumed.weights).toEqual(straight.weights);
        a.dispose();
        b.dispose();
      } finally {
        await fs.rm(dir, { recursive: true, force: true });
      }
    });
  }
});
