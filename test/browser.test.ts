// A real browser: the main entry bundled by esbuild for the browser, served on 127.0.0.1, run in
// headless Chromium (Debian's `chromium`, installed by .ci/run when missing) on the wasm and
// WebGL (SwiftShader) backends. SGD, Adam, K-FAC, Shampoo and HessianFree train a small model
// through model.fit (the loss falls), and a Hessian-vector product equals the Node result.
import * as tf from '@tensorflow/tfjs';
import { build } from 'esbuild';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'puppeteer-core';
import { chromiumAvailable, launchChromium, watchPage } from './helpers/chromium.js';
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
  const bundle = await build({
    entryPoints: [join(root, 'test/browser/page.ts')],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2020',
    write: false,
    logLevel: 'silent',
  });
  const js = bundle.outputFiles[0]!.contents;
  const html =
    '<!doctype html><meta charset="utf-8"><title>curvature</title><script type="module" src="/page.js"></script>';
  server = createServer((req, res) => {
    const url = req.url ?? '/';
    if (url === '/' || url === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html' }).end(html);
    } else if (url === '/page.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(js);
    } else if (url === '/favicon.ico') {
      res.writeHead(204).end();
    } else if (/^\/wasm\/[\w.-]+\.wasm$/.test(url) && existsSync(join(wasmDir, 'dist', url.slice(6)))) {
      res.writeHead(200, { 'content-type': 'application/wasm' }).end(readFileSync(join(wasmDir, 'dist', url.slice(6))));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((ok) => server!.listen(0, '127.0.0.1', ok));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

describe.skipIf(!available)('in headless Chromium', () => {
  beforeAll(async () => {
    const url = await startServer();
    browser = await launchChromium();
    page = await browser.newPage();
    watchPage(page, problems);
    await page.goto(url);
    await page.waitForFunction('globalThis.pageReady === true', { timeout: 30_000 });
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
