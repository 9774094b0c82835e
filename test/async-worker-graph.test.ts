// The matrix worker's module graph (src/async/worker.ts) loads no tfjs: bundling the worker with
// esbuild must reach no '@tensorflow/*' import (tfjs costs ~1-2 s of worker start-up and a
// 1.7 MB worker chunk). The same check on src/linalg/index.ts shows the test can fail.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Every import of an npm package in the bundle of `entry`, as 'importer -> package'. */
async function packageImports(entry: string): Promise<{ inputs: string[]; packages: string[] }> {
  const r = await build({
    entryPoints: [entry],
    absWorkingDir: root,
    bundle: true,
    platform: 'browser',
    format: 'esm',
    write: false,
    metafile: true,
    logLevel: 'silent',
    packages: 'external',
  });
  const inputs = Object.keys(r.metafile.inputs);
  const packages: string[] = [];
  for (const [file, input] of Object.entries(r.metafile.inputs)) {
    for (const imp of input.imports) if (imp.external) packages.push(`${file} -> ${imp.path}`);
  }
  return { inputs, packages };
}

describe('matrix worker module graph', () => {
  it('src/async/worker.ts imports no @tensorflow package', async () => {
    const { inputs, packages } = await packageImports('src/async/worker.ts');
    // It does reach src/linalg's eigh, inverse roots and Cholesky (the graph is the real one).
    for (const f of ['src/linalg/eigh.ts', 'src/linalg/roots.ts', 'src/linalg/cholesky.ts', 'src/linalg/matrix.ts'])
      expect(inputs).toContain(f);
    expect(packages.filter((p) => p.includes('@tensorflow/'))).toEqual([]);
  });

  it('the check detects tfjs where it is imported (src/linalg/index.ts)', async () => {
    const { packages } = await packageImports('src/linalg/index.ts');
    expect(packages).toContain('src/linalg/roots-f32.ts -> @tensorflow/tfjs');
    expect(packages).toContain('src/linalg/tensor.ts -> @tensorflow/tfjs');
  });
});

describe('tfjs-free src/linalg/roots.ts', () => {
  it("rejects 'newton-f32' with an error naming the package entry", async () => {
    const { inverseRoot } = await import('../src/linalg/roots.js');
    const A = [
      [2, 0],
      [0, 3],
    ];
    expect(() => inverseRoot(A, 2, { method: 'newton-f32' })).toThrow(/newton-f32.*src\/linalg\/index\.ts/);
    expect(inverseRoot(A, 2).root.data[0]).toBeCloseTo(1 / Math.SQRT2, 14);
  });
});
