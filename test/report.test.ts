import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { compare, type ComparisonResults } from '../src/harness/index.js';
import { parseResults, readResults, writeReport, markdownReport } from '../src/report/index.js';

let results: ComparisonResults;
beforeAll(async () => {
  await initBackend('wasm');
  results = await compare({
    problems: [
      { id: 'q', problem: 'quadratic', options: { dim: 4, condition: 10 }, budget: { steps: 40 }, target: 1e-2 },
      { id: 'iris', problem: 'logreg-iris', budget: { steps: 10 }, evalEvery: 5, target: 0.9 },
    ],
    optimizers: ['sgd', 'adam'],
    optimizerOptions: { sgd: { learningRate: 0.5 }, adam: { learningRate: 0.1 } },
    seeds: [0, 1],
  });
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
});
