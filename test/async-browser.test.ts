// src/async in a real browser (headless Chromium, test/helpers/chromium.ts): the main entry and
// the worker entry bundled by esbuild; the service runs in a module Web Worker, equals the inline
// eigensolver, cannot block the main thread (AsyncRefresh keeps the stale result instead), and a
// worker that fails to load falls back to inline with one explanation.
import { build } from 'esbuild';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumAvailable, launchChromium, watchPage } from './helpers/chromium.js';
import type { AsyncPageResult } from './browser/async-page.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const available = chromiumAvailable('test/async-browser.test.ts');

let server: Server | undefined;
let browser: Browser | undefined;
let page: Page | undefined;
const problems: string[] = [];

async function bundle(entry: string): Promise<Uint8Array> {
  const r = await build({
    entryPoints: [entry],
    absWorkingDir: root,
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2020',
    write: false,
    logLevel: 'silent',
  });
  return r.outputFiles[0]!.contents;
}

describe.skipIf(!available)('matrix worker in headless Chromium', () => {
  beforeAll(async () => {
    const [pageJs, workerJs] = await Promise.all([bundle('test/browser/async-page.ts'), bundle('src/async/worker.ts')]);
    const files: Record<string, [string, Uint8Array | string]> = {
      '/': ['text/html', '<!doctype html><meta charset="utf-8"><script type="module" src="/page.js"></script>'],
      '/page.js': ['text/javascript', pageJs],
      '/worker.js': ['text/javascript', workerJs],
      '/broken-worker.js': ['text/javascript', 'throw new Error("broken worker");'],
    };
    server = createServer((req, res) => {
      const f = files[req.url ?? '/'];
      if (f) res.writeHead(200, { 'content-type': f[0] }).end(f[1]);
      else res.writeHead(req.url === '/favicon.ico' ? 204 : 404).end();
    });
    await new Promise<void>((ok) => server!.listen(0, '127.0.0.1', ok));
    browser = await launchChromium();
    page = await browser.newPage();
    watchPage(page, problems);
    await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    await page.waitForFunction('globalThis.pageReady === true', { timeout: 30_000 });
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((ok) => (server ? server.close(ok) : ok(undefined)));
  });

  it('eigh in a Web Worker equals inline; AsyncRefresh never blocks; a broken worker falls back', async () => {
    const r = (await page!.evaluate(() =>
      (globalThis as unknown as { runAsync(): Promise<unknown> }).runAsync(),
    )) as AsyncPageResult;
    expect(r.mode).toBe('worker');
    expect(r.maxDiff).toBeLessThanOrEqual(1e-12);
    expect(r.waitError).toMatch(/cannot block/);
    // Step 0 inline (no result yet), step 1 submitted, step 2 due but not blocking: still step 0's.
    expect(r.refreshSteps).toEqual([0, 0, 0]);
    expect(r.refreshStats).toMatchObject({ inline: 1, submitted: 1, blocked: 0 });
    expect(r.swappedAt).toBeGreaterThanOrEqual(3);
    expect(r.fallbackMode).toBe('inline');
    expect(r.fallbackError).toMatch(/Web Worker failed to load or run.*broken worker/);
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toMatch(/computing inline on this thread instead/);
    expect(problems).toEqual([]);
  }, 60_000);
});
