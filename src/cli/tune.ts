/** `curvature tune`: DeepOBS-style log-spaced grid over one option, best final training loss, reruns with seeds. */
import { Option, type Command } from 'commander';
import { join } from 'node:path';
import { harnessRegistry } from '../../experiments/index.js';
import { assembleResults, tune, type ComparisonSpec } from '../harness/compare.js';
import { writeFileAtomic } from '../report/results.js';
import { fmt, textTable } from '../report/tables.js';
import { writeReport } from '../report/index.js';
import { progress, UsageError, type CliIO } from './io.js';
import { optimizerOptionsFromText, problemOptionsFromText } from './options.js';
import {
  addBudgetOptions,
  budgetFrom,
  collect,
  parseGrid,
  parseList,
  parsePositiveInt,
  targetOption,
  type BudgetFlags,
} from './parse.js';
import {
  checkOptimizerName,
  checkProblemName,
  ensureWritableDir,
  useBackend,
  validateComparison,
  type GlobalOpts,
} from './validate.js';

export interface TuneOpts extends GlobalOpts, BudgetFlags {
  problem: string;
  optimizer: string;
  param: string;
  grid?: string;
  values?: string[];
  seeds: number;
  set?: string[];
  problemOption?: string[];
  target?: number;
  json?: boolean;
  out?: string;
  progress: boolean;
}

export function tuneGrid(opts: Pick<TuneOpts, 'grid' | 'values'>): number[] {
  if (opts.values === undefined) return parseGrid(opts.grid ?? '1e-4:1:9');
  return opts.values.map((v) => {
    const n = Number(v);
    if (!(n > 0)) throw new UsageError(`Invalid --values entry '${v}': expected a positive number.`);
    return n;
  });
}

export async function tuneCommand(io: CliIO, opts: TuneOpts): Promise<number> {
  checkProblemName(opts.problem);
  checkOptimizerName(opts.optimizer);
  const grid = tuneGrid(opts);
  const optimizerOptions = optimizerOptionsFromText(opts.optimizer, opts.set);
  if (opts.param in optimizerOptions)
    throw new UsageError(
      `--set ${opts.param}=... fixes the option that --param ${opts.param} tunes: give one of them.`,
    );
  const out = opts.out !== undefined ? ensureWritableDir(opts.out) : undefined;
  const problemOptions = problemOptionsFromText(opts.problem, opts.problemOption);
  const budget = budgetFrom(opts) ?? { steps: 200 };
  // Every run here uses the whole budget: the measure is the final training loss.
  const problem = {
    problem: opts.problem,
    options: problemOptions,
    budget,
    stopAtTarget: false,
    ...(opts.target !== undefined ? { target: opts.target } : {}),
  };
  const spec: ComparisonSpec = {
    problems: [problem],
    optimizers: [opts.optimizer],
    optimizerOptions: { [opts.optimizer]: { ...optimizerOptions, [opts.param]: grid[0] } },
    seeds: [0],
  };
  await useBackend(opts);
  validateComparison(spec);
  const bar = progress(io, opts.progress && !opts.json, 'values');
  bar.start(grid.length, `tune ${opts.param}`);
  let done = 0;
  const seeds = Array.from({ length: opts.seeds }, (_, i) => i);
  const result = await tune(
    {
      problem: opts.problem,
      problemOptions,
      optimizer: opts.optimizer,
      optimizerOptions,
      budget,
      target: opts.target,
      param: opts.param,
      grid,
      seeds,
    },
    { registry: harnessRegistry, onTrial: () => bar.update(++done) },
  );
  bar.stop();
  if (out) {
    writeFileAtomic(
      join(out, 'tune.json'),
      `${JSON.stringify({ param: result.param, trials: result.trials, best: result.best }, null, 1)}\n`,
    );
    if (result.best !== null) {
      const bestSpec: ComparisonSpec = {
        ...spec,
        optimizerOptions: { [opts.optimizer]: { ...optimizerOptions, [opts.param]: result.best } },
        seeds,
      };
      const results = assembleResults(bestSpec, result.runs, null);
      if (results.pending > 0) throw new Error(`internal: ${results.pending} rerun(s) missing from the tuning report`);
      await writeReport(results, out, `tuned ${opts.optimizer} on ${opts.problem}`);
    }
  }
  if (opts.json) {
    io.out(
      `${JSON.stringify({ param: result.param, trials: result.trials, best: result.best, final: result.runs.map((r) => r.final) })}\n`,
    );
    return 0;
  }
  const rows = result.trials.map((t) => [
    fmt(t.value, 3),
    t.diverged ? 'diverged' : fmt(t.finalTrainLoss, 4),
    t.value === result.best ? '<- best' : '',
  ]);
  io.out(`${textTable([opts.param, `final train loss (${describeBudget(budget)})`, ''], rows)}\n`);
  if (result.best === null) {
    io.out('every value diverged\n');
  } else {
    const losses = result.runs.map((r) => r.final.trainLoss ?? NaN);
    io.out(
      `best ${opts.param} = ${result.best}; rerun with ${losses.length} seed(s), final train loss after the whole budget: ${losses.map((l) => fmt(l, 4)).join(', ')}\n`,
    );
  }
  return 0;
}

function describeBudget(b: { steps?: number; epochs?: number; seconds?: number }): string {
  const parts = [
    b.steps !== undefined ? `${b.steps} steps` : '',
    b.epochs !== undefined ? `${b.epochs} epochs` : '',
    b.seconds !== undefined ? `${b.seconds} s` : '',
  ];
  return parts.filter((p) => p !== '').join(', ');
}

export function registerTune(program: Command, io: CliIO, action: (f: () => Promise<number>) => Promise<void>): void {
  addBudgetOptions(
    program
      .command('tune')
      .description('DeepOBS-style tuning: log-spaced grid, best final training loss, rerun with seeds')
      .requiredOption('--problem <name>', 'problem')
      .requiredOption('--optimizer <name>', 'optimizer'),
  )
    .option('--param <name>', 'tuned option', 'learningRate')
    .addOption(new Option('--grid <min:max:num>', 'log-spaced grid (default 1e-4:1:9)').conflicts('values'))
    .addOption(new Option('--values <list>', 'explicit comma-separated values').argParser(parseList))
    .addOption(
      new Option('--seeds <n>', 'reruns of the best value with seeds 0..n-1').argParser(parsePositiveInt).default(3),
    )
    .option('--set <key=value>', 'fixed optimizer option (repeatable)', collect)
    .option('--problem-option <key=value>', 'problem option (repeatable)', collect)
    .addOption(targetOption('target training loss (> 0), for steps-to-target in the report'))
    .option('--json', 'print JSON')
    .option('--out <dir>', 'write tune.json and a report of the reruns')
    .option('--no-progress', 'no progress bar')
    .action((opts: TuneOpts, cmd: Command) =>
      action(() => tuneCommand(io, { ...cmd.optsWithGlobals<GlobalOpts>(), ...opts })),
    );
}
