import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, expectUsageError } from './helpers/cli.js';
import { readResults, canonicalRuns } from '../src/report/results.js';
import { planRuns } from '../src/harness/compare.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'curvature-cli-'));

const config = {
  problems: [
    { id: 'q', problem: 'quadratic', options: { dim: 4, condition: 10 }, budget: { steps: 25 }, target: 1e-2 },
    { id: 'b', problem: 'beale', budget: { steps: 20 } },
  ],
  optimizers: ['sgd', 'adam'],
  optimizerOptions: { sgd: { learningRate: 0.05 }, adam: { learningRate: 0.05 } },
  seeds: 2,
};

describe('curvature CLI: bad input exits 2 with one line naming it', () => {
  it('unknown problem', async () => {
    expectUsageError(await cli('run', '--problem', 'nope', '--optimizer', 'adam'), /Unknown problem 'nope'/);
  });
  it('unknown optimizer', async () => {
    expectUsageError(await cli('run', '--problem', 'beale', '--optimizer', 'nope'), /Unknown optimizer 'nope'/);
    expectUsageError(
      await cli('compare', '--problem', 'beale', '--optimizers', 'adam,nope', '--out', tmp()),
      /Unknown optimizer 'nope'/,
    );
  });
  it('bad number', async () => {
    expectUsageError(await cli('run', '--problem', 'beale', '--optimizer', 'adam', '--steps', 'ten'), /--steps.*'ten'/);
    expectUsageError(await cli('run', '--problem', 'beale', '--optimizer', 'adam', '--lr', '-1'), /--lr.*'-1'/);
  });
  it('bad option values name the option', async () => {
    expectUsageError(
      await cli('run', '--problem', 'quadratic', '--optimizer', 'adam', '--problem-option', 'dim=abc'),
      /option 'dim'/,
    );
    expectUsageError(
      await cli('run', '--problem', 'beale', '--optimizer', 'adam', '--set', 'learningRate=-3'),
      /learningRate/i,
    );
  });
  it('unwritable --out', async () => {
    const file = join(tmp(), 'a-file');
    writeFileSync(file, 'x');
    expectUsageError(await cli('compare', '--problem', 'beale', '--out', join(file, 'sub')), /Cannot write to --out/);
  });
  it('invalid config file names the field', async () => {
    const dir = tmp();
    const path = join(dir, 'bad.json');
    writeFileSync(path, JSON.stringify({ ...config, problems: [{ problem: 'beale', budget: { steps: 'x' } }] }));
    expectUsageError(await cli('compare', '--config', path, '--out', dir), /problems\.0\.budget\.steps/);
  });
  it('unknown backend', async () => {
    expectUsageError(
      await cli('run', '--problem', 'beale', '--optimizer', 'adam', '--backend', 'gpu'),
      /Unknown backend 'gpu'/,
    );
  });
});

describe('curvature CLI commands', () => {
  it('list names optimizers with defaults and problems', async () => {
    const r = await cli('list', '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.optimizers.map((o: { name: string }) => o.name)).toEqual(
      expect.arrayContaining(['sgd', 'rmsprop', 'adam']),
    );
    expect(j.problems.map((p: { name: string }) => p.name)).toContain('softmax-mnist');
  });

  it('run --json prints one JSON object with final.trainLoss', async () => {
    const r = await cli(
      'run',
      '--problem',
      'rosenbrock',
      '--optimizer',
      'adam',
      '--steps',
      '30',
      '--lr',
      '0.01',
      '--json',
    );
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.final.trainLoss).toBeLessThan(j.final.initialLoss);
    expect(j.records).toHaveLength(30);
  });

  it('check passes on a network problem', async () => {
    const r = await cli('check', '--problem', 'logreg-iris', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ ok: true });
  });

  it('compare writes results.json, report.md, report.html; an interrupted compare resumes without redoing runs', async () => {
    const dir = tmp();
    const cfg = join(dir, 'config.json');
    writeFileSync(cfg, JSON.stringify(config));
    const out = join(dir, 'out');
    const r = await cli('compare', '--config', cfg, '--out', out);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/q\s+sgd/);
    for (const f of ['results.json', 'report.md', 'report.html']) expect(existsSync(join(out, f))).toBe(true);
    const full = readResults(join(out, 'results.json'));
    expect(full.runs).toHaveLength(8);

    // Simulate an interruption after 3 runs: keep them, then resume.
    const partial = { ...full, runs: full.runs.slice(0, 3), pending: 5 };
    writeFileSync(join(out, 'results.json'), JSON.stringify(partial));
    const again = await cli('compare', '--config', cfg, '--out', out);
    expect(again.code).toBe(0);
    expect(again.out).toMatch(/3 reused/);
    const resumed = readResults(join(out, 'results.json'));
    expect(resumed.runs.slice(0, 3)).toEqual(full.runs.slice(0, 3)); // identical, timing included: not rerun
    expect(canonicalRuns(resumed.runs)).toEqual(canonicalRuns(full.runs));
    expect(new Set(resumed.runs.map((x) => x.id)).size).toBe(8);

    // A changed comparison in the same --out reuses the runs that match (by content id).
    const other = await cli('compare', '--config', cfg, '--seeds', '1', '--out', join(dir, 'out'));
    expect(other.code).toBe(0);
    expect(other.err).toMatch(/different comparison; reusing its 4 matching run/);
    expect(other.out).toMatch(/4 reused/);
    writeFileSync(join(out, 'results.json'), JSON.stringify(full));

    // Shards merged by `report` equal the unsharded run.
    const s1 = join(dir, 's1');
    const s2 = join(dir, 's2');
    expect((await cli('compare', '--config', cfg, '--shard', '1/2', '--out', s1)).code).toBe(0);
    expect((await cli('compare', '--config', cfg, '--shard', '2/2', '--out', s2)).code).toBe(0);
    expect(readResults(join(s1, 'results.json')).runs).toHaveLength(4);
    const merged = join(dir, 'merged');
    const rep = await cli('report', s2, s1, '--out', merged);
    expect(rep.code).toBe(0);
    const m = readResults(join(merged, 'results.json'));
    expect(m.shard).toBeNull();
    expect(m.runs.map((x) => x.id)).toEqual(planRuns(m.spec).map((_, i) => full.runs[i].id));
    expect(canonicalRuns(m.runs)).toEqual(canonicalRuns(full.runs));
    expect(readFileSync(join(merged, 'report.md'), 'utf8')).toContain('| q | sgd |');
  });

  it('bad --shard is a usage error', async () => {
    expectUsageError(
      await cli('compare', '--problem', 'beale', '--shard', '3/2', '--out', tmp()),
      /Invalid shard '3\/2'/,
    );
  });
});
