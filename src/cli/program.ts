/**
 * The `curvature` program: global options, one register function per command (each command
 * lives in its own file here), and `main`, which turns every error into an exit code (0 ok,
 * 1 failure, 2 bad input) with one line on stderr.
 */
import { Command, CommanderError, Option } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { processIO, UsageError, type CliIO } from './io.js';
import { registerList } from './list.js';
import { registerRun } from './run.js';
import { registerCompare } from './compare.js';
import { registerTune } from './tune.js';
import { registerReport } from './report.js';
import { registerCheck } from './check.js';
import { registerSpectrum } from './spectrum.js';
import { registerInfluence } from './influence.js';

/** The package's version, from the nearest package.json above this file (src or dist). */
export function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const p = join(dir, 'package.json');
    if (existsSync(p)) {
      const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'tfjs-curvature' && pkg.version) return pkg.version;
    }
    const up = dirname(dir);
    if (up === dir) return 'unknown';
    dir = up;
  }
}

export function buildProgram(io: CliIO, setExit: (code: number) => void): Command {
  const program = new Command();
  program
    .name('curvature')
    .description('Benchmark first- and second-order optimizers for TensorFlow.js')
    .version(packageVersion(), '-V, --version', 'print the version')
    .addOption(new Option('--backend <name>', 'tfjs backend: tensorflow, wasm or cpu (default: best available)'))
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .showHelpAfterError(false);
  const action = async (f: () => Promise<number>): Promise<void> => setExit(await f());
  registerList(program, io);
  registerRun(program, io, action);
  registerCompare(program, io, action);
  registerTune(program, io, action);
  registerReport(program, io, action);
  registerCheck(program, io, action);
  registerSpectrum(program, io, action);
  registerInfluence(program, io, action);
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
