/**
 * Measures the cost model of the harness's gradient-equivalents (docs/harness.md): the time of a
 * loss value, a Hessian-vector product and a Gauss-Newton-vector product relative to one gradient
 * (value and gradient together), on mlp-mnist (784 -> hidden -> 10, tanh).
 *
 *   npx tsx scripts/measure-eval-costs.ts [--hidden 64] [--batch 256] [--reps 30]
 *
 * Each kind is timed over `reps` calls after 5 warm-up calls, reading the result back
 * (dataSync) so that the backend has finished; the median per-call time is reported.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.js';
import { problems } from '../experiments/index.js';
import { BatchSampler } from '../src/harness/run.js';
import { ggnvpVars, hvpVars, valueAndGradVars } from '../src/autodiff/index.js';
import type { NetworkProblem } from '../src/harness/problem.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const hidden = arg('hidden', 64);
const batchSize = arg('batch', 256);
const reps = arg('reps', 30);
const backend = await initBackend(process.env.CURVATURE_BACKEND ?? 'wasm');

const problem = problems.get('mlp-mnist', {
  hidden: [hidden],
  activation: 'tanh',
  trainSize: 2000,
  batchSize,
  seed: 0,
}) as NetworkProblem;
const sampler = new BatchSampler(problem.data.numTrain, batchSize, 0);
const batch = problem.data.batch(sampler.next());
const vars = problem.params;
const vs = vars.map((v) => tf.randomNormal(v.shape, 0, 1, 'float32', 1));

const read = (ts: tf.Tensor | tf.Tensor[]) => {
  const list = Array.isArray(ts) ? ts : [ts];
  for (const t of list) t.dataSync();
  tf.dispose(list);
};
const kinds: Record<string, () => void> = {
  loss: () => read(tf.tidy(() => problem.loss(batch))),
  gradient: () =>
    read(
      tf.tidy(() => {
        const { value, grads } = valueAndGradVars(() => problem.loss(batch), vars);
        return [value, ...grads];
      }),
    ),
  hvp: () => read(tf.tidy(() => hvpVars(() => problem.loss(batch), vars, vs))),
  ggnvp: () =>
    read(
      tf.tidy(() =>
        ggnvpVars(
          () => problem.outputs(batch),
          (z) => problem.lossFromOutputs(z, batch),
          vars,
          vs,
        ),
      ),
    ),
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const ms: Record<string, number> = {};
for (const [name, f] of Object.entries(kinds)) {
  for (let i = 0; i < 5; i++) f();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    f();
    times.push(performance.now() - t0);
  }
  ms[name] = median(times);
}
console.log(
  `backend ${backend}, mlp-mnist 784-${hidden}-10 tanh, batch ${batchSize}, ${problem.numParams} params, median of ${reps}`,
);
for (const [name, t] of Object.entries(ms)) {
  console.log(`${name.padEnd(9)} ${t.toFixed(2).padStart(8)} ms   ${(t / ms.gradient).toFixed(2)} x gradient`);
}
tf.dispose([batch.x, batch.y, ...vs]);
problem.dispose();
