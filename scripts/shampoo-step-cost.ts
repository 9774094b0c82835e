/**
 * Shampoo's step cost relative to tuned Adam on the time-to-target problems themselves
 * (mlp-mnist 784-128-10 and autoencoder-mnist 784-128-32-128-784, batch 128, wasm), for the
 * configurations of issue 16's defaults sweep (docs/shampoo.md "Time to target"). Variants run
 * interleaved, in rounds of whole preconditioning periods, on the same batches; reported per
 * step: wall-clock ms and process CPU ms (CPU time is far less disturbed by other processes on a
 * shared machine: a loaded machine stretches wall-clock but not the work done), medians over
 * rounds, and their ratios to Adam.
 *
 *   npx tsx scripts/shampoo-step-cost.ts [rounds=7] [problems=mlp-mnist,autoencoder-mnist]
 *   SSC_VARIANTS='[{"label":"..","options":{..}}]' adds variants.
 */
import * as tf from '@tensorflow/tfjs';
import { harnessRegistry } from '../experiments/index.js';
import { initBackend } from '../src/backend.js';
import { Shampoo, type ShampooInternals } from '../optimizers/shampoo.js';

interface Variant {
  label: string;
  optimizer: string;
  options: Record<string, unknown>;
  internals?: Record<string, unknown>;
}

const ROUNDS = Number(process.argv[2] ?? 7);
const PROBLEMS = (process.argv[3] ?? 'mlp-mnist,autoencoder-mnist').split(',');
const STEPS = 40; // a multiple of every preconditionFrequency below (20, 40) except 50: see 'f50'
const VARIANTS: Variant[] = [
  { label: 'Adam (lr 1e-2)', optimizer: 'adam', options: { learningRate: 1e-2 } },
  { label: 'Shampoo defaults', optimizer: 'shampoo', options: {} },
  {
    label: 'Shampoo defaults, root factors',
    optimizer: 'shampoo',
    options: {},
    internals: { rootProducts: false },
  },
  ...(process.env.SSC_VARIANTS ? (JSON.parse(process.env.SSC_VARIANTS) as Variant[]) : []),
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  await initBackend('wasm');
  const out: string[] = [];
  for (const name of PROBLEMS) {
    const runs = VARIANTS.map((v) => {
      const problem = harnessRegistry.createProblem(name, { seed: 0 });
      const opt = v.internals
        ? new Shampoo(v.options, v.internals as ShampooInternals)
        : (harnessRegistry.createOptimizer(v.optimizer, v.options, problem) as tf.Optimizer);
      return { v, problem, opt, wall: [] as number[], cpu: [] as number[] };
    });
    const data = runs[0]!.problem.data!;
    const batches = Array.from({ length: STEPS }, (_, i) =>
      data.batch(Int32Array.from({ length: 128 }, (_, j) => (i * 128 + j) % data.numTrain)),
    );
    const round = (r: (typeof runs)[number]) => {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      for (const b of batches) {
        const cost = r.opt.minimize(() => r.problem.loss(b), true, r.problem.params);
        cost?.dataSync();
        cost?.dispose();
      }
      const wall = (performance.now() - t0) / STEPS;
      const c = process.cpuUsage(c0);
      return { wall, cpu: (c.user + c.system) / 1000 / STEPS };
    };
    for (const r of runs) round(r); // warm-up (first roots, compilation)
    for (let k = 0; k < ROUNDS; k++) {
      for (const r of runs) {
        const t = round(r);
        r.wall.push(t.wall);
        r.cpu.push(t.cpu);
      }
    }
    const aw = median(runs[0]!.wall);
    const ac = median(runs[0]!.cpu);
    out.push(`\n${name} (${ROUNDS} rounds of ${STEPS} steps, batch 128)`);
    out.push('| variant | wall ms/step | ratio | CPU ms/step | ratio |', '|---|---:|---:|---:|---:|');
    for (const r of runs) {
      const w = median(r.wall);
      const c = median(r.cpu);
      out.push(
        `| ${r.v.label} | ${w.toFixed(2)} | ${(w / aw).toFixed(2)} | ${c.toFixed(2)} | ${(c / ac).toFixed(2)} |`,
      );
      r.opt.dispose();
      r.problem.dispose();
    }
    tf.dispose(batches.flatMap((b) => [...new Set([b.x, b.y])]));
  }
  console.log(out.join('\n'));
}

void main();
