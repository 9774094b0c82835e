// `curvature compare --workers K` runs K child processes (one shard each) and merges them: the
// merged results equal an unsharded in-process run of the same comparison.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { main, type CliIO } from '../src/cli.js';
import { readResults, canonicalRuns } from '../src/report/results.js';

const run = promisify(execFile);

const config = {
  problems: [
    { id: 'q', problem: 'quadratic', options: { dim: 4, condition: 10 }, budget: { steps: 15 } },
    { id: 'b', problem: 'beale', budget: { steps: 10 } },
  ],
  optimizers: ['sgd', 'adam'],
  optimizerOptions: { sgd: { learningRate: 0.05 }, adam: { learningRate: 0.05 } },
  seeds: 2,
};

describe('compare --workers', () => {
  it('two worker processes give the results of one in-process run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'curvature-workers-'));
    const cfg = join(dir, 'config.json');
    writeFileSync(cfg, JSON.stringify(config));

    const io: CliIO = { out: () => {}, err: () => {}, isTTY: false };
    expect(await main(['compare', '--config', cfg, '--out', join(dir, 'single'), '--no-progress'], io)).toBe(0);

    // Through the real command line (tsx), so the workers are real child processes.
    const tsx = join(process.cwd(), 'node_modules', '.bin', 'tsx');
    const r = await run(
      tsx,
      ['src/cli.ts', 'compare', '--config', cfg, '--workers', '2', '--out', join(dir, 'par'), '--no-progress'],
      {
        cwd: process.cwd(),
      },
    );
    expect(r.stderr).toMatch(/2 workers, one shard each/);
    expect(existsSync(join(dir, 'par', 'shards', '1', 'results.json'))).toBe(true);
    expect(existsSync(join(dir, 'par', 'shards', '2', 'results.json'))).toBe(true);
    const single = readResults(join(dir, 'single', 'results.json'));
    const par = readResults(join(dir, 'par', 'results.json'));
    expect(par.runs).toHaveLength(8);
    expect(par.shard).toBeNull();
    expect(canonicalRuns(par.runs)).toEqual(canonicalRuns(single.runs));
    expect(existsSync(join(dir, 'par', 'report.html'))).toBe(true);
  }, 120_000);
});
