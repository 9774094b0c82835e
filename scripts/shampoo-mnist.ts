/**
 * Shampoo (Adam grafting) vs Adam on the harness's mlp-mnist problem (784-128-10 relu,
 * softmax cross-entropy, batch 128): how many steps Shampoo needs to reach the
 * full-training-set loss Adam has at step N. Every run starts from the same seeded weights and
 * sees the same seeded mini-batches; the loss is evaluated on the whole training set (8,000
 * examples) every `every` steps.
 *
 * Each optimizer gets its own best learning rate from the same log grid: Adam's is the one with
 * the lowest loss at step N (that loss is the target), Shampoo's the one that reaches the
 * target in the fewest steps (ties: lower loss at N).
 *
 *   npx tsx scripts/shampoo-mnist.ts [--steps 300] [--every 10] [--grid 3e-4,1e-3,3e-3,1e-2]
 *       [--shampoo '{"rootExponent": 4}']   (overrides of the Shampoo options below)
 *       [--cache file.json]                 (reuse Adam's curves for the same steps/grid)
 *       [--lrs 3e-3,1e-2]                   (exploration only: Shampoo on part of the grid)
 *       [--defaults]                        (Shampoo at the library defaults, plus --shampoo overrides)
 *
 * Pass criterion of issue 8: Shampoo reaches Adam's loss at step N in <= N / 2 steps.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.js';
import { problems } from '../experiments/index.js';
import { Rng } from '../src/harness/rng.js';
import { Adam } from '../optimizers/adam.js';
import { Shampoo, type ShampooOptions } from '../optimizers/shampoo.js';

const { values: args } = parseArgs({
  options: {
    steps: { type: 'string', default: '300' },
    every: { type: 'string', default: '10' },
    grid: { type: 'string', default: '1e-3,3e-3,1e-2,3e-2,1e-1' },
    lrs: { type: 'string' },
    shampoo: { type: 'string', default: '{}' },
    cache: { type: 'string' },
    defaults: { type: 'boolean', default: false },
  },
});
const N = Number(args.steps);
const every = Number(args.every);
const grid = args.grid.split(',').map(Number);
const shampooGrid = args.lrs === undefined ? grid : args.lrs.split(',').map(Number);
const batchSize = 128;
const backend = await initBackend(process.env.CURVATURE_BACKEND ?? 'wasm');

/**
 * The Shampoo settings: Distributed Shampoo's README example for Adam grafting (betas 0.9 /
 * 0.999, grafting beta2 0.999 and epsilon 1e-8) with the three changes that were measured to
 * matter on this problem (docs/shampoo.md has the whole sweep): inverse square roots
 * (rootExponent 2 instead of 2k = 4), epsilon 1e-3 relative to the largest eigenvalue instead of
 * 1e-12 absolute (the early statistics are rank-deficient, e.g. the 128x128 factor of the
 * 128x10 layer gains rank <= 10 per step), and roots every step. Since issue 13 the library
 * defaults are Adam grafting and epsilon 1e-5 relative; `--defaults` runs them (220 steps, 73%);
 * these settings with epsilon 1e-5 instead of 1e-3 take 160 (docs/shampoo.md).
 */
const shampooOptions: ShampooOptions = args.defaults
  ? (JSON.parse(args.shampoo) as ShampooOptions)
  : {
      grafting: 'adam',
      graftingBeta2: 0.999,
      graftingEpsilon: 1e-8,
      beta1: 0.9,
      beta2: 0.999,
      rootExponent: 2,
      epsilon: 1e-3,
      epsilonMode: 'relative',
      preconditionFrequency: 1,
      maxPreconditionerDim: 128,
      ...(JSON.parse(args.shampoo) as ShampooOptions),
    };

interface Curve {
  lr: number;
  steps: number[];
  losses: number[];
  seconds: number;
}

function train(make: (lr: number) => tf.Optimizer, lr: number): Curve {
  const problem = problems.get('mlp-mnist', { seed: 1, batchSize });
  const data = problem.data!;
  const rng = new Rng(7);
  const opt = make(lr);
  const curve: Curve = { lr, steps: [0], losses: [], seconds: 0 };
  const fullLoss = () => tf.tidy(() => problem.loss().dataSync()[0]!);
  curve.losses.push(fullLoss());
  const t0 = performance.now();
  for (let s = 1; s <= N; s++) {
    const idx = new Int32Array(batchSize);
    for (let i = 0; i < batchSize; i++) idx[i] = Math.floor(rng.uniform() * data.numTrain);
    tf.tidy(() => {
      const batch = data.batch(idx);
      opt.minimize(() => problem.loss(batch), false, problem.params);
    });
    if (s % every === 0) {
      curve.steps.push(s);
      curve.losses.push(fullLoss());
    }
  }
  curve.seconds = (performance.now() - t0) / 1000;
  opt.dispose();
  problem.dispose();
  return curve;
}

const final = (c: Curve) => c.losses[c.losses.length - 1]!;
const reach = (c: Curve, target: number) => c.steps.find((s, i) => s > 0 && c.losses[i]! <= target);

const cacheKey = JSON.stringify({ N, every, grid, batchSize, backend });
let adamCurves: Curve[];
const cached =
  args.cache !== undefined && existsSync(args.cache)
    ? (JSON.parse(readFileSync(args.cache, 'utf8')) as { key: string; curves: Curve[] })
    : undefined;
if (cached?.key === cacheKey) {
  adamCurves = cached.curves;
} else {
  adamCurves = grid.map((lr) => train((l) => new Adam({ learningRate: l }), lr));
  if (args.cache !== undefined) writeFileSync(args.cache, JSON.stringify({ key: cacheKey, curves: adamCurves }));
}
const adam = adamCurves.reduce((a, b) => (final(b) < final(a) ? b : a));
const target = final(adam);

const shampooCurves = shampooGrid.map((lr) => train((l) => new Shampoo({ ...shampooOptions, learningRate: l }), lr));
const score = (c: Curve) => reach(c, target) ?? Infinity;
const shampoo = shampooCurves.reduce((a, b) =>
  score(b) < score(a) || (score(b) === score(a) && final(b) < final(a)) ? b : a,
);
const reached = reach(shampoo, target);

const row = (c: Curve) => c.losses.map((l) => l.toFixed(4)).join(' ');
console.log(
  `backend ${backend}; mlp-mnist 784-128-10 relu, batch ${batchSize}, ${N} steps, learning-rate grid ${grid.join(', ')}`,
);
if (shampooGrid !== grid) console.log(`(exploration: Shampoo only at ${shampooGrid.join(', ')})`);
console.log(`Shampoo options: ${JSON.stringify(shampooOptions)}`);
console.log(`full-train loss at steps ${adam.steps.join(' ')}`);
for (const c of adamCurves) console.log(`Adam    lr ${c.lr.toExponential(0)}: ${row(c)}  (${c.seconds.toFixed(1)} s)`);
for (const c of shampooCurves) {
  const r = reach(c, target);
  console.log(
    `Shampoo lr ${c.lr.toExponential(0)}: ${row(c)}  (${c.seconds.toFixed(1)} s; reaches target at ${r ?? '-'})`,
  );
}
console.log(`Adam's best lr ${adam.lr}; its loss at step ${N}: ${target.toFixed(4)}`);
console.log(
  reached === undefined
    ? `Shampoo (best lr ${shampoo.lr}) did not reach it within ${N} steps: FAIL`
    : `Shampoo (best lr ${shampoo.lr}) reached it at step ${reached} (${((reached / N) * 100).toFixed(0)}% of N): ${
        reached <= N / 2 ? 'PASS' : 'FAIL'
      } (need <= ${N / 2})`,
);
