// A real browser: the main entry bundled by esbuild for the browser, served on 127.0.0.1, run in
// headless Chromium (Debian's `chromium`, installed by .ci/run when missing) on the wasm and
// WebGL (SwiftShader) backends. SGD, Adam, K-FAC, Shampoo and HessianFree train a small model
// through model.fit (the loss falls), and a Hessian-vector product equals the Node result.
import * as tf from '@tensorflow/tfjs';
import { existsSync, readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'puppeteer-core';
import {
  PAGE_HTML,
  bundleForBrowser,
  chromiumAvailable,
  openTestPage,
  serveFiles,
  type ServedFile,
} from './helpers/chromium.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hvp, initBackend } from '../src/index.js';
import type { SuiteResult } from './browser/page.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const available = chromiumAvailable('test/browser.test.ts');

const wasmDir = join(dirname(createRequire(join(root, 'package.json')).resolve('@tensorflow/tfjs-backend-wasm')), '..');

let server: Server | undefined;
let browser: Browser | undefined;
let page: Page | undefined;
const problems: string[] = [];

async function startServer(): Promise<string> {
  const wasmFile = (path: string): ServedFile | undefined => {
    const file = /^\/wasm\/[\w.-]+\.wasm$/.test(path) ? join(wasmDir, 'dist', path.slice(6)) : '';
    return file && existsSync(file) ? ['application/wasm', readFileSync(file)] : undefined;
  };
  const html: ServedFile = ['text/html', PAGE_HTML];
  const served = await serveFiles(
    { '/': html, '/index.html': html, '/page.js': ['text/javascript', await bundleForBrowser('test/browser/page.ts')] },
    wasmFile,
  );
  server = served.server;
  return served.url;
}

describe.skipIf(!available)('in headless Chromium', () => {
  beforeAll(async () => {
    ({ browser, page } = await openTestPage(await startServer(), problems));
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((ok) => (server ? server.close(ok) : ok(undefined)));
  });

  let nodeHvp: number[];
  beforeAll(async () => {
    await initBackend('cpu');
    const x = tf.tensor1d([0.3, -0.7, 1.2, 0.05]);
    const v = tf.tensor1d([1, -2, 0.5, 3]);
    const [hv] = hvp((y: tf.Tensor) => tf.sum(tf.square(tf.tanh(tf.mul(y, tf.sigmoid(y))))) as tf.Scalar, [x], [v]);
    nodeHvp = Array.from(hv!.dataSync());
    tf.dispose([x, v, hv!]);
  });

  for (const backend of ['wasm', 'webgl']) {
    it(`trains with SGD, Adam, K-FAC, Shampoo and HessianFree on ${backend}; HVP equals Node's`, async () => {
      const r = (await page!.evaluate(
        (b) => (globalThis as unknown as { runSuite(b: string): Promise<unknown> }).runSuite(b),
        backend,
      )) as SuiteResult;
      expect(r.backend).toBe(backend);
      for (const [name, losses] of Object.entries(r.losses)) {
        expect(losses.every(Number.isFinite), `${name} on ${backend}: ${losses.join(', ')}`).toBe(true);
        expect(losses.at(-1)!, `${name} on ${backend}: ${losses.join(', ')}`).toBeLessThan(0.8 * losses[0]!);
      }
      expect(Object.keys(r.losses).sort()).toEqual(['adam', 'hessian-free', 'kfac', 'sgd', 'shampoo']);
      for (let i = 0; i < nodeHvp.length; i++) {
        expect(Math.abs(r.hvp[i]! - nodeHvp[i]!)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(nodeHvp[i]!)));
      }
      expect(problems).toEqual([]);
    }, 120_000);
  }

  it('a requested backend that cannot initialise is an error, not a fallback', async () => {
    const message = await page!.evaluate(async () => {
      try {
        await (globalThis as unknown as { runSuite(b: string): Promise<unknown> }).runSuite('webgpu');
        return 'no error';
      } catch (e) {
        return String(e);
      }
    });
    expect(message).toMatch(/Backend 'webgpu' is unavailable/);
  });
});
