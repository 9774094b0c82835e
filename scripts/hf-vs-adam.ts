/**
 * HessianFree vs Adam on an MLP on MNIST digits: full training loss after each epoch.
 *
 *   npx tsx scripts/hf-vs-adam.ts [--epochs 5] [--train 2000] [--hidden 64] [--hf-batch 500]
 *     [--hf-fraction 1] [--hf-damping 0.01] [--hf-min-damping 0.01] [--hf-cg 50] [--hf-precond martens]
 *     [--hf-ratio batch|next-batch]
 *
 * Adam runs at every learning rate of a log grid, at batch 100 and at HF's batch; the table
 * shows the run with the best final training loss and, per epoch, the best loss of any Adam
 * run (the envelope, a stronger baseline than any single run). HessianFree (Gauss-Newton
 * curvature on --hf-fraction of each batch, Martens' per-example preconditioner, damping
 * starting at and bounded below by --hf-min-damping, CG capped at --hf-cg) runs once. All see
 * the same seeded problem (mlp-mnist, tanh) and batches drawn by the harness's seeded sampler;
 * an epoch is one pass of the gradient batches over the training set. HF gets its batch
 * through `setCurvatureBatch`, which is what the harness must call for 'ggn' (see docs).
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
const hfFraction = arg('hf-fraction', 1);
const hfDamping = arg('hf-damping', 0.01);
const hfMinDamping = arg('hf-min-damping', 0.01);
const hfCg = arg('hf-cg', 50);
const hfRatioIndex = process.argv.indexOf('--hf-ratio');
const hfRatio = (hfRatioIndex >= 0 ? process.argv[hfRatioIndex + 1] : 'batch') as 'batch' | 'next-batch';
const hfPrecondIndex = process.argv.indexOf('--hf-precond');
const hfPrecond = (hfPrecondIndex >= 0 ? process.argv[hfPrecondIndex + 1] : 'martens') as
  'none' | 'martens' | 'squared-gradient';
const seed = arg('seed', 0);

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
for (const batch of [...new Set([100, hfBatch])]) {
  for (const lr of grid) {
    const c = run(`Adam lr=${lr} (batch ${batch})`, batch, () => new Adam({ learningRate: lr }), false);
    adam.push(c);
    process.stderr.write(`${c.label}: ${c.losses.map((l) => l.toFixed(4)).join(' ')} (${c.seconds.toFixed(1)} s)\n`);
  }
}
const final = (c: Curve): number => c.losses[c.losses.length - 1]!;
const best = adam.reduce((a, b) => (final(b) < final(a) ? b : a));
curves.push({ ...best, label: `${best.label}: best final loss of the grid` });
curves.push({
  label: 'Adam envelope: best of all Adam runs at each epoch',
  losses: best.losses.map((_, e) => Math.min(...adam.map((c) => c.losses[e]!))),
  seconds: NaN,
  gradEvals: NaN,
  hvpEvals: NaN,
});
const hfLabel =
  `HessianFree GGN (batch ${hfBatch}, curvature on ${hfFraction * 100}%, ${hfPrecond} preconditioner, ` +
  `damping ${hfDamping} >= ${hfMinDamping}, CG <= ${hfCg}${hfRatio === 'batch' ? '' : `, ${hfRatio} ratio`})`;
const hf = run(
  hfLabel,
  hfBatch,
  () =>
    new HessianFree({
      curvature: 'ggn',
      curvatureFraction: hfFraction,
      maxIterations: hfCg,
      damping: hfDamping,
      minDamping: hfMinDamping,
      preconditioner: hfPrecond,
      dampingRatio: hfRatio,
    }),
  true,
);
process.stderr.write(`${hf.label}: ${hf.losses.map((l) => l.toFixed(4)).join(' ')} (${hf.seconds.toFixed(1)} s)\n`);
curves.push(hf);

const num = (v: number, digits: number): string => (Number.isFinite(v) ? v.toFixed(digits) : '-');
const lines = [
  `MLP 784-${hidden}-10 (tanh) on ${trainSize} MNIST digits, backend ${backend}, seed ${seed}: full training loss after each epoch.`,
  `Adam grid: learning rates ${grid.join(', ')} at batch ${[...new Set([100, hfBatch])].join(' and ')}.`,
  '',
  `| optimizer | ${Array.from({ length: epochs + 1 }, (_, e) => `epoch ${e}`).join(' | ')} | seconds | gradient evals | curvature products |`,
  `|---|${'---|'.repeat(epochs + 1)}---|---|---|`,
  ...curves.map(
    (c) =>
      `| ${c.label} | ${c.losses.map((l) => l.toFixed(4)).join(' | ')} | ${num(c.seconds, 1)} | ${num(c.gradEvals, 0)} | ${num(c.hvpEvals, 0)} |`,
  ),
];
process.stdout.write(lines.join('\n') + '\n');
