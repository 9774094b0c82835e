// `curvature spectrum`: the CLI front of the curvature diagnostics.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from './helpers/cli.js';

describe('curvature spectrum', () => {
  it('reports the exact top eigenvalues of a quadratic and writes the plot', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'curvature-spectrum-'));
    const r = await cli(
      '--backend',
      'cpu',
      'spectrum',
      '--problem',
      'quadratic',
      '--problem-option',
      'dim=12',
      '--problem-option',
      'condition=100',
      '--k',
      '3',
      '--runs',
      '1',
      '--lanczos-steps',
      '12',
      '--out',
      dir,
      '--json',
    );
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out) as {
      topEigenvalues: number[];
      numParams: number;
      trace: { estimate: number; standardError: number };
    };
    expect(report.numParams).toBe(12);
    // The quadratic's eigenvalues are condition^(-i/(d-1)), i = 0..d-1: 1, 100^(-1/11), ...
    expect(report.topEigenvalues[0]).toBeCloseTo(1, 4);
    expect(report.topEigenvalues[1]).toBeCloseTo(Math.pow(100, -1 / 11), 4);
    expect(report.topEigenvalues[2]).toBeCloseTo(Math.pow(100, -2 / 11), 4);
    // Trace of the exact spectrum, within a few reported standard errors.
    const trace = Array.from({ length: 12 }, (_, i) => Math.pow(100, -i / 11)).reduce((a, b) => a + b, 0);
    expect(Math.abs(report.trace.estimate - trace)).toBeLessThan(4 * report.trace.standardError + 1e-6);
    expect(readFileSync(join(dir, 'spectrum.svg'), 'utf8')).toMatch(/^<svg/);
    expect(existsSync(join(dir, 'spectrum.md'))).toBe(true);
  });

  it('rejects bad input with one line and exit code 2', async () => {
    for (const [argv, pattern] of [
      [['spectrum', '--problem', 'nope'], /Unknown problem 'nope'/],
      [['spectrum', '--problem', 'rosenbrock', '--curvature', 'ggn'], /ggn needs a network problem/],
      [['spectrum', '--problem', 'rosenbrock', '--at', 'later'], /'--at <when>' argument 'later' is invalid/],
      [['spectrum', '--problem', 'rosenbrock', '--k', '0'], /expected a positive integer/],
    ] as const) {
      const r = await cli('--backend', 'cpu', ...argv);
      expect(r.code).toBe(2);
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(r.err).toMatch(pattern);
    }
  });
});
