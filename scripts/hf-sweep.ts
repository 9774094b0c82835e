/**
 * HessianFree sweep on the time-to-target problems (issue 16): steps to the target per seed and a
 * per-step trace (damping, CG iterations, line-search step, rho, evaluations, ms).
 *
 *   npx tsx scripts/hf-sweep.ts '<json array of {label, options}>' [problems] [seeds]
 *
 * Targets are tuned Adam's (scripts/bench/time-to-target.ts, quiet run in BENCHMARKS.md);
 * HF_TARGETS='{"mlp-mnist":0.08049}' overrides; HF_TRACE=1 prints every step;
 * HF_CAP (default 3) x tuned Adam's steps is the budget. Loss is evaluated every 5 steps on the
 * same fixed 1,000-example subset as the time-to-target section.
 */
import { initBackend } from '../src/backend.js';
import { harnessRegistry } from '../experiments/index.js';
import { runExperiment } from '../src/harness/run.js';
import type { HarnessRegistry } from '../src/harness/types.js';
import type { Problem } from '../src/harness/problem.js';
import { withEvalSubset } from './bench/time-to-target.js';
import type { HessianFree } from '../optimizers/hessian-free.js';

await initBackend(process.env.CURVATURE_BACKEND ?? 'wasm');
const configs = JSON.parse(process.argv[2] ?? '[{"label":"defaults","options":{}}]') as {
  label: string;
  optimizer?: string;
  options: Record<string, unknown>;
}[];
const problems = (process.argv[3] ?? 'mlp-mnist,autoencoder-mnist').split(',');
const seeds = (process.argv[4] ?? '0,1,2').split(',').map(Number);
const TARGETS: Record<string, number> = {
  'mlp-mnist': 0.08049,
  'autoencoder-mnist': 0.1062,
  ...(JSON.parse(process.env.HF_TARGETS ?? '{}') as Record<string, number>),
};
const ADAM_STEPS: Record<string, number> = { 'mlp-mnist': 165, 'autoencoder-mnist': 240 };
const CAP = Number(process.env.HF_CAP ?? 3);
const trace = process.env.HF_TRACE === '1';

let current: HessianFree | undefined;
const registry: HarnessRegistry = {
  createProblem: (name, options): Problem => withEvalSubset(harnessRegistry.createProblem(name, options), 1000, 1234),
  createOptimizer: (name, options, problem) => {
    const opt = harnessRegistry.createOptimizer(name, options, problem);
    current = name === 'hessian-free' ? (opt as unknown as HessianFree) : undefined;
    return opt;
  },
};

for (const problem of problems) {
  for (const c of configs) {
    const out: string[] = [];
    const stepsTo: (number | null)[] = [];
    const ms: number[] = [];
    for (const seed of seeds) {
      let last = performance.now();
      const r = await runExperiment(
        {
          problem,
          optimizer: c.optimizer ?? 'hessian-free',
          optimizerOptions: c.options,
          seed,
          budget: { steps: Math.ceil(CAP * ADAM_STEPS[problem]!) },
          target: TARGETS[problem]!,
          stopAtTarget: true,
          evalEvery: 5,
          gradNormEvery: 0,
        },
        {
          registry,
          onStep: (step, _max, loss) => {
            const now = performance.now();
            const s = current?.lastStep;
            if (trace && (step <= 20 || step % 10 === 0))
              process.stdout.write(
                `  ${problem} s${seed} ${step}: loss ${loss?.toFixed(4)} ` +
                  (s
                    ? `lam ${s.dampingUsed.toPrecision(3)}->${s.damping.toPrecision(3)} cg ${s.cgIterations} bt ${s.backtrackedIteration} ` +
                      `t ${s.stepSize.toFixed(3)} rho ${s.rho.toFixed(2)} hrho ${s.heldOutRho.toFixed(2)} ` +
                      `L${s.lossEvals} G${s.gradEvals} H${s.hvpEvals} `
                    : '') +
                  `${(now - last).toFixed(0)}ms\n`,
              );
            last = now;
          },
        },
      );
      const f = r.final;
      stepsTo.push(f.reachedTarget ? f.stepsToTarget : null);
      ms.push((1000 * f.seconds) / Math.max(1, f.steps));
      out.push(
        `s${seed}: ${f.reachedTarget ? f.stepsToTarget : `miss(${f.trainLoss?.toFixed(4)})`} ${((1000 * f.seconds) / f.steps).toFixed(1)}ms`,
      );
    }
    const hit = stepsTo.filter((x): x is number => x !== null).sort((a, b) => a - b);
    const med = hit.length ? hit[Math.floor((hit.length - 1) / 2)]! : null;
    const msMed = [...ms].sort((a, b) => a - b)[Math.floor(ms.length / 2)]!;
    console.log(
      `${problem} | ${c.label} | ${hit.length}/${seeds.length} | steps ${med ?? '-'} (${med ? (med / ADAM_STEPS[problem]!).toFixed(2) : '-'}x) | ${msMed.toFixed(1)} ms/step | ${out.join(', ')}`,
    );
  }
}
