/**
 * Bench section: time to target, AlgoPerf's protocol scaled down (issue 16).
 *
 * Per problem (mlp-mnist, autoencoder-mnist at their registry defaults):
 *   1. tune Adam's learning rate on ADAM_GRID: one run of ADAM_STEPS steps per value (seed 0);
 *      the lowest final training loss (full training set) is the TARGET;
 *   2. tuned Adam and every optimizer at its defaults (and the documented presets, K-FAC's
 *      FAST_SETTINGS and HessianFree's MINI_BATCH_SETTINGS) run SEEDS seeds from the same
 *      initialisation and batch order, stopping at the target; the training loss is evaluated
 *      every EVAL_EVERY steps (evaluation time is not counted: seconds are optimizer seconds, as
 *      the harness measures them);
 *   3. each run's budget is CAP x tuned Adam's median steps and CAP x its median seconds to the
 *      target, so a miss costs at most CAP x Adam's time; a miss is reported as '> CAP'.
 * Reported: median steps and seconds to target over the seeds that reached it, as ratios to tuned
 * Adam's medians in the same run, and how many seeds reached it. A plot (docs/bench/) shows the
 * seconds ratios.
 *
 * Env: TTT_STEPS (default 200), TTT_SEEDS (default 3), TTT_CAP (default 3), TTT_PROBLEMS
 * (comma-separated, default both) to make a quick check cheaper; TTT_ONLY (comma-separated
 * optimizer names, e.g. `kfac,shampoo`) keeps only those rows (Adam is always tuned and run: it
 * sets the target); TTT_EXTRA (a JSON array of `{ label, optimizer, options }`) adds rows, e.g.
 * `TTT_EXTRA='[{"label":"K-FAC T=10","optimizer":"kfac","options":{"inverseUpdateEvery":10}}]'`.
 *
 * The conv nets (cnn-mnist, cnn-shapes) run with TTT_PROBLEMS but are not in the default list:
 * evaluating the full training set of a conv net every EVAL_EVERY steps dominates the cost.
 * `TTT_STEPS=60 TTT_SEEDS=1 TTT_PROBLEMS=cnn-mnist` took 298 s (127 s CPU) on 2 shared cores;
 * the defaults (200 steps, 3 seeds) would take roughly ten times that.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { harnessRegistry } from '../../experiments/index.js';
import { HessianFree } from '../../optimizers/hessian-free.js';
import { KFAC } from '../../optimizers/kfac.js';
import { runExperiment } from '../../src/harness/run.js';
import type { RunResult, RunSpec } from '../../src/harness/types.js';
import { renderSvg } from '../../src/report/html.js';
import { median } from '../../src/harness/stats.js';

const ADAM_GRID = [1e-3, 3e-3, 1e-2, 3e-2];
const ADAM_STEPS = Number(process.env.TTT_STEPS ?? 200);
const SEEDS = Array.from({ length: Number(process.env.TTT_SEEDS ?? 3) }, (_, i) => i);
const CAP = Number(process.env.TTT_CAP ?? 3);
const EVAL_EVERY = 5;
const PROBLEMS = (process.env.TTT_PROBLEMS ?? 'mlp-mnist,autoencoder-mnist').split(',');

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
  { label: 'K-FAC FAST_SETTINGS', optimizer: 'kfac', options: { ...KFAC.FAST_SETTINGS } },
  { label: 'Shampoo defaults', optimizer: 'shampoo', options: {} },
  { label: 'Muon defaults', optimizer: 'muon', options: {} },
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
  reached: number;
  steps: number | null;
  seconds: number | null;
  msPerStep: number;
  note?: string;
}

async function runOne(spec: RunSpec): Promise<RunResult | { error: string }> {
  try {
    return await runExperiment(spec, { registry: harnessRegistry });
  } catch (e) {
    return { error: (e as Error).message.split('\n')[0]! };
  }
}

function summarizeRuns(problem: string, label: string, runs: (RunResult | { error: string })[]): Row {
  const ok = runs.filter((r): r is RunResult => !('error' in r));
  if (ok.length === 0)
    return {
      problem,
      label,
      reached: 0,
      steps: null,
      seconds: null,
      msPerStep: NaN,
      note: (runs[0] as { error: string }).error,
    };
  const hit = ok.filter((r) => r.final.reachedTarget);
  const msPerStep = median(ok.map((r) => (1000 * r.final.seconds) / Math.max(1, r.final.steps)));
  return {
    problem,
    label,
    reached: hit.length,
    steps: hit.length > 0 ? median(hit.map((r) => r.final.stepsToTarget!)) : null,
    seconds: hit.length > 0 ? median(hit.map((r) => r.final.secondsToTarget!)) : null,
    msPerStep,
  };
}

const fmt = (x: number | null, d = 2) => (x === null || !Number.isFinite(x) ? '—' : x.toFixed(d));

export async function run(): Promise<string> {
  const rows: Row[] = [];
  const targets: string[] = [];
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
      process.stderr.write(`time-to-target: ${problem} adam lr ${lr}: final train loss ${loss}\n`);
      if (loss !== null && Number.isFinite(loss) && loss < best.loss) best = { lr, loss };
    }
    const target = best.loss;
    // 2. Tuned Adam to the target (a little more budget: other seeds may end just above it).
    const adamRuns = [];
    for (const seed of SEEDS)
      adamRuns.push(
        await runOne(
          base('adam', { learningRate: best.lr }, seed, { steps: Math.ceil(1.5 * ADAM_STEPS) }, target, true),
        ),
      );
    const adam = summarizeRuns(problem, `Adam tuned (lr ${best.lr})`, adamRuns);
    rows.push(adam);
    targets.push(
      `${problem}: target ${target.toPrecision(4)} (tuned Adam, lr ${best.lr}, ${ADAM_STEPS} steps); tuned Adam reaches it in ${fmt(adam.steps, 0)} steps, ${fmt(adam.seconds)} s`,
    );
    const budget = { steps: Math.ceil(CAP * (adam.steps ?? ADAM_STEPS)), seconds: CAP * (adam.seconds ?? Infinity) };
    // 3. Every optimizer at its defaults (and presets), same seeds, capped budget.
    for (const c of selectedConfigs()) {
      const runs = [];
      for (const seed of SEEDS) runs.push(await runOne(base(c.optimizer, c.options, seed, budget, target, true)));
      const row = summarizeRuns(problem, c.label, runs);
      process.stderr.write(
        `time-to-target: ${problem} ${c.label}: ${row.reached}/${SEEDS.length} reached, steps ${fmt(row.steps, 0)}, seconds ${fmt(row.seconds)}\n`,
      );
      rows.push(row);
    }
  }

  const lines = [
    '## Time to target (AlgoPerf protocol, scaled down)',
    '',
    `Per problem, Adam's learning rate is tuned on {${ADAM_GRID.join(', ')}} (${ADAM_STEPS} steps, seed 0); its best final training loss is the target. ` +
      `Then every optimizer at its defaults runs ${SEEDS.length} seeds until it reaches the target (training loss on the whole training set, evaluated every ${EVAL_EVERY} steps; ` +
      `seconds are optimizer time), with a budget of ${CAP}x tuned Adam's median steps and seconds. Ratios are medians over the seeds that reached the target, ` +
      `divided by tuned Adam's medians in the same run; '> ${CAP}' is a miss within the budget. Source: scripts/bench/time-to-target.ts.`,
    '',
    ...targets.map((t) => `- ${t}`),
    '',
    '| problem | optimizer | seeds at target | steps vs tuned Adam | seconds vs tuned Adam | ms / step |',
    '|---|---|---:|---:|---:|---:|',
  ];
  const plot: { problem: string; optimizer: string; ratio: number; missed: boolean }[] = [];
  for (const r of rows) {
    const adam = rows.find((x) => x.problem === r.problem && x.label.startsWith('Adam tuned'))!;
    const stepsRatio = r.steps !== null && adam.steps ? r.steps / adam.steps : null;
    const secondsRatio = r.seconds !== null && adam.seconds ? r.seconds / adam.seconds : null;
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
  const here = dirname(fileURLToPath(import.meta.url));
  const dir = join(here, '..', '..', 'docs', 'bench');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'time-to-target.svg'), svg);
  lines.push('', '![seconds to target vs tuned Adam](docs/bench/time-to-target.svg)', '');
  return lines.join('\n');
}
