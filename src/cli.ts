#!/usr/bin/env node
/**
 * `curvature`: the experiment runner (docs/cli.md).
 *
 *   curvature list                                   optimizers, problems, suites
 *   curvature run --problem P --optimizer O ...      one run
 *   curvature compare --suite quick --out DIR        optimizers x seeds; resumable, shardable
 *   curvature tune --problem P --optimizer O ...     log-spaced learning-rate grid
 *   curvature report DIR... --out DIR                merge shards, (re)write the report
 *   curvature check --problem P                      gradient and HVP check
 *   curvature spectrum --problem P                   Hessian / Gauss-Newton spectrum
 *   curvature influence --problem P                  influence of training examples (with solve status)
 *
 * Errors in the input (unknown names, bad numbers, invalid config, unwritable --out) print one
 * line on stderr and exit with code 2; `main` never lets a stack trace reach the user unless
 * CURVATURE_DEBUG is set. `main(argv, io)` is importable so tests run the CLI in-process.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import cliProgress from 'cli-progress';
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { initBackend } from './backend.js';
import { getOptimizerEntry, optimizerRegistry } from '../optimizers/index.js';
import { getSuite, problems, suiteComparison, suites, formatZodIssues } from '../experiments/index.js';
import {
  assembleResults,
  compare,
  logGrid,
  mergeResults,
  parseShard,
  planRuns,
  shardRuns,
  tune,
  type ComparisonResults,
  type ComparisonSpec,
  type ProblemConfig,
  type Shard,
} from './harness/compare.js';
import { runExperiment, runId, shortHash } from './harness/run.js';
import { checkProblem } from './harness/check.js';
import { formatCounts } from './harness/cost.js';
import type { Budget } from './harness/types.js';
import { readResults, writeFileAtomic, writeResults } from './report/results.js';
import { summaryText, fmt, textTable } from './report/tables.js';
import { writeReport } from './report/index.js';
import { runSpectrumCommand } from './curvature/spectrum-report.js';
import { runInfluenceCommand, solveLine } from './curvature/influence-report.js';

export interface CliIO {
  out(text: string): void;
  err(text: string): void;
  /** Progress bars only on a TTY. */
  isTTY: boolean;
}

/** Bad input: one line on stderr, exit code 2. */
export class UsageError extends Error {}

export const processIO: CliIO = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  isTTY: Boolean(process.stderr.isTTY),
};

// ---- argument parsers (commander reports their errors with the option name) -----------------

function parseNumber(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('expected a number.');
  return n;
}
function parsePositiveNumber(v: string): number {
  const n = parseNumber(v);
  if (!(n > 0)) throw new InvalidArgumentError('expected a positive number.');
  return n;
}
function parseNonNegativeNumber(v: string): number {
  const n = parseNumber(v);
  if (!(n >= 0)) throw new InvalidArgumentError('expected a number >= 0.');
  return n;
}
function parsePositiveInt(v: string): number {
  const n = Number(v);
  if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError('expected a positive integer.');
  }
  return n;
}
function parseNonNegativeInt(v: string): number {
  const n = Number(v);
  if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('expected an integer >= 0.');
  return n;
}
function parseList(v: string): string[] {
  const items = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (items.length === 0) throw new InvalidArgumentError('expected a comma-separated list.');
  return items;
}
function collect(v: string, prev: string[] = []): string[] {
  if (!v.includes('=')) throw new InvalidArgumentError('expected key=value.');
  return [...prev, v];
}

/** key=value pairs; values are parsed as JSON when they are JSON (numbers, booleans, arrays). */
export function parseAssignments(pairs: string[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const p of pairs ?? []) {
    const i = p.indexOf('=');
    const key = p.slice(0, i).trim();
    const raw = p.slice(i + 1).trim();
    if (key === '') throw new UsageError(`Invalid assignment '${p}': expected key=value.`);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      value = raw;
    }
    out[key] = value;
  }
  return out;
}

// ---- validation helpers ----------------------------------------------------------------------

function checkProblemName(name: string): void {
  if (!problems.has(name)) {
    throw new UsageError(`Unknown problem '${name}': expected one of ${problems.names().join(', ')}.`);
  }
}
function checkOptimizerName(name: string): void {
  if (!optimizerRegistry.has(name)) {
    throw new UsageError(`Unknown optimizer '${name}': expected one of ${[...optimizerRegistry.keys()].join(', ')}.`);
  }
}

/**
 * Build every problem configuration and optimizer once, so bad options fail before any work.
 * An optimizer that refuses only some problems (e.g. Newton's size guard on MNIST) is noted on
 * stderr and its runs there are recorded as failed; one that fails everywhere is bad input.
 */
function validateComparison(spec: ComparisonSpec, io?: CliIO): void {
  for (const o of spec.optimizers) checkOptimizerName(o);
  for (const p of spec.problems) checkProblemName(p.problem);
  const seen = new Set<string>();
  const failures = new Map<string, string[]>();
  const tried = new Map<string, number>();
  for (const run of planRuns(spec)) {
    const key = `${run.problemId}\u0000${run.optimizer}`;
    if (seen.has(key)) continue;
    seen.add(key);
    let problem;
    try {
      problem = problems.get(run.problem, run.problemOptions);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    tried.set(run.optimizer, (tried.get(run.optimizer) ?? 0) + 1);
    try {
      getOptimizerEntry(run.optimizer).create(run.optimizerOptions ?? {}, { problem }).dispose();
    } catch (e) {
      const msg = `Optimizer '${run.optimizer}' on ${run.problemId}: ${(e as Error).message}`;
      failures.set(run.optimizer, [...(failures.get(run.optimizer) ?? []), msg]);
    } finally {
      problem.dispose();
    }
  }
  for (const [o, msgs] of failures) {
    if (msgs.length === tried.get(o) || !io) throw new UsageError(msgs[0]);
    for (const m of msgs) io.err(`curvature: note: ${m} (recorded as a failed run)\n`);
  }
}

/** Create --out (recursively) and make sure we can write into it. */
function ensureWritableDir(dir: string): string {
  const abs = resolve(dir);
  try {
    mkdirSync(abs, { recursive: true });
    if (!statSync(abs).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    accessSync(abs, constants.W_OK);
    const probe = join(abs, `.write-test-${process.pid}`);
    writeFileAtomic(probe, '');
    rmSync(probe, { force: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new UsageError(`Cannot write to --out '${dir}': ${code}.`);
  }
  return abs;
}

function budgetFrom(opts: { steps?: number; epochs?: number; timeBudget?: number }): Budget | undefined {
  const b: Budget = {};
  if (opts.steps !== undefined) b.steps = opts.steps;
  if (opts.epochs !== undefined) b.epochs = opts.epochs;
  if (opts.timeBudget !== undefined) b.seconds = opts.timeBudget;
  return Object.keys(b).length > 0 ? b : undefined;
}

// ---- config files ---------------------------------------------------------------------------

const budgetSchema = z
  .object({
    steps: z.number().int().positive().optional(),
    epochs: z.number().positive().optional(),
    seconds: z.number().positive().optional(),
  })
  .strict()
  .refine((b) => b.steps !== undefined || b.epochs !== undefined || b.seconds !== undefined, {
    message: 'give at least one of steps, epochs, seconds',
  });
const optionsRecord = z.record(z.string(), z.unknown());
const problemConfigSchema = z
  .object({
    id: z.string().min(1).optional(),
    problem: z.string().min(1),
    options: optionsRecord.optional(),
    budget: budgetSchema,
    target: z.number().nullable().optional(),
    evalEvery: z.number().int().positive().optional(),
    recordEvery: z.number().int().positive().optional(),
    gradNormEvery: z.number().int().min(0).optional(),
    hyperparameters: z.record(z.string(), optionsRecord).optional(),
    optimizerBudgets: z.record(z.string(), budgetSchema).optional(),
    exclude: z.record(z.string(), z.string()).optional(),
  })
  .strict();
export const configSchema = z
  .object({
    name: z.string().optional(),
    problems: z.array(problemConfigSchema).min(1),
    optimizers: z.array(z.string().min(1)).min(1),
    optimizerOptions: z.record(z.string(), optionsRecord).optional(),
    seeds: z.union([z.number().int().positive(), z.array(z.number().int().min(0)).min(1)]),
  })
  .strict();

export async function loadConfig(path: string): Promise<ComparisonSpec> {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(`Config '${path}': ${code ? `cannot read (${code})` : `not valid JSON (${(e as Error).message})`}.`);
  }
  const r = configSchema.safeParse(json);
  if (!r.success) throw new UsageError(`Config '${path}': ${formatZodIssues(r.error, 'field')}.`);
  const c = r.data;
  const spec: ComparisonSpec = {
    problems: c.problems as ProblemConfig[],
    optimizers: c.optimizers,
    seeds: typeof c.seeds === 'number' ? Array.from({ length: c.seeds }, (_, i) => i) : c.seeds,
  };
  if (c.name !== undefined) spec.name = c.name;
  if (c.optimizerOptions !== undefined) spec.optimizerOptions = c.optimizerOptions;
  return spec;
}

// ---- progress --------------------------------------------------------------------------------

interface Progress {
  start(total: number, label: string): void;
  update(value: number, payload?: Record<string, unknown>): void;
  stop(): void;
}

function progress(io: CliIO, enabled: boolean, unit: string): Progress {
  if (!enabled || !io.isTTY) return { start() {}, update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    {
      format: `{label} [{bar}] {value}/{total} ${unit} {info}`,
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true,
      fps: 8,
    },
    cliProgress.Presets.shades_classic,
  );
  return {
    start: (total, label) => bar.start(total, 0, { label, info: '' }),
    update: (v, payload) => bar.update(v, payload),
    stop: () => bar.stop(),
  };
}

// ---- commands --------------------------------------------------------------------------------

interface GlobalOpts {
  backend?: string;
}

async function useBackend(opts: GlobalOpts): Promise<string> {
  try {
    return await initBackend(opts.backend);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

function addBudgetOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--steps <n>', 'budget: optimizer steps').argParser(parsePositiveInt))
    .addOption(new Option('--epochs <n>', 'budget: passes over the training data').argParser(parsePositiveNumber))
    .addOption(new Option('--time-budget <seconds>', 'budget: optimizer seconds').argParser(parsePositiveNumber));
}

function listCommand(io: CliIO, opts: { json?: boolean }): void {
  const optimizers = [...optimizerRegistry.values()].map((e) => ({
    name: e.name,
    description: e.description,
    options: e.options.map((o) => ({ name: o.name, default: o.default, description: o.description })),
  }));
  const probs = problems.list().map((p) => ({ name: p.name, description: p.description, options: p.options }));
  const suiteList = Object.values(suites).map((s) => ({
    name: s.name,
    description: s.description,
    seeds: s.seeds,
    problems: s.problems.map((p) => p.id ?? p.problem),
  }));
  if (opts.json) {
    io.out(`${JSON.stringify({ optimizers, problems: probs, suites: suiteList }, null, 2)}\n`);
    return;
  }
  const show = (v: unknown) => (typeof v === 'function' ? '(function)' : JSON.stringify(v) ?? 'undefined');
  const lines: string[] = ['Optimizers:'];
  for (const o of optimizers) {
    lines.push(`  ${o.name}  ${o.description}`);
    for (const x of o.options) lines.push(`      --set ${x.name}=${show(x.default)}  ${x.description}`);
  }
  lines.push('', 'Problems:');
  for (const p of probs) {
    lines.push(`  ${p.name}  ${p.description}`);
    for (const x of p.options) lines.push(`      --problem-option ${x.name}=${show(x.default)}  ${x.description}`);
  }
  lines.push('', 'Suites:');
  for (const s of suiteList) lines.push(`  ${s.name}  ${s.description} (${s.seeds} seeds: ${s.problems.join(', ')})`);
  io.out(`${lines.join('\n')}\n`);
}

interface RunOpts extends GlobalOpts {
  problem: string;
  optimizer: string;
  steps?: number;
  epochs?: number;
  timeBudget?: number;
  lr?: number;
  set?: string[];
  problemOption?: string[];
  seed: number;
  target?: number;
  json?: boolean;
  out?: string;
  progress: boolean;
}

async function runCommand(io: CliIO, opts: RunOpts): Promise<number> {
  checkProblemName(opts.problem);
  checkOptimizerName(opts.optimizer);
  const out = opts.out !== undefined ? ensureWritableDir(opts.out) : undefined;
  const optimizerOptions = parseAssignments(opts.set);
  if (opts.lr !== undefined) optimizerOptions.learningRate = opts.lr;
  const problemConfig: ProblemConfig = {
    problem: opts.problem,
    options: parseAssignments(opts.problemOption),
    budget: budgetFrom(opts) ?? { steps: 100 },
  };
  if (opts.target !== undefined) problemConfig.target = opts.target;
  const spec: ComparisonSpec = {
    problems: [problemConfig],
    optimizers: [opts.optimizer],
    optimizerOptions: { [opts.optimizer]: optimizerOptions },
    seeds: [opts.seed],
  };
  await useBackend(opts);
  validateComparison(spec);
  const run = planRuns(spec)[0];
  const bar = progress(io, opts.progress && !opts.json, 'steps');
  bar.start(run.budget.steps ?? 0, `${opts.optimizer} on ${opts.problem}`);
  const result = await runExperiment(run, {
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

interface CompareOpts extends GlobalOpts {
  problem?: string;
  suite?: string;
  config?: string;
  optimizers?: string[];
  seeds?: number;
  steps?: number;
  epochs?: number;
  timeBudget?: number;
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

async function resolveComparison(opts: CompareOpts): Promise<ComparisonSpec> {
  const sources = [opts.problem, opts.suite, opts.config].filter((s) => s !== undefined);
  if (sources.length !== 1) throw new UsageError('Give exactly one of --problem, --suite or --config.');
  let spec: ComparisonSpec;
  const budget = budgetFrom(opts);
  if (opts.config !== undefined) {
    spec = await loadConfig(opts.config);
  } else if (opts.suite !== undefined) {
    let suite;
    try {
      suite = getSuite(opts.suite);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    spec = suiteComparison(suite, opts.optimizers ?? [...optimizerRegistry.keys()], opts.seeds);
  } else {
    checkProblemName(opts.problem as string);
    const p: ProblemConfig = {
      problem: opts.problem as string,
      options: parseAssignments(opts.problemOption),
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
  const sets = parseAssignments(opts.set);
  for (const [k, v] of Object.entries(sets)) {
    const dot = k.indexOf('.');
    const targets = dot > 0 ? [k.slice(0, dot)] : spec.optimizers;
    const key = dot > 0 ? k.slice(dot + 1) : k;
    spec.optimizerOptions ??= {};
    for (const o of targets) spec.optimizerOptions[o] = { ...(spec.optimizerOptions[o] ?? {}), [key]: v };
  }
  return spec;
}

async function compareCommand(io: CliIO, opts: CompareOpts): Promise<number> {
  const spec = await resolveComparison(opts);
  const shard: Shard | null = opts.shard !== undefined ? toUsage(() => parseShard(opts.shard as string)) : null;
  const out = ensureWritableDir(opts.out);
  await useBackend(opts);
  validateComparison(spec, io);
  const title = opts.title ?? `curvature compare${spec.name ? `: ${spec.name} suite` : ''}`;

  if (opts.workers > 1 && shard === null) return compareWithWorkers(io, opts, spec, out, title);

  const resultsPath = join(out, 'results.json');
  let existing: ComparisonResults | undefined;
  if (!opts.fresh && existsSync(resultsPath)) {
    existing = toUsage(() => readResults(resultsPath));
    // Run ids hash everything that determines a run, so matching runs are safe to reuse even
    // when the comparison changed (e.g. an optimizer or a seed was added).
    const same = existing.specHash === shortHash(spec) && JSON.stringify(existing.shard) === JSON.stringify(shard);
    if (!same) {
      const ids = new Set(shardRuns(planRuns(spec), shard).map(runId));
      const keep = existing.runs.filter((r) => ids.has(r.id)).length;
      io.err(
        `curvature: note: ${resultsPath} is from a different comparison; reusing its ${keep} matching run(s), replacing the rest\n`,
      );
    }
  }
  const planned = planRuns(spec).length;
  const plannedIds = new Set(shardRuns(planRuns(spec), shard).map(runId));
  const reused = existing?.runs.filter((r) => plannedIds.has(r.id) && r.final.error === undefined).length ?? 0;
  const bar = progress(io, opts.progress, 'runs');
  let started = 0;
  const results = await compare(spec, {
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
    `${results.runs.length} runs (${reused > 0 ? `${reused} reused, ` : ''}${planned} planned${shard ? `, shard ${shard.index}/${shard.count}` : ''}); ` +
      `wrote ${join(out, 'results.json')}, report.md, report.html\n`,
  );
  return 0;
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
  const cli = fileURLToPath(import.meta.url);
  const k = opts.workers;
  io.err(`compare: ${k} workers, one shard each, in ${join(out, 'shards')}\n`);
  const codes = await Promise.all(
    Array.from({ length: k }, (_, i) => {
      const args = [...process.execArgv, cli, 'compare', '--config', specPath, '--shard', `${i + 1}/${k}`, '--out', join(out, 'shards', String(i + 1)), '--no-progress'];
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
  io.out(`${summaryText(merged)}\n\n${merged.runs.length} runs; wrote ${join(out, 'results.json')}, report.md, report.html\n`);
  return 0;
}

interface TuneOpts extends GlobalOpts {
  problem: string;
  optimizer: string;
  param: string;
  grid?: string;
  values?: string[];
  seeds: number;
  steps?: number;
  epochs?: number;
  timeBudget?: number;
  set?: string[];
  problemOption?: string[];
  target?: number;
  json?: boolean;
  out?: string;
  progress: boolean;
}

function parseGrid(s: string): number[] {
  const m = s.split(':').map(Number);
  if (m.length !== 3 || m.some((x) => !Number.isFinite(x)) || !(m[0] > 0) || !(m[1] >= m[0]) || !Number.isInteger(m[2]) || m[2] < 1) {
    throw new UsageError(`Invalid --grid '${s}': expected min:max:num with 0 < min <= max, e.g. 1e-4:1:9.`);
  }
  return logGrid(m[0], m[1], m[2]);
}

async function tuneCommand(io: CliIO, opts: TuneOpts): Promise<number> {
  checkProblemName(opts.problem);
  checkOptimizerName(opts.optimizer);
  const out = opts.out !== undefined ? ensureWritableDir(opts.out) : undefined;
  const grid = opts.values
    ? opts.values.map((v) => {
        const n = Number(v);
        if (!(n > 0)) throw new UsageError(`Invalid --values entry '${v}': expected a positive number.`);
        return n;
      })
    : parseGrid(opts.grid ?? '1e-4:1:9');
  const problemOptions = parseAssignments(opts.problemOption);
  const optimizerOptions = parseAssignments(opts.set);
  const budget = budgetFrom(opts) ?? { steps: 200 };
  const spec: ComparisonSpec = {
    problems: [{ problem: opts.problem, options: problemOptions, budget, ...(opts.target !== undefined ? { target: opts.target } : {}) }],
    optimizers: [opts.optimizer],
    optimizerOptions: { [opts.optimizer]: { ...optimizerOptions, [opts.param]: grid[0] } },
    seeds: [0],
  };
  await useBackend(opts);
  validateComparison(spec);
  const bar = progress(io, opts.progress && !opts.json, 'values');
  bar.start(grid.length, `tune ${opts.param}`);
  let done = 0;
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
      seeds: Array.from({ length: opts.seeds }, (_, i) => i),
    },
    { onTrial: () => bar.update(++done) },
  );
  bar.stop();
  if (out) {
    writeFileAtomic(join(out, 'tune.json'), `${JSON.stringify({ param: result.param, trials: result.trials, best: result.best }, null, 1)}\n`);
    if (result.best !== null) {
      const bestSpec: ComparisonSpec = {
        ...spec,
        optimizerOptions: { [opts.optimizer]: { ...optimizerOptions, [opts.param]: result.best } },
        seeds: Array.from({ length: opts.seeds }, (_, i) => i),
      };
      const runs = result.runs;
      await writeReport(assembleResults(bestSpec, runs, null), out, `tuned ${opts.optimizer} on ${opts.problem}`);
    }
  }
  if (opts.json) {
    io.out(`${JSON.stringify({ param: result.param, trials: result.trials, best: result.best, final: result.runs.map((r) => r.final) })}\n`);
    return 0;
  }
  const rows = result.trials.map((t) => [fmt(t.value, 3), t.diverged ? 'diverged' : fmt(t.finalTrainLoss, 4), t.value === result.best ? '<- best' : '']);
  io.out(`${textTable([opts.param, 'final train loss', ''], rows)}\n`);
  if (result.best === null) {
    io.out('every value diverged\n');
  } else {
    const losses = result.runs.map((r) => r.final.trainLoss ?? NaN);
    io.out(
      `best ${opts.param} = ${result.best}; rerun with ${losses.length} seed(s): final train loss ${losses.map((l) => fmt(l, 4)).join(', ')}\n`,
    );
  }
  return 0;
}

async function reportCommand(io: CliIO, dirs: string[], opts: { out: string; title?: string }): Promise<number> {
  const out = ensureWritableDir(opts.out);
  const parts = dirs.map((d) => {
    const path = d.endsWith('.json') ? d : join(d, 'results.json');
    return toUsage(() => readResults(path));
  });
  const merged = toUsage(() => mergeResults(parts));
  await writeReport(merged, out, opts.title ?? 'curvature comparison');
  io.out(`${summaryText(merged)}\n\nmerged ${parts.length} result file(s), ${merged.runs.length} runs` +
    (merged.pending > 0 ? `, ${merged.pending} planned run(s) missing` : '') +
    `; wrote ${join(out, 'report.html')}\n`);
  return 0;
}

interface SpectrumOpts {
  problem: string;
  problemOption?: string[];
  at: 'init' | 'trained';
  curvature: 'hessian' | 'ggn';
  k: number;
  runs: number;
  lanczosSteps: number;
  maxBatches?: number;
  trainSteps: number;
  seed: number;
  out?: string;
  json?: boolean;
}

async function spectrumCommand(io: CliIO, opts: GlobalOpts & SpectrumOpts): Promise<number> {
  checkProblemName(opts.problem);
  const outDir = opts.out !== undefined ? ensureWritableDir(opts.out) : undefined;
  await useBackend(opts);
  const problem = toUsage(() => problems.get(opts.problem, { ...parseAssignments(opts.problemOption), seed: opts.seed }));
  try {
    const r = await runSpectrumCommand({
      problem,
      at: opts.at,
      curvature: opts.curvature,
      k: opts.k,
      runs: opts.runs,
      steps: opts.lanczosSteps,
      maxBatches: opts.maxBatches,
      trainSteps: opts.trainSteps,
      seed: opts.seed,
      outDir,
    }).catch((e: Error) => {
      // Input the diagnostics reject (e.g. --curvature ggn on a problem without outputs).
      if (/^spectrum:/.test(e.message)) throw new UsageError(e.message);
      throw e;
    });
    if (opts.json) io.out(`${JSON.stringify(r)}\n`);
    else {
      io.out(
        `${r.problem} at ${r.at} (${r.numParams} params, ${r.curvature}, loss ${fmt(r.loss, 4)}, ${r.batches || 1} batch(es))\n` +
          `  top eigenvalues: ${r.topEigenvalues.map((v) => fmt(v, 4)).join(', ')}${r.eigenvaluesConverged ? '' : ' (not all converged)'}\n` +
          `  trace: ${fmt(r.trace.estimate, 4)} +/- ${fmt(r.trace.standardError, 2)} (standard error)\n` +
          `  density support: [${fmt(r.density.lambdaMin, 3)}, ${fmt(r.density.lambdaMax, 3)}], ${r.matvecs} products, ${r.seconds.toFixed(1)} s\n` +
          (r.files.markdown ? `  wrote ${[r.files.json, r.files.svg, r.files.markdown].filter(Boolean).join(', ')}\n` : ''),
      );
    }
    return 0;
  } finally {
    problem.dispose();
  }
}

interface InfluenceOpts {
  problem: string;
  problemOption?: string[];
  at: 'init' | 'trained';
  curvature: 'hessian' | 'ggn';
  damping: number;
  solver: 'cg' | 'lissa';
  maxIter?: number;
  tol?: number;
  points: number;
  testIndex: number;
  maxBatches?: number;
  trainSteps: number;
  seed: number;
  out?: string;
  json?: boolean;
}

async function influenceCommand(io: CliIO, opts: GlobalOpts & InfluenceOpts): Promise<number> {
  checkProblemName(opts.problem);
  const outDir = opts.out !== undefined ? ensureWritableDir(opts.out) : undefined;
  await useBackend(opts);
  const problem = toUsage(() => problems.get(opts.problem, { ...parseAssignments(opts.problemOption), seed: opts.seed }));
  try {
    const r = await runInfluenceCommand({
      problem,
      at: opts.at,
      curvature: opts.curvature,
      damping: opts.damping,
      solver: opts.solver,
      maxIter: opts.maxIter,
      tol: opts.tol,
      points: opts.points,
      testIndex: opts.testIndex,
      maxBatches: opts.maxBatches,
      trainSteps: opts.trainSteps,
      seed: opts.seed,
      outDir,
    }).catch((e: Error) => {
      if (/^influence:/.test(e.message)) throw new UsageError(e.message);
      throw e;
    });
    // The warning goes to stderr too, so that it is seen even when stdout is parsed (--json).
    if (r.solve.warning !== undefined) io.err(`curvature: warning: ${r.solve.warning}\n`);
    if (opts.json) io.out(`${JSON.stringify(r)}\n`);
    else {
      const top = r.points.slice(0, 10);
      io.out(
        `${r.problem} at ${r.at} (${r.numParams} params, ${r.curvature}, damping ${r.damping}): influence on the loss of training example ${r.testIndex}\n` +
          `  solve: ${solveLine(r.solve)}${r.solve.warning !== undefined ? ' -- UNRELIABLE, see the warning' : ''}\n` +
          `  most influential: ${top.map((p) => `#${p.index} ${fmt(p.influence, 3)}`).join(', ')}\n` +
          `  ${r.matvecs} curvature products, ${r.seconds.toFixed(1)} s\n` +
          (r.files.markdown ? `  wrote ${r.files.json}, ${r.files.markdown}\n` : ''),
      );
    }
    return 0;
  } finally {
    problem.dispose();
  }
}

async function checkCommand(io: CliIO, opts: GlobalOpts & { problem: string; problemOption?: string[]; seed: number; json?: boolean }): Promise<number> {
  checkProblemName(opts.problem);
  await useBackend(opts);
  const problem = toUsage(() => problems.get(opts.problem, { ...parseAssignments(opts.problemOption), seed: opts.seed }));
  try {
    const r = checkProblem(problem, { seed: opts.seed });
    if (opts.json) io.out(`${JSON.stringify(r)}\n`);
    else {
      io.out(
        `${r.problem} (${r.numParams} params)\n` +
          `  gradient: directional derivative ${fmt(r.gradient.analytic, 6)} vs central difference ${fmt(r.gradient.numeric, 6)}, ` +
          `relative error ${fmt(r.gradient.relError, 2)} ${r.gradient.ok ? 'ok' : 'FAILED'}\n` +
          `  HVP: |Hv| = ${fmt(r.hvp.norm, 4)}, relative error vs gradient differences ${fmt(r.hvp.relError, 2)} ${r.hvp.ok ? 'ok' : 'FAILED'}\n` +
          (!r.hvp.ok && problem.options.activation === 'relu'
            ? '  note: relu networks have kinks that finite differences of gradients cross; check the same architecture with --problem-option activation=tanh\n'
            : ''),
      );
    }
    return r.ok ? 0 : 1;
  } finally {
    problem.dispose();
  }
}

function toUsage<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError((e as Error).message);
  }
}

// ---- program ---------------------------------------------------------------------------------

export function buildProgram(io: CliIO, setExit: (code: number) => void): Command {
  const program = new Command();
  program
    .name('curvature')
    .description('Benchmark first- and second-order optimizers for TensorFlow.js')
    .addOption(new Option('--backend <name>', 'tfjs backend: tensorflow, wasm or cpu (default: best available)'))
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .showHelpAfterError(false);

  const globals = (cmd: Command) => cmd.optsWithGlobals() as GlobalOpts;

  program
    .command('list')
    .description('list optimizers (with their options and defaults), problems and suites')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => listCommand(io, opts));

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
    .addOption(new Option('--target <loss>', 'target training loss').argParser(parseNumber))
    .option('--json', 'print the run as one JSON object (final.trainLoss, records, ...)')
    .option('--out <dir>', 'also write results.json, report.md, report.html here')
    .option('--no-progress', 'no progress bar')
    .action(async (opts: RunOpts, cmd: Command) => setExit(await runCommand(io, { ...globals(cmd), ...opts })));

  addBudgetOptions(
    program
      .command('compare')
      .description('optimizers x seeds on a problem, a suite or a config file; resumable and shardable')
      .option('--problem <name>', 'one problem')
      .option('--suite <name>', 'a suite: quick or full')
      .option('--config <file>', 'a JSON comparison spec (docs/cli.md)')
      .addOption(new Option('--optimizers <list>', 'comma-separated optimizers (default: all registered)').argParser(parseList)),
  )
    .addOption(new Option('--seeds <n>', 'seeds 0..n-1').argParser(parsePositiveInt))
    .addOption(new Option('--target <loss>', 'target training loss for every problem').argParser(parseNumber))
    .option('--set <[optimizer.]key=value>', 'optimizer option for one or all optimizers (repeatable)', collect)
    .option('--problem-option <key=value>', 'problem option with --problem (repeatable)', collect)
    .option('--shard <i/n>', 'run only every n-th run starting at i (1-based)')
    .addOption(new Option('--workers <k>', 'run k shards in parallel processes').argParser(parsePositiveInt).default(1))
    .requiredOption('--out <dir>', 'output directory (results.json, report.md, report.html)')
    .option('--fresh', 'ignore results already in --out instead of resuming')
    .option('--title <text>', 'report title')
    .option('--no-progress', 'no progress bar')
    .action(async (opts: CompareOpts, cmd: Command) => setExit(await compareCommand(io, { ...globals(cmd), ...opts })));

  addBudgetOptions(
    program
      .command('tune')
      .description('DeepOBS-style tuning: log-spaced grid, best final training loss, rerun with seeds')
      .requiredOption('--problem <name>', 'problem')
      .requiredOption('--optimizer <name>', 'optimizer'),
  )
    .option('--param <name>', 'tuned option', 'learningRate')
    .option('--grid <min:max:num>', 'log-spaced grid (default 1e-4:1:9)')
    .addOption(new Option('--values <list>', 'explicit comma-separated values').argParser(parseList))
    .addOption(new Option('--seeds <n>', 'reruns of the best value with seeds 0..n-1').argParser(parsePositiveInt).default(3))
    .option('--set <key=value>', 'fixed optimizer option (repeatable)', collect)
    .option('--problem-option <key=value>', 'problem option (repeatable)', collect)
    .addOption(new Option('--target <loss>', 'target training loss').argParser(parseNumber))
    .option('--json', 'print JSON')
    .option('--out <dir>', 'write tune.json and a report of the reruns')
    .option('--no-progress', 'no progress bar')
    .action(async (opts: TuneOpts, cmd: Command) => setExit(await tuneCommand(io, { ...globals(cmd), ...opts })));

  program
    .command('report')
    .description('merge results (shards) from one or more directories and write the report')
    .argument('<dirs...>', 'directories containing results.json (or results.json paths)')
    .requiredOption('--out <dir>', 'output directory')
    .option('--title <text>', 'report title')
    .action(async (dirs: string[], opts: { out: string; title?: string }) => setExit(await reportCommand(io, dirs, opts)));

  program
    .command('check')
    .description("check a problem's gradient and Hessian-vector products against central differences")
    .requiredOption('--problem <name>', 'problem')
    .option('--problem-option <key=value>', 'problem option (repeatable)', collect)
    .addOption(new Option('--seed <n>', 'seed of the parameters and the direction').argParser(parseNonNegativeInt).default(0))
    .option('--json', 'print JSON')
    .action(async (opts: { problem: string; problemOption?: string[]; seed: number; json?: boolean }, cmd: Command) =>
      setExit(await checkCommand(io, { ...globals(cmd), ...opts })),
    );

  program
    .command('spectrum')
    .description('Hessian (or Gauss-Newton) spectrum of a problem: top eigenvalues, trace, density plot')
    .requiredOption('--problem <name>', 'problem')
    .option('--problem-option <key=value>', 'problem option (repeatable)', collect)
    .addOption(new Option('--at <when>', 'at the initial parameters or after training (Adam)').choices(['init', 'trained']).default('init'))
    .addOption(new Option('--curvature <kind>', 'curvature matrix').choices(['hessian', 'ggn']).default('hessian'))
    .addOption(new Option('--k <n>', 'number of top eigenvalues').argParser(parsePositiveInt).default(10))
    .addOption(new Option('--runs <n>', 'stochastic Lanczos quadrature runs').argParser(parsePositiveInt).default(3))
    .addOption(new Option('--lanczos-steps <n>', 'Lanczos steps per run').argParser(parsePositiveInt).default(80))
    .addOption(new Option('--max-batches <n>', 'average the curvature over at most this many training batches').argParser(parsePositiveInt))
    .addOption(new Option('--train-steps <n>', 'Adam steps for --at trained').argParser(parsePositiveInt).default(200))
    .addOption(new Option('--seed <n>', 'seed of parameters, probes and batches').argParser(parseNonNegativeInt).default(0))
    .option('--out <dir>', 'write spectrum.json, spectrum.svg and spectrum.md here')
    .option('--json', 'print JSON')
    .action(async (opts: SpectrumOpts, cmd: Command) => setExit(await spectrumCommand(io, { ...globals(cmd), ...opts })));

  program
    .command('influence')
    .description('influence of training examples on the loss of one example (Koh & Liang), with the solve status')
    .requiredOption('--problem <name>', 'a data problem')
    .option('--problem-option <key=value>', 'problem option (repeatable)', collect)
    .addOption(new Option('--at <when>', 'at the initial parameters or after training (Adam)').choices(['init', 'trained']).default('init'))
    .addOption(new Option('--curvature <kind>', 'curvature matrix').choices(['hessian', 'ggn']).default('hessian'))
    .addOption(new Option('--damping <x>', 'damping added to the curvature').argParser(parseNonNegativeNumber).default(0.01))
    .addOption(new Option('--solver <name>', 'linear solver').choices(['cg', 'lissa']).default('cg'))
    .addOption(new Option('--max-iter <n>', 'CG iterations (default 2 x params, at most 500)').argParser(parsePositiveInt))
    .addOption(new Option('--tol <x>', 'relative residual tolerance (CG 1e-6, LiSSA 1e-2)').argParser(parsePositiveNumber))
    .addOption(new Option('--points <n>', 'score training examples 0 .. n-1').argParser(parsePositiveInt).default(20))
    .addOption(new Option('--test-index <i>', 'the training example whose loss is attributed').argParser(parseNonNegativeInt).default(0))
    .addOption(new Option('--max-batches <n>', 'average the curvature over at most this many training batches').argParser(parsePositiveInt))
    .addOption(new Option('--train-steps <n>', 'Adam steps for --at trained').argParser(parsePositiveInt).default(200))
    .addOption(new Option('--seed <n>', 'seed of parameters and training batches').argParser(parseNonNegativeInt).default(0))
    .option('--out <dir>', 'write influence.json and influence.md here')
    .option('--json', 'print JSON')
    .action(async (opts: InfluenceOpts, cmd: Command) => setExit(await influenceCommand(io, { ...globals(cmd), ...opts })));

  return program;
}

/** Run the CLI; returns the exit code (0 ok, 1 failure, 2 bad input). */
export async function main(argv: string[], io: CliIO = processIO): Promise<number> {
  let code = 0;
  const program = buildProgram(io, (c) => {
    code = c;
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Commander already printed its one-line message (or the help / version).
      return e.exitCode === 0 ? 0 : 2;
    }
    if (e instanceof UsageError) {
      io.err(`curvature: ${e.message}\n`);
      return 2;
    }
    io.err(`curvature: ${(e as Error).message ?? String(e)}\n`);
    if (process.env.CURVATURE_DEBUG) io.err(`${(e as Error).stack}\n`);
    return 1;
  }
}

function invokedDirectly(): boolean {
  if (process.argv[1] === undefined) return false;
  try {
    // The bin is usually a symlink (node_modules/.bin/curvature); compare real paths.
    return realpathSync(fileURLToPath(import.meta.url)) === realpathSync(resolve(process.argv[1]));
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`curvature: ${String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
