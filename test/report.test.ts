import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { compare, type ComparisonResults } from '../src/harness/index.js';
import { harnessRegistry } from '../experiments/index.js';
import {
  htmlReport,
  parseResults,
  readResults,
  writeReport,
  markdownReport,
  optimizerColors,
} from '../src/report/index.js';

let results: ComparisonResults;
beforeAll(async () => {
  await initBackend('wasm');
  results = await compare(
    {
      problems: [
        { id: 'q', problem: 'quadratic', options: { dim: 4, condition: 10 }, budget: { steps: 40 }, target: 1e-2 },
        { id: 'iris', problem: 'logreg-iris', budget: { steps: 10 }, evalEvery: 5, target: 0.9 },
      ],
      optimizers: ['sgd', 'adam'],
      optimizerOptions: { sgd: { learningRate: 0.5 }, adam: { learningRate: 0.1 } },
      seeds: [0, 1],
    },
    { registry: harnessRegistry },
  );
});

describe('reports', () => {
  it('results.json round-trips with the versioned schema', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'curvature-report-'));
    await writeReport(results, dir);
    const back = readResults(join(dir, 'results.json'));
    expect(back.schema).toBe('curvature-results');
    expect(back.version).toBe(2);
    expect(back.runs[0]).toMatchObject({ optimizer: 'sgd', seed: 0 });
    expect(back.runs[0].records[0]).toHaveProperty('loss');
    expect(back.runs[0].final).toHaveProperty('trainLoss');
    expect(back).toEqual(JSON.parse(JSON.stringify(results)));
  });

  it('rejects files that are not results, naming the problem', () => {
    expect(() => parseResults('{"schema":"x"}', 'r.json')).toThrow(/r\.json: not a curvature results file/);
    expect(() => parseResults('nope', 'r.json')).toThrow(/not valid JSON/);
  });

  it('report.md has the summary table with mean ± std and steps to target', () => {
    const md = markdownReport(results);
    expect(md).toMatch(/\| problem \| optimizer \| final train loss/);
    expect(md).toMatch(/\| q \| sgd \| [0-9.e-]+ ± [0-9.e-]+ \|/);
    expect(md).toContain('Performance profiles');
  });

  it('report.html is self-contained with SVG plots and tables', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'curvature-report-'));
    await writeReport(results, dir);
    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    expect(html).not.toMatch(/<script|<link|src="http/);
    expect((html.match(/<svg/g) ?? []).length).toBeGreaterThanOrEqual(5); // 2 per problem + profiles
    expect(html).toContain('training loss vs step');
    expect(html).toContain('Performance profile');
    expect(html).toContain('<table>');
  });

  it('says that runs stop at the target, so final losses are not comparable', async () => {
    expect(markdownReport(results)).toMatch(/Runs stop when they reach the target.*final losses are NOT comparable/s);
    expect(await htmlReport(results)).toMatch(/Runs stop when they reach the target.*final losses are NOT comparable/s);
  });

  it('profiles in steps, seconds and gradient-equivalents, each plotted', async () => {
    expect(results.profiles.map((p) => p.measure)).toEqual(['steps', 'seconds', 'gradEquivalents']);
    const html = await htmlReport(results);
    expect(html).toContain('Performance profile: gradient-equivalents to target');
    expect(markdownReport(results)).toContain('### gradient-equivalents to target');
  });

  it('one colour per optimizer in every chart, also where an optimizer is missing', async () => {
    // sgd (the first optimizer) is not run on 'iris': a per-chart colour scale would give adam
    // sgd's colour there.
    const spec = {
      ...results.spec,
      problems: results.spec.problems.map((p) => (p.id === 'iris' ? { ...p, exclude: { sgd: 'test' } } : p)),
    };
    const partial: ComparisonResults = {
      ...results,
      spec,
      runs: results.runs.filter((r) => !(r.problemId === 'iris' && r.optimizer === 'sgd')),
    };
    const colors = optimizerColors(partial);
    expect(colors.domain).toEqual(['sgd', 'adam']);
    expect(new Set(colors.range).size).toBe(2);
    const html = await htmlReport(partial);
    const lines = [
      ...html.matchAll(
        /<path aria-label="[^"]*optimizer: ([\w-]+)[^"]*" role="graphics-symbol" aria-roledescription="line mark"[^>]*?stroke="(#[0-9a-f]{6})"/g,
      ),
    ];
    expect(lines.length).toBeGreaterThan(8);
    const seen = new Map<string, Set<string>>();
    for (const [, opt, stroke] of lines) {
      if (!seen.has(opt)) seen.set(opt, new Set());
      seen.get(opt)!.add(stroke);
    }
    expect([...seen.keys()].sort()).toEqual(['adam', 'sgd']);
    for (const [opt, strokes] of seen) expect([...strokes]).toEqual([colors.range[colors.domain.indexOf(opt)]]);
    // The iris charts have adam only, in adam's colour.
    const iris = html.slice(html.indexOf('<h3>iris</h3>'));
    const irisLines = [
      ...iris.matchAll(
        /optimizer: ([\w-]+)[^"]*" role="graphics-symbol" aria-roledescription="line mark"[^>]*?stroke="(#[0-9a-f]{6})"/g,
      ),
    ];
    expect(irisLines.length).toBeGreaterThan(0);
    for (const [, opt, stroke] of irisLines) {
      expect(opt).toBe('adam');
      expect(stroke).toBe(colors.range[1]);
    }
  });
});
