// Backend choice and a quiet import.
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, afterEach } from 'vitest';
import { initBackend } from '../src/backend.js';

describe('initBackend', () => {
  afterEach(() => {
    delete process.env.CURVATURE_BACKEND;
  });

  it('prefers tfjs-node when it loads, else wasm', async () => {
    const name = await initBackend();
    let nodeInstalled = true;
    try {
      await import('@tensorflow/tfjs-node' as string);
    } catch {
      nodeInstalled = false;
    }
    expect(name).toBe(nodeInstalled ? 'tensorflow' : 'wasm');
    expect(tf.getBackend()).toBe(name);
  });

  it('honours a preferred backend and CURVATURE_BACKEND', async () => {
    expect(await initBackend('cpu')).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    process.env.CURVATURE_BACKEND = 'wasm';
    expect(await initBackend()).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
  });

  it('rejects an unknown backend by name', async () => {
    await expect(initBackend('gpu')).rejects.toThrow(
      /Unknown backend 'gpu': expected one of tensorflow, webgpu, webgl, wasm, cpu/,
    );
    process.env.CURVATURE_BACKEND = 'gpu';
    await expect(initBackend()).rejects.toThrow(/Unknown backend 'gpu'.*CURVATURE_BACKEND/);
  });

  it('importing the package and choosing a backend prints nothing', () => {
    const root = fileURLToPath(new URL('..', import.meta.url));
    const dir = mkdtempSync(join(tmpdir(), 'curvature-quiet-'));
    const file = join(dir, 'quiet.mts');
    writeFileSync(
      file,
      [
        `const c = await import(${JSON.stringify(join(root, 'src/index.ts'))});`,
        `const tf = await import(${JSON.stringify(createRequire(join(root, 'package.json')).resolve('@tensorflow/tfjs'))});`,
        "for (const b of ['cpu', 'wasm']) { await c.initBackend(b); tf.square(tf.tensor([1, 2])).dataSync(); }",
      ].join('\n'),
    );
    const run = spawnSync(process.execPath, ['--import', 'tsx', file], { cwd: root, encoding: 'utf8' });
    rmSync(dir, { recursive: true, force: true });
    expect(run.status).toBe(0);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe('');
  });
});
