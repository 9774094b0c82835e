/**
 * Screenshot of the playground for the README (docs/playground-screenshot.png): builds the site
 * with Vite, serves it on 127.0.0.1, and in headless Chromium (wasm backend) runs the Rosenbrock
 * trajectories, trains the MNIST models for STEPS steps and computes the spectrum of the K-FAC
 * model, then takes a full-page PNG.
 *
 *   npx tsx scripts/playground-screenshot.ts [out.png] [steps]
 *
 * Exits 0 with a note when chromium is not installed (CHROMIUM_PATH, default /usr/bin/chromium).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';
import { build } from 'vite';

const root = fileURLToPath(new URL('..', import.meta.url));
const [out = join(root, 'docs/playground-screenshot.png'), steps = '150'] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) {
  process.stderr.write(`playground-screenshot: no Chromium at ${CHROMIUM}; skipped\n`);
  process.exit(0);
}

const outDir = mkdtempSync(join(tmpdir(), 'curvature-playground-'));
await build({
  configFile: join(root, 'playground/vite.config.ts'),
  logLevel: 'warn',
  build: { outDir, emptyOutDir: true },
});
const types: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.wasm': 'application/wasm',
};
const server = createServer((req, res) => {
  let file = join(outDir, normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)));
  if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
  if (!file.startsWith(outDir) || !existsSync(file)) return void res.writeHead(404).end();
  res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
});
await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/?backend=wasm`;

const browser = await puppeteer.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
  ],
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1240, height: 1000, deviceScaleFactor: 0.75 });
  page.on('pageerror', (e) => process.stderr.write(`pageerror: ${String(e)}\n`));
  page.on('console', (m) => m.type() === 'error' && process.stderr.write(`console.error: ${m.text()}\n`));
  await page.goto(url);
  const wait = (expr: string) => page.waitForFunction(expr, { timeout: 600_000, polling: 100 });
  await wait(`document.body.dataset.trajectories === 'done'`);
  await page.$eval('#mnist-steps', (el, s) => ((el as unknown as { value: string }).value = s), steps);
  await page.click('#mnist-train');
  await wait(`document.body.dataset.mnist === 'done'`);
  await page.select('#spec-model', 'kfac');
  await page.click('#spec-run');
  await wait(`document.body.dataset.spectrum === 'done'`);
  await page.evaluate('window.scrollTo(0, 0)');
  await page.screenshot({ path: out, fullPage: true });
  process.stdout.write(`wrote ${out} (${statSync(out).size} bytes)\n`);
} finally {
  await browser.close();
  server.close();
  rmSync(outDir, { recursive: true, force: true });
}
