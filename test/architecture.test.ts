// The layers of the import graph (ARCHITECTURE.md): the harness depends on optimizers and
// problems only through factories (HarnessRegistry), never by import; the optimizers never import
// the harness's code; the main entry reaches neither (test/browser-safe.test.ts checks the rest).
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Project files reachable from `entry` (third-party packages left external). */
async function reachable(entry: string): Promise<string[]> {
  const r = await build({
    entryPoints: [entry],
    absWorkingDir: root,
    bundle: true,
    platform: 'node',
    format: 'esm',
    write: false,
    metafile: true,
    logLevel: 'silent',
    packages: 'external',
  });
  return Object.keys(r.metafile.inputs);
}

describe('import layers', () => {
  it('the harness imports no optimizer and no problem', async () => {
    const files = await reachable('src/harness/index.ts');
    expect(files.some((f) => f.startsWith('src/harness/'))).toBe(true);
    expect(files.filter((f) => f.startsWith('optimizers/') || f.startsWith('experiments/'))).toEqual([]);
  });

  it('the optimizers import no harness code, problem, report or CLI', async () => {
    const files = await reachable('optimizers/index.ts');
    expect(files.filter((f) => /^(src\/(harness|report|cli)\/|experiments\/)/.test(f))).toEqual([]);
  });

  it('reports import no problem or optimizer', async () => {
    const files = await reachable('src/report/index.ts');
    expect(files.filter((f) => f.startsWith('optimizers/') || f.startsWith('experiments/'))).toEqual([]);
  });
});
