#!/usr/bin/env node
/**
 * `curvature`: the experiment runner (docs/cli.md). The program is src/cli/program.ts, each
 * command one file in src/cli/; this file is the entry (`npm run curvature`, worker processes).
 *
 *   curvature list                                   optimizers, problems, suites
 *   curvature run --problem P --optimizer O ...      one run
 *   curvature compare --suite quick --out DIR        optimizers x seeds; resumable, shardable
 *   curvature tune --problem P --optimizer O ...     log-spaced learning-rate grid
 *   curvature report DIR... --out DIR                merge shards, (re)write the report
 *   curvature check --problem P                      gradient and HVP check
 *   curvature spectrum --problem P                   Hessian eigenvalues, trace, density
 *   curvature influence --problem P                  influence of training examples (with solve status)
 *
 * Errors in the input (unknown names, bad numbers, contradicting flags, invalid config,
 * unwritable --out) print one line on stderr and exit with code 2; `main` never lets a stack
 * trace reach the user unless CURVATURE_DEBUG is set. `main(argv, io)` is importable so tests run
 * the CLI in-process.
 */
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from './cli/program.js';

export { main, buildProgram, packageVersion } from './cli/program.js';
export { UsageError, processIO, type CliIO } from './cli/io.js';
export {
  optimizerAssignments,
  optimizerOptionsFromText,
  problemOptionsFromText,
  optimizerOptionsSchema,
} from './cli/options.js';
export { configSchema, loadConfig } from './cli/config.js';

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
