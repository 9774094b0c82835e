// `curvature influence`: the solve's status (scipy-style info code) reaches the user: stdout,
// a warning on stderr when the values are unreliable, and the report file.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli } from './helpers/cli.js';

describe('curvature influence', () => {
  it('a converged solve: info 0 and no warning', async () => {
    const r = await cli('--backend', 'cpu', 'influence', '--problem', 'logreg-iris', '--points', '5', '--json');
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    const rep = JSON.parse(r.out) as {
      solve: { info: number; status: string; warning?: string };
      points: { index: number; influence: number }[];
    };
    expect(rep.solve).toMatchObject({ info: 0, status: 'converged' });
    expect(rep.solve.warning).toBeUndefined();
    expect(rep.points.map((p) => p.index).sort()).toEqual([0, 1, 2, 3, 4]);
  });

  it('CG out of iterations: the status, a warning on stderr and in influence.md', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'curvature-influence-'));
    const r = await cli(
      '--backend',
      'cpu',
      'influence',
      '--problem',
      'logreg-iris',
      '--points',
      '5',
      '--max-iter',
      '2',
      '--out',
      dir,
    );
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /solve: cg, 2 iteration\(s\), relative residual [0-9.e-]+: max-iterations \(info 2\) -- UNRELIABLE/,
    );
    expect(r.err).toMatch(
      /^curvature: warning: influence: CG did not converge: relative residual [0-9.e-]+ > tol 1e-6 after 2 iteration/,
    );
    const md = readFileSync(join(dir, 'influence.md'), 'utf8');
    expect(md).toMatch(/\*\*Warning: the influence values below are unreliable\.\*\* influence: CG did not converge/);
    expect(JSON.parse(readFileSync(join(dir, 'influence.json'), 'utf8')).solve).toMatchObject({
      info: 2,
      converged: false,
    });
  });

  it('an MLP at initialisation: non-positive curvature is reported (info -1)', async () => {
    const r = await cli(
      '--backend',
      'cpu',
      'influence',
      '--problem',
      'mlp-mnist',
      '--problem-option',
      'hidden=[16]',
      '--problem-option',
      'trainSize=500',
      '--max-batches',
      '2',
      '--points',
      '3',
      '--json',
    );
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.out) as { solve: { info: number; status: string; negativeCurvature: boolean } };
    expect(rep.solve).toMatchObject({ info: -1, status: 'negative-curvature', negativeCurvature: true });
    expect(r.err).toMatch(/warning: influence: CG met non-positive curvature/);
  });

  it('rejects a problem without training examples with one line and exit code 2', async () => {
    const r = await cli('--backend', 'cpu', 'influence', '--problem', 'rosenbrock');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^curvature: influence: 'rosenbrock' has no training examples/);
    expect(r.err.trim().split('\n')).toHaveLength(1);
  });
});
