// The CLI's contradicting flags, --version, unusable --out, line progress without a terminal,
// resume accounting and tune's reruns (issue 14: what a new user hit).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import type { CliIO } from '../src/cli.js';
import { cli, expectUsageError, tmpDir } from './helpers/cli.js';
import { progress } from '../src/cli/io.js';
import { compare, type ComparisonSpec } from '../src/harness/compare.js';
import { harnessRegistry } from '../experiments/index.js';
import { planResume } from '../src/harness/resume.js';
import { readResults } from '../src/report/results.js';

const tmp = () => tmpDir('curvature-flags-');

describe('contradicting flags are one-line errors with exit code 2', () => {
  const run = ['run', '--problem', 'beale', '--optimizer', 'adam'];
  it('--steps with --epochs', async () => {
    expectUsageError(await cli(...run, '--steps', '5', '--epochs', '1'), /--steps.*cannot be used with.*--epochs/);
  });
  it('--lr with --set learningRate', async () => {
    expectUsageError(
      await cli(...run, '--lr', '0.1', '--set', 'learningRate=0.2'),
      /learning rate once: --lr or --set learningRate/,
    );
  });
  it('--shard with --workers', async () => {
    expectUsageError(
      await cli(
        'compare',
        '--problem',
        'beale',
        '--optimizers',
        'sgd',
        '--steps',
        '3',
        '--shard',
        '1/2',
        '--workers',
        '2',
        '--out',
        tmp(),
      ),
      /--shard .*--workers .*give one of them/,
    );
  });
  it('--grid with --values', async () => {
    expectUsageError(
      await cli('tune', '--problem', 'beale', '--optimizer', 'sgd', '--grid', '1e-3:1:3', '--values', '0.1,0.2'),
      /--grid.*cannot be used with.*--values/,
    );
  });
  it('--set of the tuned option', async () => {
    expectUsageError(
      await cli('tune', '--problem', 'beale', '--optimizer', 'sgd', '--values', '0.1', '--set', 'learningRate=0.3'),
      /fixes the option that --param learningRate tunes/,
    );
  });
  it('--problem-option with --suite', async () => {
    expectUsageError(
      await cli('compare', '--suite', 'quick', '--problem-option', 'dim=3', '--out', tmp()),
      /--problem-option applies to --problem only/,
    );
  });
  it('--set for an optimizer that is not in the run', async () => {
    expectUsageError(
      await cli(
        'compare',
        '--problem',
        'beale',
        '--optimizers',
        'adam',
        '--set',
        'sgd.momentum=0.9',
        '--steps',
        '2',
        '--out',
        tmp(),
      ),
      /--set sgd.momentum: optimizer 'sgd' is not in this run \(adam\)/,
    );
  });
  it('a negative target', async () => {
    expectUsageError(await cli(...run, '--target', '-1'), /--target.*expected a positive number/);
  });
  it('--out on a pseudo-filesystem fails at once instead of hanging', async () => {
    expectUsageError(
      await cli(...run, '--steps', '2', '--out', '/proc/curvature-x/y'),
      /Cannot write to --out '\/proc\/curvature-x\/y'/,
    );
  });
});

describe('CLI conveniences', () => {
  it('--version prints the package version', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    const r = await cli('--version');
    expect(r.code).toBe(0);
    expect(r.out.trim()).toBe(pkg.version);
  });

  it('without a terminal, progress is a line on stderr at most every 5 s', () => {
    let t = 0;
    const lines: string[] = [];
    const io: CliIO = { out: () => {}, err: (s) => lines.push(s), isTTY: false };
    const p = progress(io, true, 'runs', () => t);
    p.start(10, 'compare');
    for (let i = 1; i <= 10; i++) {
      t += 1200;
      p.update(i, { info: `run ${i}` });
    }
    p.stop();
    // start, then after 6 s (i = 5) and 12 s (i = 10)
    expect(lines).toEqual(['compare: 0/10 runs\n', 'compare: 5/10 runs run 5\n', 'compare: 10/10 runs run 10\n']);
    const quiet: string[] = [];
    progress({ ...io, err: (s) => quiet.push(s) }, false, 'runs').start(3, 'x');
    expect(quiet).toEqual([]);
  });
});

describe('resume accounting (planResume)', () => {
  const spec: ComparisonSpec = {
    problems: [{ problem: 'beale', budget: { steps: 3 } }],
    optimizers: ['sgd', 'adam'],
    optimizerOptions: { sgd: { learningRate: 1e-3 }, adam: { learningRate: 1e-2 } },
    seeds: [0, 1],
  };
  beforeAll(async () => {
    await initBackend('cpu');
  });
  it('counts planned, reusable and foreign results', async () => {
    expect(planResume(spec, null)).toEqual({
      planned: 4,
      inShard: 4,
      reused: 0,
      matching: 0,
      differentComparison: false,
    });
    expect(planResume(spec, { index: 2, count: 2 }).inShard).toBe(2);
    const half = await compare(spec, { registry: harnessRegistry, shard: { index: 1, count: 2 } });
    expect(half.runs.map((r) => r.final.error)).toEqual([undefined, undefined]);
    expect(planResume(spec, { index: 1, count: 2 }, half)).toEqual({
      planned: 4,
      inShard: 2,
      reused: 2,
      matching: 2,
      differentComparison: false,
    });
    // The same runs seen from the whole comparison: reusable, but the results came from a shard.
    expect(planResume(spec, null, half)).toMatchObject({ reused: 2, matching: 2, differentComparison: true });
    const failed = {
      ...half,
      runs: half.runs.map((r, i) => (i === 0 ? { ...r, final: { ...r.final, error: 'boom' } } : r)),
    };
    expect(planResume(spec, { index: 1, count: 2 }, failed)).toMatchObject({ reused: 1, matching: 2 });
  });
});

describe('tune', () => {
  it('reruns the best value over the whole budget and writes them all to results.json', async () => {
    const out = tmp();
    const r = await cli(
      'tune',
      '--problem',
      'beale',
      '--optimizer',
      'adam',
      '--values',
      '0.01,0.1',
      '--seeds',
      '2',
      '--steps',
      '30',
      '--target',
      '10',
      '--out',
      out,
      '--json',
    );
    expect(r.code, r.err).toBe(0);
    const printed = JSON.parse(r.out) as {
      best: number;
      final: { steps: number; stopReason: string; reachedTarget: boolean }[];
    };
    expect(printed.final).toHaveLength(2);
    for (const f of printed.final) {
      expect(f.steps).toBe(30); // not stopped at the (easy) target
      expect(f.stopReason).toBe('steps');
      expect(f.reachedTarget).toBe(true);
    }
    const results = readResults(join(out, 'results.json'));
    expect(results.pending).toBe(0);
    expect(results.runs).toHaveLength(2);
  });
});

describe('compare summary', () => {
  it('fits 120 columns and says that runs stop at the target', async () => {
    const r = await cli(
      'compare',
      '--problem',
      'quadratic',
      '--problem-option',
      'dim=50',
      '--optimizers',
      'hessian-free,shampoo',
      '--seeds',
      '1',
      '--steps',
      '3',
      '--out',
      tmp(),
      '--no-progress',
    );
    expect(r.code, r.err).toBe(0);
    const width = Math.max(...r.out.split('\n').map((l) => l.length));
    expect(width).toBeLessThanOrEqual(120);
    expect(r.out).toMatch(/Runs stop at the\s+target/);
    expect(r.out).toMatch(/hessian-free/);
  });
});

describe('optimizers a comparison excludes', () => {
  it('are grouped per problem and reason, and summarised when many', async () => {
    const { exclusionLines, summaryText } = await import('../src/report/tables.js');
    const problemsOf = (n: number) =>
      Array.from({ length: n }, (_, i) => ({
        id: `q${i}`,
        problem: 'quadratic',
        budget: { steps: 1 },
        exclude: { sgd: 'one optimizer per entry', adam: 'one optimizer per entry', newton: 'too large' },
      }));
    const results = (n: number) =>
      ({
        spec: { problems: problemsOf(n), optimizers: ['sgd', 'adam', 'newton', 'shampoo'], seeds: [0] },
        summary: [],
      }) as never;
    expect(exclusionLines(results(1))).toEqual(['q0: sgd, adam (one optimizer per entry)', 'q0: newton (too large)']);
    expect(summaryText(results(2))).toMatch(
      /Not run \(not applicable\): q0: sgd, adam \(one optimizer per entry\); q0: newton/,
    );
    expect(summaryText(results(10))).toMatch(
      /Not run \(not applicable\): optimizers excluded on 10 problem entries, listed in report.md\.$/,
    );
  });
});
