/**
 * Checks that turn bad input into one-line usage errors before any work starts: names of
 * problems and optimizers, every optimizer x problem pair built once, a writable --out, the
 * backend.
 */
import { accessSync, constants, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { initBackend } from '../backend.js';
import { getOptimizerEntry, optimizerRegistry } from '../../optimizers/index.js';
import { problems } from '../../experiments/index.js';
import { planRuns, type ComparisonSpec } from '../harness/compare.js';
import { writeFileAtomic } from '../report/results.js';
import { UsageError, type CliIO } from './io.js';

export interface GlobalOpts {
  backend?: string;
}

export function checkProblemName(name: string): void {
  if (!problems.has(name)) {
    throw new UsageError(`Unknown problem '${name}': expected one of ${problems.names().join(', ')}.`);
  }
}

export function checkOptimizerName(name: string): void {
  if (!optimizerRegistry.has(name)) {
    throw new UsageError(`Unknown optimizer '${name}': expected one of ${[...optimizerRegistry.keys()].join(', ')}.`);
  }
}

/**
 * Build every problem configuration and optimizer once, so bad options fail before any work.
 * An optimizer that refuses only some problems (e.g. Newton's size guard on MNIST) is noted on
 * stderr and its runs there are recorded as failed; one that fails everywhere is bad input.
 */
export function validateComparison(spec: ComparisonSpec, io?: CliIO): void {
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
      getOptimizerEntry(run.optimizer)
        .create(run.optimizerOptions ?? {}, { problem })
        .dispose();
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

/**
 * mkdir -p, one level at a time from the nearest existing ancestor. Node's own
 * `mkdirSync(path, { recursive: true })` never returns under /proc (measured: Node 20, `--out
 * /proc/x` hung forever); a plain mkdir fails at once with ENOENT there.
 */
function makeDirs(abs: string): void {
  const missing: string[] = [];
  let p = abs;
  while (!existsSync(p)) {
    missing.push(p);
    const parent = dirname(p);
    if (parent === p) break;
    p = parent;
  }
  for (const d of missing.reverse()) mkdirSync(d);
}

/** Create --out (and its parents) and make sure we can write into it. */
export function ensureWritableDir(dir: string): string {
  const abs = resolve(dir);
  try {
    makeDirs(abs);
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

export async function useBackend(opts: GlobalOpts): Promise<string> {
  try {
    return await initBackend(opts.backend);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}
