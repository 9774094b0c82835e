// src/async in a real browser (headless Chromium, test/helpers/chromium.ts): the main entry and
// the worker entry bundled by esbuild; the service runs in a module Web Worker, equals the inline
// eigensolver, cannot block the main thread (AsyncRefresh keeps the stale result instead), and a
// worker that fails to load falls back to inline with one explanation.
import type { Server } from 'node:http';
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PAGE_HTML, bundleForBrowser, chromiumAvailable, openTestPage, serveFiles } from './helpers/chromium.js';
import type { AsyncPageResult } from './browser/async-page.js';

const available = chromiumAvailable('test/async-browser.test.ts');

let server: Server | undefined;
let browser: Browser | undefined;
let page: Page | undefined;
const problems: string[] = [];

describe.skipIf(!available)('matrix worker in headless Chromium', () => {
  beforeAll(async () => {
    const [pageJs, workerJs] = await Promise.all([
      bundleForBrowser('test/browser/async-page.ts'),
      bundleForBrowser('src/async/worker.ts'),
    ]);
    const served = await serveFiles({
      '/': ['text/html', PAGE_HTML],
      '/page.js': ['text/javascript', pageJs],
      '/worker.js': ['text/javascript', workerJs],
      '/broken-worker.js': ['text/javascript', 'throw new Error("broken worker");'],
    });
    server = served.server;
    ({ browser, page } = await openTestPage(served.url, problems));
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
