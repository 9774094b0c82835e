/**
 * HessianFree step cost against Adam, interleaved in one process (issue 16): per problem, every
 * config and tuned Adam (lr 0.01) take blocks of BLOCK steps in turn, ROUNDS rounds, on fresh
 * 128-example batches; medians of the per-block ms/step, as ratios to Adam's. Ratios measured
 * this way survive a loaded machine far better than ms/step from separate runs.
 *
 *   npx tsx scripts/hf-step-cost.ts '<json array of {label, options}>' [problems] [rounds]
 *
 * Each optimizer runs on its own copy of the problem (same seed) so trajectories do not mix.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.js';
import { harnessRegistry } from '../experiments/index.js';
import { Rng } from '../src/rng.js';

await initBackend(process.env.CURVATURE_BACKEND ?? 'wasm');
const configs = [
  { label: 'Adam lr 0.01', optimizer: 'adam', options: { learningRate: 0.01 } as Record<string, unknown> },
  ...(JSON.parse(process.argv[2] ?? '[{"label":"defaults","options":{}}]') as {
    label: string;
    optimizer?: string;
    options: Record<string, unknown>;
  }[]),
];
const problems = (process.argv[3] ?? 'mlp-mnist,autoencoder-mnist').split(',');
const ROUNDS = Number(process.argv[4] ?? 6);
const BLOCK = 5;

for (const name of problems) {
  const runs = configs.map((c) => {
    const problem = harnessRegistry.createProblem(name, { seed: 0 });
    const opt = harnessRegistry.createOptimizer(c.optimizer ?? 'hessian-free', c.options, problem);
    return { c, problem, opt, ms: [] as number[], rng: new Rng(42) };
  });
  for (let round = 0; round <= ROUNDS; round++) {
    for (const r of runs) {
      const data = r.problem.data!;
      let total = 0;
      for (let k = 0; k < BLOCK; k++) {
        const idx = r.rng.permutation(data.numTrain).slice(0, 128);
        const batch = data.batch(idx);
        const t0 = performance.now();
        r.opt.setCurvatureBatch?.(batch);
        const cost = r.opt.minimize(() => r.problem.loss(batch), true, r.problem.params);
        cost?.dataSync();
        total += performance.now() - t0;
        tf.dispose([cost!, batch.x, batch.y]);
      }
      // Round 0 warms up (first-step checks, kernel compilation).
      if (round > 0) r.ms.push(total / BLOCK);
    }
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
  const adam = med(runs[0]!.ms);
  for (const r of runs)
    console.log(`${name} | ${r.c.label} | ${med(r.ms).toFixed(1)} ms/step | ${(med(r.ms) / adam).toFixed(2)}x Adam`);
  for (const r of runs) {
    r.opt.dispose();
    r.problem.dispose();
  }
}
