/**
 * An optimizer's step cost against tuned Adam (lr 0.01) on the time-to-target problems themselves
 * (mlp-mnist 784-128-10 and autoencoder-mnist 784-128-32-128-784, batch 128, wasm; issue 16):
 * Adam and every variant run interleaved in one process, in rounds of STEPS steps (whole
 * preconditioning periods at Shampoo's defaults) on the same batches, each on its own copy of the
 * problem (same seed); reported per step: wall-clock ms and process CPU ms (CPU time is far less
 * disturbed by other processes on a shared machine), medians over rounds after one warm-up round
 * (first roots / checks, kernel compilation), and their ratios to Adam.
 *
 *   npx tsx scripts/step-cost.ts <optimizer> ['<json array of {label, options, internals?}>'] [rounds=7] [problems]
 *
 * Without variants: the optimizer's defaults (for Shampoo also the factored root form,
 * `rootProducts: false`). `internals` (Shampoo only): its ShampooInternals hooks.
 */
import * as tf from '@tensorflow/tfjs';
import { harnessRegistry } from '../experiments/index.js';
import { initBackend } from '../src/backend.js';
import { Shampoo, type ShampooInternals } from '../optimizers/shampoo.js';
import type { HarnessOptimizer } from '../src/harness/types.js';

interface Variant {
  label: string;
  options: Record<string, unknown>;
  internals?: ShampooInternals;
}

const OPTIMIZER = process.argv[2] ?? 'shampoo';
const defaults: Variant[] = [{ label: `${OPTIMIZER} defaults`, options: {} }];
if (OPTIMIZER === 'shampoo') {
  defaults.push({ label: 'shampoo defaults, root factors', options: {}, internals: { rootProducts: false } });
}
const VARIANTS: Variant[] = process.argv[3] ? (JSON.parse(process.argv[3]) as Variant[]) : defaults;
const ROUNDS = Number(process.argv[4] ?? 7);
const PROBLEMS = (process.argv[5] ?? 'mlp-mnist,autoencoder-mnist').split(',');
const STEPS = 40;
const BATCH = 128;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  await initBackend(process.env.CURVATURE_BACKEND ?? 'wasm');
  const out: string[] = [];
  const all = [
    { label: 'Adam (lr 1e-2)', optimizer: 'adam', options: { learningRate: 1e-2 } as Record<string, unknown> },
  ];
  all.push(...VARIANTS.map((v) => ({ ...v, optimizer: OPTIMIZER })));
  for (const name of PROBLEMS) {
    const runs = all.map((v) => {
      const problem = harnessRegistry.createProblem(name, { seed: 0 });
      const internals = (v as Variant).internals;
      const opt: HarnessOptimizer =
        internals !== undefined && v.optimizer === 'shampoo'
          ? new Shampoo(v.options, internals)
          : harnessRegistry.createOptimizer(v.optimizer, v.options, problem);
      return { v, problem, opt, wall: [] as number[], cpu: [] as number[] };
    });
    const data = runs[0]!.problem.data!;
    const batches = Array.from({ length: STEPS }, (_, i) =>
      data.batch(Int32Array.from({ length: BATCH }, (_, j) => (i * BATCH + j) % data.numTrain)),
    );
    const round = (r: (typeof runs)[number]) => {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      for (const b of batches) {
        r.opt.setCurvatureBatch?.(b); // HessianFree: the step's batch for its curvature products
        const cost = r.opt.minimize(() => r.problem.loss(b), true, r.problem.params);
        cost?.dataSync();
        cost?.dispose();
      }
      const c = process.cpuUsage(c0);
      return { wall: (performance.now() - t0) / STEPS, cpu: (c.user + c.system) / 1000 / STEPS };
    };
    for (const r of runs) round(r); // warm-up
    for (let k = 0; k < ROUNDS; k++) {
      for (const r of runs) {
        const t = round(r);
        r.wall.push(t.wall);
        r.cpu.push(t.cpu);
      }
    }
    const aw = median(runs[0]!.wall);
    const ac = median(runs[0]!.cpu);
    out.push(`\n${name} (${ROUNDS} rounds of ${STEPS} steps, batch ${BATCH})`);
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
