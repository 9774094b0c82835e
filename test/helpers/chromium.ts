// Headless Chromium for the browser tests (Debian's `chromium`; .ci/run installs it when missing).
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';

const root = fileURLToPath(new URL('../..', import.meta.url));

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Whether Chromium is here; in CI its absence is an error (the suite must not skip silently). */
export function chromiumAvailable(testFile: string): boolean {
  const available = existsSync(CHROMIUM);
  if (!available && process.env.CI) throw new Error(`${CHROMIUM} is missing: .ci/run installs Debian's chromium`);
  if (!available) console.warn(`${testFile} skipped: no Chromium at ${CHROMIUM} (set CHROMIUM_PATH)`);
  return available;
}

/** Headless Chromium with WebGL on SwiftShader, no background network traffic. */
export function launchChromium(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--use-angle=swiftshader',
      '--enable-unsafe-swiftshader',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/** Collect page errors, console errors and failed or >= 400 responses into `problems`. */
export function watchPage(page: Page, problems: string[]): void {
  page.on('pageerror', (e) => problems.push(`pageerror: ${String(e)}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console.error: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
}

/** `entry` (a path from the repository root) bundled by esbuild as a browser ES module. */
export async function bundleForBrowser(entry: string): Promise<Uint8Array> {
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

/** A served file: content type and body. */
export type ServedFile = [contentType: string, body: Uint8Array | string];

/**
 * An http server on 127.0.0.1 (port chosen by the OS) serving `files` by exact path, then
 * `fallback(path)` when given; the favicon is a 204, anything else a 404.
 */
export async function serveFiles(
  files: Record<string, ServedFile>,
  fallback?: (path: string) => ServedFile | undefined,
): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const path = req.url ?? '/';
    const f = files[path] ?? fallback?.(path);
    if (f) res.writeHead(200, { 'content-type': f[0] }).end(f[1]);
    else res.writeHead(path === '/favicon.ico' ? 204 : 404).end();
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` };
}

/** The html page that loads /page.js as a module. */
export const PAGE_HTML =
  '<!doctype html><meta charset="utf-8"><title>curvature</title><script type="module" src="/page.js"></script>';

/** Chromium on `url`, its problems watched, once the page sets `globalThis.pageReady`. */
export async function openTestPage(url: string, problems: string[]): Promise<{ browser: Browser; page: Page }> {
  const browser = await launchChromium();
  const page = await browser.newPage();
  watchPage(page, problems);
  await page.goto(url);
  await page.waitForFunction('globalThis.pageReady === true', { timeout: 30_000 });
  return { browser, page };
}
