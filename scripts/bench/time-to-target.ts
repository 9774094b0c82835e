/**
 * Bench section: time to target, AlgoPerf's protocol scaled down (issue 16).
 *
 * Per problem (mlp-mnist, autoencoder-mnist at their registry defaults):
 *   1. tune Adam's learning rate on ADAM_GRID: one run of ADAM_STEPS steps per value (seed 0);
 *      the lowest final training loss (on the evaluation subset below) is the TARGET;
 *   2. tuned Adam and every optimizer at its defaults (and the documented presets, K-FAC's
 *      STEP_EFFICIENT_SETTINGS and FAST_SETTINGS, HessianFree's MINI_BATCH_SETTINGS) run SEEDS seeds from the same
 *      initialisation and batch order, stopping at the target; the training loss is evaluated
 *      every EVAL_EVERY steps (evaluation time is not counted: seconds are optimizer seconds, as
 *      the harness measures them);
 *   3. each run's budget is CAP x tuned Adam's median steps and CAP x its median seconds to the
 *      target, so a miss costs at most CAP x Adam's time; a miss is reported as '> CAP'.
 * The training loss is always measured on one fixed evaluation subset of the training set:
 * EVAL_EXAMPLES examples drawn once by a seeded permutation (the same for every optimizer, seed and
 * the tuning runs, so the target and the runs use one yardstick). AlgoPerf does the same: each
 * workload evaluates its training loss on a fixed `num_eval_train_examples` subset (e.g. 10,000 of
 * CIFAR-10's 50,000), not on the whole training set. Test metrics and gradient-norm diagnostics are
 * not computed. Before (whole 8,000-example training set plus the 2,000 test examples every 5
 * steps, gradient norm on the same schedule) the evaluations took most of the section's ~14 min:
 * one full evaluation costs 20 (MLP) / 25 (autoencoder) Adam steps, so evaluating every 5 steps
 * added 400-500% to an Adam run; one evaluation of 1,000 training examples costs 1.0 / 1.9 Adam
 * steps (+20% / +40%), 2,000 examples 2.2 / 3.0 (ratios measured interleaved in one process).
 * A run's wall-clock is bounded by its budget (CAP x tuned Adam's steps and optimizer seconds, at
 * most one step over) plus one evaluation per EVAL_EVERY steps. Estimated section time on a quiet
 * machine (from BENCHMARKS.md's per-step times and the ratios above): ~185 s of optimizer time
 * (misses at the cap dominate: 5 rows x 3 seeds x 3 x Adam's 2.3 s on the autoencoder), ~45 s of
 * evaluation, ~10 s of set-up: about 4 min, against ~14 min before.
 * Reported: median steps and seconds to target over the seeds that reached it, as ratios to tuned
 * Adam's medians in the same run, and how many seeds reached it. A plot (docs/bench/) shows the
 * seconds ratios; docs/bench/time-to-target.json (or TTT_JSON=path) holds every run's figures.
 *
 * Env: TTT_STEPS (default 200), TTT_SEEDS (default 3), TTT_CAP (default 3; TTT_SECONDS_CAP overrides
 * its seconds part, e.g. 100 for a steps-to-target sweep on a loaded machine), TTT_PROBLEMS
 * (comma-separated, default both), TTT_EVAL_EXAMPLES (default 1000) to make a quick check
 * cheaper; TTT_ONLY (comma-separated optimizer names, e.g. `kfac,shampoo`) keeps only those rows
 * (Adam is always tuned and run: it sets the target); TTT_EXTRA (a JSON array of
 * `{ label, optimizer, options }`) adds rows, e.g.
 * `TTT_EXTRA='[{"label":"K-FAC T=10","optimizer":"kfac","options":{"inverseUpdatePeriod":10}}]'`;
 * TTT_JSON (a path) moves the JSON output. Any of these filters sends the plot and the JSON to
 * $TMPDIR/curvature-ttt/ (unless TTT_JSON is set), so a partial run never replaces docs/bench/.
 *
 * The conv nets (cnn-mnist, cnn-shapes) run with TTT_PROBLEMS but are not in the default list:
 * their steps are slow on wasm. `TTT_STEPS=60 TTT_SEEDS=1 TTT_PROBLEMS=cnn-mnist` took 298 s
 * (127 s CPU) on 2 shared cores when the whole training set was evaluated every 5 steps.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { harnessRegistry } from '../../experiments/index.js';
import { HessianFree } from '../../optimizers/hessian-free.js';
import { KFAC } from '../../optimizers/kfac.js';
import { runExperiment } from '../../src/harness/run.js';
import type { HarnessRegistry, RunResult, RunSpec } from '../../src/harness/types.js';
import type { Problem } from '../../src/harness/problem.js';
import { renderSvg } from '../../src/report/html.js';
import { median } from '../../src/harness/stats.js';
import { Rng } from '../../src/rng.js';

const ADAM_GRID = [1e-3, 3e-3, 1e-2, 3e-2];
/** Env settings that make a run partial or change its protocol (see the header). */
const FILTER_ENVS = [
  'TTT_STEPS',
  'TTT_SEEDS',
  'TTT_CAP',
  'TTT_SECONDS_CAP',
  'TTT_PROBLEMS',
  'TTT_EVAL_EXAMPLES',
  'TTT_ONLY',
  'TTT_EXTRA',
];
const ADAM_STEPS = Number(process.env.TTT_STEPS ?? 200);
const SEEDS = Array.from({ length: Number(process.env.TTT_SEEDS ?? 3) }, (_, i) => i);
const CAP = Number(process.env.TTT_CAP ?? 3);
/** The seconds part of the budget (default CAP); a large value keeps a loaded machine from cutting runs in a steps sweep. */
const SECONDS_CAP = Number(process.env.TTT_SECONDS_CAP ?? CAP);
const EVAL_EVERY = 5;
const EVAL_EXAMPLES = Number(process.env.TTT_EVAL_EXAMPLES ?? 1000);
/** Seeds the permutation that picks the evaluation subset (fixed: one yardstick for every run). */
const EVAL_SUBSET_SEED = 1234;
const PROBLEMS = (process.env.TTT_PROBLEMS ?? 'mlp-mnist,autoencoder-mnist').split(',');

/**
 * The project's registry, except that a data problem's `evaluate()` measures the training loss
 * on a fixed subset of EVAL_EXAMPLES training examples (AlgoPerf's `num_eval_train_examples`) and
 * nothing else: no test metrics, no accuracy.
 */
/**
 * `problem` evaluated by its training loss on a fixed subset of `examples` training examples
 * (drawn with `seed`; AlgoPerf's num_eval_train_examples), the subset freed with the problem.
 */
export function withEvalSubset(problem: Problem, examples = EVAL_EXAMPLES, seed = EVAL_SUBSET_SEED): Problem {
  const data = problem.data;
  if (!data) return problem;
  const n = Math.min(examples, data.numTrain);
  const indices = new Rng(seed).permutation(data.numTrain).slice(0, n).sort();
  const evalBatch = data.batch(indices);
  const dispose = problem.dispose.bind(problem);
  problem.evaluate = () => ({ trainLoss: tf.tidy(() => problem.loss(evalBatch).dataSync()[0]!) });
  problem.dispose = () => {
    tf.dispose([...new Set([evalBatch.x, evalBatch.y])]);
    dispose();
  };
  return problem;
}

const registry: HarnessRegistry = {
  createProblem: (name, options): Problem => withEvalSubset(harnessRegistry.createProblem(name, options)),
  createOptimizer: (name, options, problem) => harnessRegistry.createOptimizer(name, options, problem),
};

interface Config {
  label: string;
  optimizer: string;
  options: Record<string, unknown>;
}

const CONFIGS: Config[] = [
  { label: 'SGD defaults', optimizer: 'sgd', options: {} },
  { label: 'RMSProp defaults', optimizer: 'rmsprop', options: {} },
  { label: 'Adam defaults', optimizer: 'adam', options: {} },
  { label: 'HessianFree defaults', optimizer: 'hessian-free', options: {} },
  {
    label: 'HessianFree MINI_BATCH_SETTINGS',
    optimizer: 'hessian-free',
    options: { ...HessianFree.MINI_BATCH_SETTINGS },
  },
  { label: 'K-FAC defaults', optimizer: 'kfac', options: {} },
  {
    label: 'K-FAC STEP_EFFICIENT_SETTINGS (the defaults before issue 16)',
    optimizer: 'kfac',
    options: { ...KFAC.STEP_EFFICIENT_SETTINGS },
  },
  { label: 'K-FAC FAST_SETTINGS', optimizer: 'kfac', options: { ...KFAC.FAST_SETTINGS } },
  { label: 'Shampoo defaults', optimizer: 'shampoo', options: {} },
  { label: 'Shampoo, roots in a worker (rootStaleness 10)', optimizer: 'shampoo', options: { rootStaleness: 10 } },
  { label: 'Muon defaults', optimizer: 'muon', options: {} },
  { label: 'SOAP defaults', optimizer: 'soap', options: {} },
  { label: 'AdaHessian defaults', optimizer: 'adahessian', options: {} },
  { label: 'Sophia defaults', optimizer: 'sophia', options: {} },
];

function selectedConfigs(): Config[] {
  const only = process.env.TTT_ONLY?.split(',').map((s) => s.trim());
  const base = only ? CONFIGS.filter((c) => only.includes(c.optimizer)) : CONFIGS;
  const extra = process.env.TTT_EXTRA ? (JSON.parse(process.env.TTT_EXTRA) as Config[]) : [];
  return [...base, ...extra];
}

interface Row {
  problem: string;
  label: string;
  optimizer: string;
  options: Record<string, unknown>;
  reached: number;
  steps: number | null;
  seconds: number | null;
  msPerStep: number;
  note?: string;
  runs: RunSummary[];
}

/** One run, for the JSON output. */
interface RunSummary {
  seed: number;
  steps?: number;
  seconds?: number;
  /** Wall-clock seconds of the whole run: problem set-up, steps and evaluations. */
  wallSeconds: number;
  reachedTarget?: boolean;
  stepsToTarget?: number | null;
  secondsToTarget?: number | null;
  finalLoss?: number | null;
  stopReason?: string;
  error?: string;
}

type Outcome = (RunResult | { error: string; seed: number }) & { wallSeconds: number };

async function runOne(spec: RunSpec): Promise<Outcome> {
  const t0 = performance.now();
  const wall = () => (performance.now() - t0) / 1000;
  try {
    const r = await runExperiment(spec, { registry });
    return Object.assign(r, { wallSeconds: wall() });
  } catch (e) {
    return { error: (e as Error).message.split('\n')[0]!, seed: spec.seed ?? 0, wallSeconds: wall() };
  }
}

function runSummary(r: Outcome): RunSummary {
  if ('error' in r) return { seed: r.seed, wallSeconds: r.wallSeconds, error: r.error };
  return {
    seed: r.seed,
    steps: r.final.steps,
    seconds: r.final.seconds,
    wallSeconds: r.wallSeconds,
    reachedTarget: r.final.reachedTarget,
    stepsToTarget: r.final.stepsToTarget,
    secondsToTarget: r.final.secondsToTarget,
    finalLoss: r.final.trainLoss,
    stopReason: r.final.stopReason,
  };
}

function summarizeRuns(problem: string, c: Config, runs: Outcome[]): Row {
  const label = c.label;
  const common = { problem, label, optimizer: c.optimizer, options: c.options, runs: runs.map(runSummary) };
  const ok = runs.filter((r): r is RunResult & { wallSeconds: number } => !('error' in r));
  if (ok.length === 0)
    return {
      ...common,
      reached: 0,
      steps: null,
      seconds: null,
      msPerStep: NaN,
      note: (runs[0] as { error: string }).error,
    };
  const hit = ok.filter((r) => r.final.reachedTarget);
  const msPerStep = median(ok.map((r) => (1000 * r.final.seconds) / Math.max(1, r.final.steps)));
  return {
    ...common,
    reached: hit.length,
    steps: hit.length > 0 ? median(hit.map((r) => r.final.stepsToTarget!)) : null,
    seconds: hit.length > 0 ? median(hit.map((r) => r.final.secondsToTarget!)) : null,
    msPerStep,
  };
}

const fmt = (x: number | null, d = 2) => (x === null || !Number.isFinite(x) ? '—' : x.toFixed(d));

export async function run(): Promise<string> {
  const started = performance.now();
  const rows: Row[] = [];
  const targets: string[] = [];
  const tuning: {
    problem: string;
    lr: number;
    finalLoss: number | null;
    seconds: number | null;
    wallSeconds: number;
  }[] = [];
  const targetInfo: { problem: string; target: number; adamLearningRate: number }[] = [];
  for (const problem of PROBLEMS) {
    const base = (
      optimizer: string,
      options: Record<string, unknown>,
      seed: number,
      budget: RunSpec['budget'],
      target: number | null,
      stopAtTarget: boolean,
    ): RunSpec => ({
      problem,
      problemOptions: {},
      optimizer,
      optimizerOptions: options,
      seed,
      budget,
      target,
      stopAtTarget,
      evalEvery: EVAL_EVERY,
      // The gradient-norm diagnostic is not needed here (and not counted in seconds either).
      gradNormEvery: 0,
    });
    // 1. Tune Adam's learning rate; the best final training loss is the target.
    let best = { lr: NaN, loss: Infinity };
    for (const lr of ADAM_GRID) {
      // Only the final training loss matters here: evaluate once, at the end.
      const r = await runOne({
        ...base('adam', { learningRate: lr }, 0, { steps: ADAM_STEPS }, null, false),
        evalEvery: ADAM_STEPS,
      });
      const loss = 'error' in r ? null : r.final.trainLoss;
      tuning.push({
        problem,
        lr,
        finalLoss: loss,
        seconds: 'error' in r ? null : r.final.seconds,
        wallSeconds: r.wallSeconds,
      });
      process.stderr.write(
        `time-to-target: ${problem} adam lr ${lr}: final train loss ${loss} (${r.wallSeconds.toFixed(1)} s wall)\n`,
      );
      if (loss !== null && Number.isFinite(loss) && loss < best.loss) best = { lr, loss };
    }
    const target = best.loss;
    targetInfo.push({ problem, target, adamLearningRate: best.lr });
    // 2. Tuned Adam to the target (a little more budget: other seeds may end just above it).
    const adamRuns = [];
    for (const seed of SEEDS)
      adamRuns.push(
        await runOne(
          base('adam', { learningRate: best.lr }, seed, { steps: Math.ceil(1.5 * ADAM_STEPS) }, target, true),
        ),
      );
    const adamConfig = { label: `Adam tuned (lr ${best.lr})`, optimizer: 'adam', options: { learningRate: best.lr } };
    const adam = summarizeRuns(problem, adamConfig, adamRuns);
    rows.push(adam);
    targets.push(
      `${problem}: target ${target.toPrecision(4)} (tuned Adam, lr ${best.lr}, ${ADAM_STEPS} steps); tuned Adam reaches it in ${fmt(adam.steps, 0)} steps, ${fmt(adam.seconds)} s`,
    );
    const budget = {
      steps: Math.ceil(CAP * (adam.steps ?? ADAM_STEPS)),
      seconds: SECONDS_CAP * (adam.seconds ?? Infinity),
    };
    // 3. Every optimizer at its defaults (and presets), same seeds, capped budget.
    for (const c of selectedConfigs()) {
      const runs = [];
      for (const seed of SEEDS) runs.push(await runOne(base(c.optimizer, c.options, seed, budget, target, true)));
      const row = summarizeRuns(problem, c, runs);
      const wall = runs.reduce((a, r) => a + r.wallSeconds, 0);
      process.stderr.write(
        `time-to-target: ${problem} ${c.label}: ${row.reached}/${SEEDS.length} reached, steps ${fmt(row.steps, 0)}, seconds ${fmt(row.seconds)} (${wall.toFixed(1)} s wall)\n`,
      );
      rows.push(row);
    }
  }

  const lines = [
    '## Time to target (AlgoPerf protocol, scaled down)',
    '',
    `Per problem, Adam's learning rate is tuned on {${ADAM_GRID.join(', ')}} (${ADAM_STEPS} steps, seed 0); its best final training loss is the target. ` +
      `Then every optimizer at its defaults runs ${SEEDS.length} seeds until it reaches the target (training loss on a fixed subset of ${EVAL_EXAMPLES} training examples, as AlgoPerf's \`num_eval_train_examples\`, evaluated every ${EVAL_EVERY} steps; ` +
      `seconds are optimizer time), with a budget of ${CAP}x tuned Adam's median steps and seconds. Ratios are medians over the seeds that reached the target, ` +
      `divided by tuned Adam's medians in the same run; '> ${CAP}' is a miss within the budget. Source: scripts/bench/time-to-target.ts.`,
    '',
    ...targets.map((t) => `- ${t}`),
    '',
    '| problem | optimizer | seeds at target | steps vs tuned Adam | seconds vs tuned Adam | ms / step |',
    '|---|---|---:|---:|---:|---:|',
  ];
  const ratioRows: { problem: string; label: string; stepsRatio: number | null; secondsRatio: number | null }[] = [];
  const plot: { problem: string; optimizer: string; ratio: number; missed: boolean }[] = [];
  for (const r of rows) {
    const adam = rows.find((x) => x.problem === r.problem && x.label.startsWith('Adam tuned'))!;
    const stepsRatio = r.steps !== null && adam.steps ? r.steps / adam.steps : null;
    const secondsRatio = r.seconds !== null && adam.seconds ? r.seconds / adam.seconds : null;
    ratioRows.push({ problem: r.problem, label: r.label, stepsRatio, secondsRatio });
    const miss = r.reached === 0 ? (r.note ? `error: ${r.note}` : `> ${CAP}`) : null;
    lines.push(
      `| ${r.problem} | ${r.label} | ${r.reached}/${SEEDS.length} | ${miss ?? fmt(stepsRatio)} | ${miss ?? fmt(secondsRatio)} | ${fmt(r.msPerStep, 1)} |`,
    );
    if (!r.label.startsWith('Adam tuned'))
      plot.push({ problem: r.problem, optimizer: r.label, ratio: secondsRatio ?? CAP, missed: secondsRatio === null });
  }
  const svg = await renderSvg({
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'Seconds to target, ratio to tuned Adam (log scale; at the cap = missed)',
    data: { values: plot },
    facet: { row: { field: 'problem', type: 'nominal', title: null } },
    spec: {
      width: 420,
      height: 150,
      layer: [
        {
          mark: { type: 'bar' },
          encoding: {
            y: { field: 'optimizer', type: 'nominal', sort: selectedConfigs().map((c) => c.label), title: null },
            x: {
              field: 'ratio',
              type: 'quantitative',
              scale: { type: 'log', domain: [0.1, CAP], nice: false },
              title: 'seconds / tuned Adam seconds',
            },
            x2: { datum: 1 },
            color: {
              field: 'missed',
              type: 'nominal',
              scale: { domain: [false, true], range: ['#4c78a8', '#bbbbbb'] },
              legend: { title: 'missed' },
            },
          },
        },
        { mark: { type: 'rule', color: 'black', strokeDash: [4, 3] }, encoding: { x: { datum: 1 } } },
      ],
    },
  } as never);
  // A filtered run (any TTT_* protocol or row filter) must not overwrite the committed figures of
  // the full run: its plot and JSON go to the temporary directory unless TTT_JSON says where.
  const filtered = FILTER_ENVS.some((name) => process.env[name] !== undefined);
  const here = dirname(fileURLToPath(import.meta.url));
  const dir = filtered ? join(tmpdir(), 'curvature-ttt') : join(here, '..', '..', 'docs', 'bench');
  mkdirSync(dir, { recursive: true });
  if (filtered) process.stderr.write(`time-to-target: filtered run, plot and JSON in ${dir}\n`);
  writeFileSync(join(dir, 'time-to-target.svg'), svg);
  const json = {
    protocol: {
      adamGrid: ADAM_GRID,
      adamSteps: ADAM_STEPS,
      seeds: SEEDS,
      cap: CAP,
      evalEvery: EVAL_EVERY,
      evalExamples: EVAL_EXAMPLES,
      evalSubsetSeed: EVAL_SUBSET_SEED,
      backend: tf.getBackend(),
    },
    wallSeconds: (performance.now() - started) / 1000,
    targets: targetInfo,
    tuning,
    rows: rows.map((r, i) => ({
      ...r,
      ...ratioRows[i]!,
      msPerStep: Number.isFinite(r.msPerStep) ? r.msPerStep : null,
    })),
  };
  const jsonPath = process.env.TTT_JSON ?? join(dir, 'time-to-target.json');
  mkdirSync(dirname(jsonPath), { recursive: true });
  writeFileSync(jsonPath, JSON.stringify(json, null, 1) + '\n');
  lines.push('', '![seconds to target vs tuned Adam](docs/bench/time-to-target.svg)', '');
  return lines.join('\n');
}
