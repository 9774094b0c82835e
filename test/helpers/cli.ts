// Running the CLI in-process for tests: captured stdout/stderr and the exit code.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { main, type CliIO } from '../../src/cli.js';

export interface CliRun {
  code: number;
  out: string;
  err: string;
}

/** Run `curvature ...argv` in this process (not a terminal: no progress bars). */
export async function cli(...argv: string[]): Promise<CliRun> {
  let out = '';
  let err = '';
  const io: CliIO = { out: (s) => (out += s), err: (s) => (err += s), isTTY: false };
  const code = await main(argv, io);
  return { code, out, err };
}

/** Exit code 2 and exactly one line on stderr, matching `pattern`, with no stack trace. */
export function expectUsageError(r: CliRun, pattern: RegExp): void {
  expect(r.code, r.err).toBe(2);
  expect(r.err.trim().split('\n')).toHaveLength(1);
  expect(r.err).toMatch(pattern);
  expect(r.err).not.toMatch(/\n\s+at /);
}

/** A fresh temporary directory. */
export const tmpDir = (prefix = 'curvature-cli-'): string => mkdtempSync(join(tmpdir(), prefix));
