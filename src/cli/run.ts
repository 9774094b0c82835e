/** `curvature run`: one optimizer on one problem. */
import { Option, type Command } from 'commander';
import { join } from 'node:path';
import { assembleResults, planRuns, type ComparisonSpec, type ProblemConfig } from '../harness/compare.js';
import { runExperiment } from '../harness/run.js';
import { harnessRegistry } from '../../experiments/index.js';
import { formatCounts } from '../harness/cost.js';
import { fmt } from '../report/tables.js';
import { writeReport } from '../report/index.js';
import { progress, UsageError, type CliIO } from './io.js';
import { optimizerOptionsFromText, problemOptionsFromText } from './options.js';
import {
  addBudgetOptions,
  budgetFrom,
  collect,
  parseNonNegativeInt,
  parsePositiveNumber,
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

export interface RunOpts extends GlobalOpts, BudgetFlags {
  problem: string;
  optimizer: string;
  lr?: number;
  set?: string[];
  problemOption?: string[];
  seed: number;
  target?: number;
  json?: boolean;
  out?: string;
  progress: boolean;
}

/** The comparison of one run that `run` performs (pure). */
export function runSpec(opts: RunOpts): ComparisonSpec {
  const optimizerOptions = optimizerOptionsFromText(opts.optimizer, opts.set);
  if (opts.lr !== undefined) {
    if ('learningRate' in optimizerOptions)
      throw new UsageError('Give the learning rate once: --lr or --set learningRate=..., not both.');
    optimizerOptions.learningRate = opts.lr;
  }
  const problemConfig: ProblemConfig = {
    problem: opts.problem,
    options: problemOptionsFromText(opts.problem, opts.problemOption),
    budget: budgetFrom(opts) ?? { steps: 100 },
  };
  if (opts.target !== undefined) problemConfig.target = opts.target;
  return {
    problems: [problemConfig],
    optimizers: [opts.optimizer],
    optimizerOptions: { [opts.optimizer]: optimizerOptions },
    seeds: [opts.seed],
  };
}

export async function runCommand(io: CliIO, opts: RunOpts): Promise<number> {
  checkProblemName(opts.problem);
  checkOptimizerName(opts.optimizer);
  const spec = runSpec(opts);
  const out = opts.out !== undefined ? ensureWritableDir(opts.out) : undefined;
  await useBackend(opts);
  validateComparison(spec);
  const run = planRuns(spec)[0]!;
  const bar = progress(io, opts.progress && !opts.json, 'steps');
  bar.start(run.budget.steps ?? 0, `${opts.optimizer} on ${opts.problem}`);
  const result = await runExperiment(run, {
    registry: harnessRegistry,
    onStep: (s, max, loss) => bar.update(s, { info: `loss ${fmt(loss)}`, ...(max ? { total: max } : {}) }),
  });
  bar.stop();
  if (out) await writeReport(assembleResults(spec, [result], null), out, `${opts.optimizer} on ${opts.problem}`);
  if (opts.json) {
    io.out(`${JSON.stringify(result)}\n`);
  } else {
    const f = result.final;
    io.out(
      `${opts.optimizer} on ${opts.problem} (seed ${result.seed}, ${result.numParams} params): ` +
        `train loss ${fmt(f.initialLoss, 4)} -> ${fmt(f.trainLoss, 4)}` +
        (f.testAccuracy != null ? `, test accuracy ${(100 * f.testAccuracy).toFixed(1)}%` : '') +
        ` in ${f.steps} steps, ${fmt(f.seconds)} s (${f.stopReason})` +
        `, ${fmt(f.gradEquivalents, 4)} gradient-equivalents (f/g/Hv ${formatCounts(f)})` +
        (f.reachedTarget
          ? `; target ${fmt(f.target, 3)} after ${f.stepsToTarget} steps, ${fmt(f.secondsToTarget)} s, ` +
            `${fmt(f.gradEquivalentsToTarget, 4)} gradient-equivalents (f/g/Hv ${formatCounts(f.evalsToTarget)})`
          : '') +
        (out ? `\nwrote ${join(out, 'report.html')}` : '') +
        '\n',
    );
  }
  return 0;
}

export function registerRun(program: Command, io: CliIO, action: (f: () => Promise<number>) => Promise<void>): void {
  addBudgetOptions(
    program
      .command('run')
      .description('run one optimizer on one problem')
      .requiredOption('--problem <name>', 'problem (see list)')
      .requiredOption('--optimizer <name>', 'optimizer (see list)'),
  )
    .addOption(new Option('--lr <x>', 'learning rate (same as --set learningRate=x)').argParser(parsePositiveNumber))
    .option('--set <key=value>', 'optimizer option (repeatable)', collect)
    .option('--problem-option <key=value>', 'problem option (repeatable)', collect)
    .addOption(new Option('--seed <n>', 'seed of initialisation and batches').argParser(parseNonNegativeInt).default(0))
    .addOption(targetOption('target training loss (> 0)'))
    .option('--json', 'print the run as one JSON object (final.trainLoss, records, ...)')
    .option('--out <dir>', 'also write results.json, report.md, report.html here')
    .option('--no-progress', 'no progress bar')
    .action((opts: RunOpts, cmd: Command) =>
      action(() => runCommand(io, { ...cmd.optsWithGlobals<GlobalOpts>(), ...opts })),
    );
}
