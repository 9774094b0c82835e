/** `curvature compare`: optimizers x seeds on a problem, a suite or a config file; resumable, shardable. */
import { Option, type Command } from 'commander';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { optimizerRegistry } from '../../optimizers/index.js';
import { getSuite, harnessRegistry, suiteComparison } from '../../experiments/index.js';
import {
  compare,
  mergeResults,
  parseShard,
  type ComparisonResults,
  type ComparisonSpec,
  type ProblemConfig,
  type Shard,
} from '../harness/compare.js';
import { planResume } from '../harness/resume.js';
import { readResults, writeFileAtomic, writeResults } from '../report/results.js';
import { summaryText } from '../report/tables.js';
import { writeReport } from '../report/index.js';
import { loadConfig } from './config.js';
import { progress, toUsage, UsageError, type CliIO } from './io.js';
import { optimizerAssignments, problemOptionsFromText } from './options.js';
import {
  addBudgetOptions,
  budgetFrom,
  collect,
  parseList,
  parsePositiveInt,
  targetOption,
  type BudgetFlags,
} from './parse.js';
import { checkProblemName, ensureWritableDir, useBackend, validateComparison, type GlobalOpts } from './validate.js';

export interface CompareOpts extends GlobalOpts, BudgetFlags {
  problem?: string;
  suite?: string;
  config?: string;
  optimizers?: string[];
  seeds?: number;
  target?: number;
  set?: string[];
  problemOption?: string[];
  shard?: string;
  workers: number;
  out: string;
  fresh?: boolean;
  progress: boolean;
  title?: string;
}

/** The comparison the flags describe; contradicting flags are usage errors. */
export async function resolveComparison(opts: CompareOpts): Promise<ComparisonSpec> {
  const sources = [opts.problem, opts.suite, opts.config].filter((s) => s !== undefined);
  if (sources.length !== 1) throw new UsageError('Give exactly one of --problem, --suite or --config.');
  if (opts.problemOption !== undefined && opts.problem === undefined) {
    throw new UsageError(
      '--problem-option applies to --problem only (a suite or config file sets its own problem options).',
    );
  }
  let spec: ComparisonSpec;
  const budget = budgetFrom(opts);
  if (opts.config !== undefined) {
    spec = await loadConfig(opts.config);
  } else if (opts.suite !== undefined) {
    const suite = toUsage(() => getSuite(opts.suite!));
    spec = suiteComparison(suite, opts.optimizers ?? [...optimizerRegistry.keys()], opts.seeds);
  } else {
    checkProblemName(opts.problem!);
    const p: ProblemConfig = {
      problem: opts.problem!,
      options: problemOptionsFromText(opts.problem!, opts.problemOption),
      budget: budget ?? { steps: 200 },
    };
    spec = { problems: [p], optimizers: opts.optimizers ?? [...optimizerRegistry.keys()], seeds: [] };
    spec.seeds = Array.from({ length: opts.seeds ?? 3 }, (_, i) => i);
  }
  if (opts.optimizers) spec.optimizers = opts.optimizers;
  if (opts.seeds !== undefined) spec.seeds = Array.from({ length: opts.seeds }, (_, i) => i);
  if (budget && opts.problem === undefined) {
    spec.problems = spec.problems.map((p) => ({ ...p, budget, optimizerBudgets: undefined }));
  }
  if (opts.target !== undefined) spec.problems = spec.problems.map((p) => ({ ...p, target: opts.target }));
  // --set adam.beta1=0.8 (one optimizer) or --set learningRate=0.1 (every optimizer)
  for (const [o, values] of Object.entries(optimizerAssignments(opts.set, spec.optimizers))) {
    spec.optimizerOptions ??= {};
    spec.optimizerOptions[o] = { ...(spec.optimizerOptions[o] ?? {}), ...values };
  }
  return spec;
}

export async function compareCommand(io: CliIO, opts: CompareOpts): Promise<number> {
  if (opts.shard !== undefined && opts.workers > 1) {
    throw new UsageError(
      '--shard runs one shard in this process; --workers splits the whole comparison into shards: give one of them.',
    );
  }
  const spec = await resolveComparison(opts);
  const shard: Shard | null = opts.shard !== undefined ? toUsage(() => parseShard(opts.shard!)) : null;
  const out = ensureWritableDir(opts.out);
  await useBackend(opts);
  validateComparison(spec, io);
  const title = opts.title ?? `curvature compare${spec.name ? `: ${spec.name} suite` : ''}`;

  if (opts.workers > 1) return compareWithWorkers(io, opts, spec, out, title);

  const resultsPath = join(out, 'results.json');
  const existing: ComparisonResults | undefined =
    !opts.fresh && existsSync(resultsPath) ? toUsage(() => readResults(resultsPath)) : undefined;
  const plan = planResume(spec, shard, existing);
  if (plan.differentComparison) {
    // Run ids hash everything that determines a run, so matching runs are safe to reuse even
    // when the comparison changed (e.g. an optimizer or a seed was added).
    io.err(
      `curvature: note: ${resultsPath} is from a different comparison; reusing its ${plan.matching} matching run(s), replacing the rest\n`,
    );
  }
  const bar = progress(io, opts.progress, 'runs');
  let started = 0;
  const results = await compare(spec, {
    registry: harnessRegistry,
    existing: existing?.runs,
    shard,
    onRunStart: (r, i, total) => {
      if (i === 0) bar.start(total, 'compare');
      started = i;
      bar.update(i, { info: `${r.problemId} ${r.optimizer} seed ${r.seed}` });
    },
    onStep: (s, max) => bar.update(started, { info: `step ${s}${max ? `/${max}` : ''}` }),
    onRunDone: (_run, partial) => writeResults(resultsPath, partial),
  });
  bar.stop();
  await writeReport(results, out, title);
  io.out(`${summaryText(results)}\n\n`);
  io.out(
    `${results.runs.length} runs (${plan.reused > 0 ? `${plan.reused} reused, ` : ''}${plan.planned} planned${shard ? `, shard ${shard.index}/${shard.count}` : ''}); ` +
      `wrote ${join(out, 'results.json')}, report.md, report.html\n`,
  );
  return 0;
}

/** The CLI's entry file (src/cli.ts under tsx, dist/src/cli.js when built), for worker processes. */
function cliEntry(): string {
  return fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '../cli.ts' : '../cli.js', import.meta.url));
}

/** --workers K: K child processes, one shard each, then merge. */
async function compareWithWorkers(
  io: CliIO,
  opts: CompareOpts,
  spec: ComparisonSpec,
  out: string,
  title: string,
): Promise<number> {
  const specPath = join(out, 'spec.json');
  writeFileAtomic(specPath, `${JSON.stringify(spec, null, 1)}\n`);
  const k = opts.workers;
  io.err(`compare: ${k} workers, one shard each, in ${join(out, 'shards')}\n`);
  const codes = await Promise.all(
    Array.from({ length: k }, (_, i) => {
      const args = [
        ...process.execArgv,
        cliEntry(),
        'compare',
        '--config',
        specPath,
        '--shard',
        `${i + 1}/${k}`,
        '--out',
        join(out, 'shards', String(i + 1)),
        '--no-progress',
      ];
      if (opts.backend) args.push('--backend', opts.backend);
      if (opts.fresh) args.push('--fresh');
      return new Promise<number>((res) => {
        const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
        child.on('exit', (code) => res(code ?? 1));
        child.on('error', () => res(1));
      });
    }),
  );
  if (codes.some((c) => c !== 0)) throw new Error(`A worker failed (exit codes ${codes.join(', ')}); rerun to resume.`);
  const parts = Array.from({ length: k }, (_, i) => readResults(join(out, 'shards', String(i + 1), 'results.json')));
  const merged = mergeResults(parts);
  await writeReport(merged, out, title);
  io.out(
    `${summaryText(merged)}\n\n${merged.runs.length} runs; wrote ${join(out, 'results.json')}, report.md, report.html\n`,
  );
  return 0;
}

export function registerCompare(
  program: Command,
  io: CliIO,
  action: (f: () => Promise<number>) => Promise<void>,
): void {
  addBudgetOptions(
    program
      .command('compare')
      .description('optimizers x seeds on a problem, a suite or a config file; resumable and shardable')
      .option('--problem <name>', 'one problem')
      .option('--suite <name>', 'a suite: quick or full')
      .option('--config <file>', 'a JSON comparison spec (docs/cli.md)')
      .addOption(
        new Option('--optimizers <list>', 'comma-separated optimizers (default: all registered)').argParser(parseList),
      ),
  )
    .addOption(new Option('--seeds <n>', 'seeds 0..n-1').argParser(parsePositiveInt))
    .addOption(targetOption('target training loss for every problem (> 0)'))
    .option('--set <[optimizer.]key=value>', 'optimizer option for one or all optimizers (repeatable)', collect)
    .option('--problem-option <key=value>', 'problem option with --problem (repeatable)', collect)
    .option('--shard <i/n>', 'run only every n-th run starting at i (1-based)')
    .addOption(new Option('--workers <k>', 'run k shards in parallel processes').argParser(parsePositiveInt).default(1))
    .requiredOption('--out <dir>', 'output directory (results.json, report.md, report.html)')
    .option('--fresh', 'ignore results already in --out instead of resuming')
    .option('--title <text>', 'report title')
    .option('--no-progress', 'no progress bar')
    .action((opts: CompareOpts, cmd: Command) =>
      action(() => compareCommand(io, { ...cmd.optsWithGlobals<GlobalOpts>(), ...opts })),
    );
}
