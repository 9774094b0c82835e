/**
 * HessianFree vs Adam on an MLP on MNIST digits: full training loss after each epoch.
 *
 *   npx tsx scripts/hf-vs-adam.ts [--epochs 5] [--train 2000] [--hidden 64] [--hf-batch 500] [--hf-fraction 0.5]
 *
 * Adam runs at every learning rate of a grid (batch 100) and the best final training loss is
 * reported; HessianFree (Gauss-Newton curvature, batch --hf-batch (500) with curvature on
 * --hf-fraction (0.5) of it, CG capped at 50 iterations) runs once. Both see the same seeded
 * problem (mlp-mnist, tanh) and batches
 * drawn by the harness's seeded sampler. HF gets its curvature batch through
 * `setCurvatureBatch`, which is what the harness must call for 'ggn' (see docs).
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.js';
import { problems } from '../experiments/index.js';
import { BatchSampler } from '../src/harness/run.js';
import { Adam } from '../optimizers/adam.js';
import { HessianFree } from '../optimizers/hessian-free.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const epochs = arg('epochs', 5);
const trainSize = arg('train', 2000);
const hidden = arg('hidden', 64);
const hfBatch = arg('hf-batch', 500);
const hfFraction = arg('hf-fraction', 0.5);
const seed = 0;

const backend = await initBackend(process.env.CURVATURE_BACKEND ?? 'wasm');

interface Curve {
  label: string;
  losses: number[];
  seconds: number;
  gradEvals: number;
  hvpEvals: number;
}

function run(label: string, batchSize: number, make: () => tf.Optimizer, ggn: boolean): Curve {
  const problem = problems.get('mlp-mnist', {
    hidden: [hidden],
    activation: 'tanh',
    trainSize,
    testSize: 0,
    batchSize,
    seed,
  });
  const opt = make();
  // (tf.Optimizer's Symbol.hasInstance makes `instanceof` true for any optimizer-like object.)
  if (ggn) (opt as HessianFree).bindProblem(problem);
  const sampler = new BatchSampler(problem.data!.numTrain, batchSize, seed);
  const losses = [problem.evaluate().trainLoss];
  let seconds = 0;
  for (let e = 0; e < epochs; e++) {
    for (let s = 0; s < sampler.stepsPerEpoch; s++) {
      const batch = problem.data!.batch(sampler.next());
      const t0 = performance.now();
      if (ggn) (opt as HessianFree).setCurvatureBatch(batch);
      const cost = opt.minimize(() => problem.loss(batch), true, problem.params);
      cost?.dataSync();
      seconds += (performance.now() - t0) / 1000;
      cost?.dispose();
      tf.dispose([batch.x, batch.y]);
    }
    losses.push(problem.evaluate().trainLoss);
  }
  const c = (opt as unknown as { counters?: { gradEvals: number; hvpEvals: number } }).counters;
  const steps = epochs * sampler.stepsPerEpoch;
  opt.dispose();
  problem.dispose();
  return { label, losses, seconds, gradEvals: c?.gradEvals ?? steps, hvpEvals: c?.hvpEvals ?? 0 };
}

const curves: Curve[] = [];
const grid = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1];
const adam: Curve[] = [];
for (const lr of grid) {
  const c = run(`Adam lr=${lr} (batch 100)`, 100, () => new Adam({ learningRate: lr }), false);
  adam.push(c);
  process.stderr.write(`${c.label}: ${c.losses.map((l) => l.toFixed(4)).join(' ')}\n`);
}
adam.sort((a, b) => a.losses[a.losses.length - 1]! - b.losses[b.losses.length - 1]!);
curves.push({ ...adam[0]!, label: `${adam[0]!.label}, best of grid ${grid.join(', ')}` });
const hf = run(
  `HessianFree GGN (batch ${hfBatch}, curvature on ${hfFraction * 100}%, CG <= 50)`,
  hfBatch,
  () => new HessianFree({ curvature: 'ggn', curvatureFraction: hfFraction, maxIterations: 50 }),
  true,
);
process.stderr.write(`${hf.label}: ${hf.losses.map((l) => l.toFixed(4)).join(' ')}\n`);
curves.push(hf);

const lines = [
  `MLP 784-${hidden}-10 (tanh) on ${trainSize} MNIST digits, backend ${backend}, seed ${seed}: full training loss after each epoch.`,
  '',
  `| optimizer | ${Array.from({ length: epochs + 1 }, (_, e) => `epoch ${e}`).join(' | ')} | seconds | gradient evals | curvature products |`,
  `|---|${'---|'.repeat(epochs + 1)}---|---|---|`,
  ...curves.map(
    (c) =>
      `| ${c.label} | ${c.losses.map((l) => l.toFixed(4)).join(' | ')} | ${c.seconds.toFixed(1)} | ${c.gradEvals} | ${c.hvpEvals} |`,
  ),
];
process.stdout.write(lines.join('\n') + '\n');
