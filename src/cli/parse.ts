/**
 * Argument parsers (commander reports their errors with the option name), budgets, and the
 * one-line errors for flags that contradict each other. Option assignments (`--set key=value`)
 * are read by the options' own specs in ./options.ts.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { logGrid } from '../harness/compare.js';
import type { Budget } from '../harness/types.js';
import { UsageError } from './io.js';

export function parseNumber(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('expected a number.');
  return n;
}
export function parsePositiveNumber(v: string): number {
  const n = parseNumber(v);
  if (!(n > 0)) throw new InvalidArgumentError('expected a positive number.');
  return n;
}
export function parseNonNegativeNumber(v: string): number {
  const n = parseNumber(v);
  if (!(n >= 0)) throw new InvalidArgumentError('expected a number >= 0.');
  return n;
}
export function parsePositiveInt(v: string): number {
  const n = Number(v);
  if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError('expected a positive integer.');
  }
  return n;
}
export function parseNonNegativeInt(v: string): number {
  const n = Number(v);
  if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('expected an integer >= 0.');
  return n;
}
export function parseList(v: string): string[] {
  const items = v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (items.length === 0) throw new InvalidArgumentError('expected a comma-separated list.');
  return items;
}
export function collect(v: string, prev: string[] = []): string[] {
  if (!v.includes('=')) throw new InvalidArgumentError('expected key=value.');
  return [...prev, v];
}

/** --grid min:max:num -> the log-spaced values. */
export function parseGrid(s: string): number[] {
  const m = s.split(':').map(Number);
  const [lo, hi, num] = m as [number, number, number];
  if (
    m.length !== 3 ||
    m.some((x) => !Number.isFinite(x)) ||
    !(lo > 0) ||
    !(hi >= lo) ||
    !Number.isInteger(num) ||
    num < 1
  ) {
    throw new UsageError(`Invalid --grid '${s}': expected min:max:num with 0 < min <= max, e.g. 1e-4:1:9.`);
  }
  return logGrid(lo, hi, num);
}

export interface BudgetFlags {
  steps?: number;
  epochs?: number;
  timeBudget?: number;
}

export function budgetFrom(opts: BudgetFlags): Budget | undefined {
  const b: Budget = {};
  if (opts.steps !== undefined) b.steps = opts.steps;
  if (opts.epochs !== undefined) b.epochs = opts.epochs;
  if (opts.timeBudget !== undefined) b.seconds = opts.timeBudget;
  return Object.keys(b).length > 0 ? b : undefined;
}

/** --steps and --epochs name the same budget two ways (commander: one-line error, exit 2). */
export function addBudgetOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--steps <n>', 'budget: optimizer steps').argParser(parsePositiveInt).conflicts('epochs'))
    .addOption(new Option('--epochs <n>', 'budget: passes over the training data').argParser(parsePositiveNumber))
    .addOption(
      new Option(
        '--time-budget <seconds>',
        'budget: optimizer seconds (with --steps or --epochs: whichever ends first)',
      ).argParser(parsePositiveNumber),
    );
}

/**
 * The options of the commands that study a problem's curvature (spectrum, influence): the problem,
 * where (at initialisation or after Adam training), which matrix, over how many batches.
 */
export function addCurvatureProblemOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--problem <name>', 'problem (see list)')
    .option('--problem-option <key=value>', 'problem option (repeatable)', collect)
    .addOption(
      new Option('--at <when>', 'at the initial parameters or after training (Adam)')
        .choices(['init', 'trained'])
        .default('init'),
    )
    .addOption(new Option('--curvature <kind>', 'curvature matrix').choices(['hessian', 'ggn']).default('hessian'))
    .addOption(
      new Option('--max-batches <n>', 'average the curvature over at most this many training batches').argParser(
        parsePositiveInt,
      ),
    )
    .addOption(new Option('--train-steps <n>', 'Adam steps for --at trained').argParser(parsePositiveInt).default(200));
}

/** A target training loss: a positive number (losses here are >= 0 and reach 0 only in the limit). */
export function targetOption(description: string): Option {
  return new Option('--target <loss>', description).argParser(parsePositiveNumber);
}
