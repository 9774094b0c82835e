// The playground (playground/, issue 15 deliverable 4) in a real browser: the site is built with
// Vite into a temporary folder, served on 127.0.0.1 and loaded in headless Chromium (Debian's
// `chromium`, which .ci/run installs when missing) on the wasm backend. Checks: the page renders
// (the screenshot is not blank and shows the trajectory colours), the trajectories are drawn as
// they are computed, start where the map is clicked, follow an edited option, and Newton /
// HessianFree / Shampoo take other steps than Adam (Newton and HessianFree reach Rosenbrock's
// minimum); a few MNIST steps lower the loss of Adam, K-FAC and Shampoo; the spectrum button
// gives eigenvalues and a density; no console error, no leaked tensors.
import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'puppeteer-core';
import { chromiumAvailable, launchChromium } from './helpers/chromium.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { FUNCTIONS, getFunction } from '../playground/src/functions.js';
import {
  TRAJECTORY_OPTIMIZERS,
  parseOptionValue,
  runTrajectories as runInNode,
} from '../playground/src/trajectories.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const available = chromiumAvailable('test/playground.test.ts');

interface Trajectory {
  name: string;
  points: [number, number][];
  losses: number[];
  error?: string;
}
interface Spectrum {
  topEigenvalues: number[];
  residuals: number[];
  grid: number[];
  density: number[];
  lambdaMin: number;
  lambdaMax: number;
  numParams: number;
}
interface State {
  ready: boolean;
  backend: string;
  start: [number, number];
  trajectories: Trajectory[];
  runs: number;
  mnist: { step: number; losses: Record<string, number[]>; heldOut: Record<string, [number, number, number][]> };
  spectrum?: Spectrum;
  errors: string[];
  tensors: number;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.wasm': 'application/wasm',
};

let outDir = '';
let server: Server | undefined;
let browser: Browser | undefined;
let page: Page | undefined;
const problems: string[] = [];

const state = (): Promise<State> =>
  page!.evaluate(() => JSON.parse(JSON.stringify((globalThis as any).playground)) as State);
const waitFor = (expr: string, timeout = 60_000) => page!.waitForFunction(expr, { timeout, polling: 50 });

async function buildAndServe(): Promise<string> {
  outDir = mkdtempSync(join(tmpdir(), 'curvature-playground-'));
  const { build } = await import('vite');
  await build({
    configFile: join(root, 'playground/vite.config.ts'),
    logLevel: 'silent',
    build: { outDir, emptyOutDir: true },
  });
  server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    let file = join(outDir, path);
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
    if (!file.startsWith(outDir) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
  });
  await new Promise<void>((ok) => server!.listen(0, '127.0.0.1', ok));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

/** Runs the trajectories with `steps` steps (clicking Run) and returns them. */
async function runTrajectories(trigger: () => Promise<void>): Promise<State> {
  const before = (await state()).runs;
  await trigger();
  await waitFor(`playground.runs > ${before} && document.body.dataset.trajectories === 'done'`);
  return state();
}

const dist = (a: [number, number], b: [number, number]) => Math.hypot(a[0] - b[0], a[1] - b[1]);

// The page's pure parts, in Node (no browser needed).
describe("the playground's functions and trajectory runner", () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('evaluates each function the same in plain JavaScript and in tfjs, with value 0 and gradient 0 at the known minima', () => {
    for (const fn of FUNCTIONS) {
      for (const [x, y] of [fn.start, [0.3, -0.7], [fn.x[0], fn.y[1]], [1.7, 2.2]] as [number, number][]) {
        const v = tf.tidy(() => fn.objective(tf.tensor1d([x, y])).dataSync()[0]!);
        const js = fn.value(x, y);
        expect(Math.abs(v - js), `${fn.name} at (${x}, ${y})`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(js)));
      }
      for (const m of fn.minima) {
        // The published minima (Himmelblau's to 6 digits) are zeros of f and of its gradient.
        expect(fn.value(m[0], m[1]), `${fn.name} at ${m}`).toBeLessThan(1e-8);
        const g = tf.tidy(() =>
          tf
            .grad((p: tf.Tensor) => fn.objective(p as tf.Tensor1D))(tf.tensor1d(m))
            .dataSync(),
        );
        expect(Math.hypot(g[0]!, g[1]!), `${fn.name} gradient at ${m}`).toBeLessThan(1e-3);
      }
    }
    expect(() => getFunction('sphere')).toThrow(
      /Unknown function 'sphere': expected one of rosenbrock, beale, himmelblau, quadratic/,
    );
  });

  it('parses option text as the editors give it', () => {
    expect(parseOptionValue(' 0.05 ')).toBe(0.05);
    expect(parseOptionValue('1e-3')).toBe(1e-3);
    expect(parseOptionValue('true')).toBe(true);
    expect(parseOptionValue('false')).toBe(false);
    expect(parseOptionValue('rmsprop')).toBe('rmsprop');
    expect(parseOptionValue('')).toBe('');
  });

  it('steps every optimizer from the start; Newton solves the quadratic in one step; a bad option is reported, not thrown; no leak', async () => {
    const fn = getFunction('quadratic');
    const before = tf.memory().numTensors;
    const progress: number[] = [];
    const opts = TRAJECTORY_OPTIMIZERS.map((o) => ({ name: o.name, options: { ...o.overrides } }));
    opts.find((o) => o.name === 'rmsprop')!.options.alpha = 2;
    const t = await runInNode(fn, [-2.5, 1.5], 6, opts, async (_, step) => void progress.push(step), 2);
    expect(progress).toEqual([2, 4, 6]);
    expect(tf.memory().numTensors).toBe(before);
    const by = Object.fromEntries(t.map((r) => [r.name, r]));
    expect(by.rmsprop!.error).toMatch(/Invalid alpha: 2/);
    expect(by.rmsprop!.points).toHaveLength(1);
    for (const r of t.filter((q) => q.name !== 'rmsprop')) {
      expect(r.error, r.name).toBeUndefined();
      expect(r.points, r.name).toHaveLength(7);
      expect(r.losses.at(-1)!, r.name).toBeLessThan(r.losses[0]!);
    }
    // f = x^T A x / 2: the damped Newton step (A + 1e-3 I)^-1 A x lands within 1e-3 |x| of 0.
    expect(Math.hypot(...by.newton!.points[1]!)).toBeLessThan(1e-3 * Math.hypot(-2.5, 1.5) + 1e-6);
    expect(by.newton!.evals.hvpEvals).toBeGreaterThan(0);
    // Adam's first step: lr * g / (|g| + eps) per coordinate, i.e. lr against the sign of the gradient.
    const [x1, y1] = by.adam!.points[1]!;
    expect(x1 - -2.5).toBeCloseTo(0.05, 6);
    expect(y1 - 1.5).toBeCloseTo(-0.05, 6);
    expect(by.adam!.evals).toEqual({ lossEvals: 6, gradEvals: 6, hvpEvals: 0 });
  });
});

describe.skipIf(!available)('the playground in headless Chromium', () => {
  beforeAll(async () => {
    const url = await buildAndServe();
    // Only the site's files exist: a request for anything else (a CDN, a dataset) would 404.
    expect(readFileSync(join(outDir, 'index.html'), 'utf8')).toMatch(/src="\.\/assets\/index-[\w-]+\.js"/);
    browser = await launchChromium();
    page = await browser.newPage();
    await page.setViewport({ width: 1240, height: 1400 });
    page.on('pageerror', (e) => problems.push(`pageerror: ${String(e)}`));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console.error: ${m.text()}`);
    });
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
      if (!r.url().startsWith(url) && !r.url().startsWith('data:')) problems.push(`external request: ${r.url()}`);
    });
    await page.goto(`${url}?backend=wasm&autorun=0`);
    await waitFor(`document.body.dataset.state === 'ready'`);
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((ok) => (server ? server.close(ok) : ok(undefined)));
    if (outDir) rmSync(outDir, { recursive: true, force: true });
  });

  it('draws the trajectories as they are computed; Newton, HessianFree and Shampoo step differently from Adam', async () => {
    expect((await state()).backend).toBe('wasm');
    await page!.$eval('#traj-steps', (el) => ((el as any).value = '60'));
    const before = (await state()).runs;
    await page!.click('#traj-run');
    // Mid-run, the drawn Adam path already has some but not all of its points: it moves.
    await waitFor(
      `(() => { const n = Number(document.querySelector('path[data-optimizer="adam"]')?.dataset.points); return n > 1 && n < 61; })()`,
    );
    await waitFor(`playground.runs > ${before} && document.body.dataset.trajectories === 'done'`);
    const s = await state();
    expect(s.start).toEqual([-1.2, 1]);
    const byName = Object.fromEntries(s.trajectories.map((t) => [t.name, t]));
    expect(Object.keys(byName).sort()).toEqual(['adam', 'hessian-free', 'newton', 'rmsprop', 'sgd', 'shampoo']);
    for (const t of s.trajectories) {
      expect(t.error, t.name).toBeUndefined();
      expect(t.points).toHaveLength(61);
      expect(t.points[0]).toEqual([-1.2, 1]);
      expect(t.points.flat().every(Number.isFinite), t.name).toBe(true);
      expect(dist(t.points.at(-1)!, t.points[0]!), t.name).toBeGreaterThan(0.1);
      expect(t.losses.at(-1)!, t.name).toBeLessThan(t.losses[0]!);
    }
    // Rosenbrock's minimum (1, 1), f = 0: the curvature methods reach it within 60 steps, Adam does not.
    for (const name of ['newton', 'hessian-free']) {
      expect(byName[name]!.losses.at(-1)!, name).toBeLessThan(1e-6);
      expect(dist(byName[name]!.points.at(-1)!, [1, 1]), name).toBeLessThan(1e-2);
    }
    expect(byName.adam!.losses.at(-1)!).toBeGreaterThan(1e-2);
    const adam = byName.adam!.points;
    for (const name of ['newton', 'hessian-free', 'shampoo']) {
      const other = byName[name]!.points;
      const gap = Math.max(...other.slice(0, 20).map((p, i) => dist(p, adam[i]!)));
      expect(gap, `${name} vs adam over the first 20 steps`).toBeGreaterThan(0.1);
    }
    // The SVG paths are the trajectories: one per optimizer, 61 vertices each.
    const paths = await page!.$$eval('#paths path[data-optimizer]', (els) =>
      els.map((e) => ({
        name: e.getAttribute('data-optimizer'),
        vertices: (e.getAttribute('d') ?? '').match(/[ML]/g)?.length ?? 0,
      })),
    );
    expect(paths.map((p) => p.name).sort()).toEqual(Object.keys(byName).sort());
    expect(paths.every((p) => p.vertices === 61)).toBe(true);
    expect(problems).toEqual([]);
  }, 90_000);

  it('starts where the map is clicked, follows an edited option, and leaks no tensor', async () => {
    const tensors = (await state()).tensors;
    // Rosenbrock's window is [-2, 2] x [-1, 3] on a 560 x 460 map: pixel (420, 115) is (1, 2).
    const map = (await page!.$('#map'))!;
    let s = await runTrajectories(() => map.click({ offset: { x: 420, y: 115 } }));
    expect(s.start[0]).toBeCloseTo(1, 2);
    expect(s.start[1]).toBeCloseTo(2, 2);
    for (const t of s.trajectories) expect(dist(t.points[0]!, [1, 2]), t.name).toBeLessThan(1e-6);
    // Adam's first step moves each coordinate by about the learning rate (m / sqrt(v) = sign(g)).
    const firstStep = (st: State) => {
      const p = st.trajectories.find((t) => t.name === 'adam')!.points;
      return Math.max(Math.abs(p[1]![0] - p[0]![0]), Math.abs(p[1]![1] - p[0]![1]));
    };
    expect(firstStep(s)).toBeCloseTo(0.05, 3);
    s = await runTrajectories(async () => {
      await page!.$eval('input[data-opt="adam"][data-name="learningRate"]', (el) => {
        (el as any).value = '0.2';
        el.dispatchEvent(new Event('change', { bubbles: true }));
      });
    });
    expect(firstStep(s)).toBeCloseTo(0.2, 3);
    // A bad value is reported next to the optimizer (the constructor's message), not thrown.
    s = await runTrajectories(async () => {
      await page!.$eval('input[data-opt="adam"][data-name="beta1"]', (el) => {
        (el as any).value = '1.5';
        el.dispatchEvent(new Event('change', { bubbles: true }));
      });
    });
    expect(s.trajectories.find((t) => t.name === 'adam')!.error).toMatch(/Invalid beta1: 1\.5/);
    expect(await page!.$eval('[data-error="adam"]', (el) => el.textContent)).toMatch(/Invalid beta1/);
    expect(s.trajectories.find((t) => t.name === 'newton')!.error).toBeUndefined();
    expect((await state()).tensors).toBe(tensors);
    expect(problems).toEqual([]);
  }, 90_000);

  it('trains the MNIST model with Adam, K-FAC and Shampoo: the losses fall', async () => {
    await page!.$eval('#mnist-steps', (el) => ((el as any).value = '25'));
    await page!.click('#mnist-train');
    await waitFor(`document.body.dataset.mnist === 'done'`, 120_000);
    const { mnist } = await state();
    expect(mnist.step).toBe(25);
    expect(Object.keys(mnist.losses).sort()).toEqual(['adam', 'kfac', 'shampoo']);
    const first = mnist.losses.adam![0]!;
    for (const [name, losses] of Object.entries(mnist.losses)) {
      expect(losses, name).toHaveLength(25);
      expect(losses.every(Number.isFinite), name).toBe(true);
      // Same initial weights and the same first batch: the same first loss (about ln 10).
      expect(losses[0]!, name).toBeCloseTo(first, 4);
      const tail = losses.slice(-5).reduce((a, b) => a + b, 0) / 5;
      expect(tail, `${name}: ${losses.map((l) => l.toFixed(3)).join(' ')}`).toBeLessThan(0.75 * losses[0]!);
      const held = mnist.heldOut[name]!;
      expect(held[0]![0]).toBe(0);
      expect(held.at(-1)![0]).toBe(25);
      expect(held.at(-1)![1], `${name} held-out loss`).toBeLessThan(held[0]![1]);
      expect(held.at(-1)![2], `${name} held-out accuracy`).toBeGreaterThan(0.5);
    }
    expect(await page!.$$eval('#mnist-chart path[data-series]', (els) => els.length)).toBe(6);
    expect(problems).toEqual([]);
  }, 120_000);

  it('computes the top Hessian eigenvalues and an SLQ density on demand', async () => {
    await page!.select('#spec-model', 'kfac');
    await page!.click('#spec-run');
    await waitFor(`document.body.dataset.spectrum === 'done'`, 120_000);
    const sp = (await state()).spectrum!;
    expect(sp).toBeDefined();
    expect(sp.numParams).toBe(784 * 64 + 64 + 64 * 10 + 10);
    expect(sp.topEigenvalues).toHaveLength(5);
    expect(sp.topEigenvalues.every(Number.isFinite)).toBe(true);
    for (let i = 1; i < 5; i++) expect(sp.topEigenvalues[i]!).toBeLessThanOrEqual(sp.topEigenvalues[i - 1]!);
    expect(sp.topEigenvalues[0]!).toBeGreaterThan(0);
    // Top-k Lanczos and the SLQ run start from different random vectors: their largest Ritz
    // values agree, and the density integrates to one.
    expect(Math.abs(sp.lambdaMax - sp.topEigenvalues[0]!)).toBeLessThan(0.05 * sp.topEigenvalues[0]!);
    let mass = 0;
    for (let i = 1; i < sp.grid.length; i++)
      mass += 0.5 * (sp.density[i]! + sp.density[i - 1]!) * (sp.grid[i]! - sp.grid[i - 1]!);
    expect(mass).toBeGreaterThan(0.95);
    expect(mass).toBeLessThan(1.05);
    const rows = await page!.$$eval('#spec-values tr.eig', (els) => els.length);
    expect(rows).toBe(5);
    expect(problems).toEqual([]);
  }, 120_000);

  it('renders: the screenshot is not blank and shows every trajectory colour', async () => {
    await page!.evaluate('window.scrollTo(0, 0)');
    const png = Buffer.from(await page!.screenshot({ type: 'png', fullPage: false })).toString('base64');
    // Decode the PNG in the page (an <img> on a canvas) and measure it.
    const stats = await page!.evaluate(async (b64: string) => {
      // No DOM types in the Node tsconfig: the page's globals through globalThis.
      const { Image, document } = globalThis as any;
      const img = new Image();
      img.src = `data:image/png;base64,${b64}`;
      await img.decode();
      const c = document.createElement('canvas');
      c.width = img.width;
      c.height = img.height;
      const ctx = c.getContext('2d');
      ctx.drawImage(img, 0, 0);
      const d: Uint8ClampedArray = ctx.getImageData(0, 0, c.width, c.height).data;
      let sum = 0;
      let sum2 = 0;
      const colours = new Set<number>();
      const near = (hex: string) => {
        const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
        let n = 0;
        for (let i = 0; i < d.length; i += 4) {
          if (Math.abs(d[i]! - r!) + Math.abs(d[i + 1]! - g!) + Math.abs(d[i + 2]! - b!) < 30) n++;
        }
        return n;
      };
      for (let i = 0; i < d.length; i += 4) {
        const v = 0.299 * d[i]! + 0.587 * d[i + 1]! + 0.114 * d[i + 2]!;
        sum += v;
        sum2 += v * v;
        colours.add((d[i]! << 16) | (d[i + 1]! << 8) | d[i + 2]!);
      }
      const n = d.length / 4;
      const colors: Record<string, number> = {};
      for (const [name, hex] of [
        ['sgd', '#4e79a7'],
        ['adam', '#f28e2b'],
        ['newton', '#d62728'],
        ['hessian-free', '#2ca02c'],
        ['shampoo', '#9467bd'],
      ]) {
        colors[name!] = near(hex!);
      }
      return {
        width: c.width,
        height: c.height,
        std: Math.sqrt(sum2 / n - (sum / n) ** 2),
        distinct: colours.size,
        colors,
      };
    }, png);
    expect(stats.width).toBe(1240);
    expect(stats.std).toBeGreaterThan(20);
    expect(stats.distinct).toBeGreaterThan(1000);
    for (const [name, n] of Object.entries(stats.colors))
      expect(n, `${name}'s colour in the screenshot`).toBeGreaterThan(20);
    expect(problems).toEqual([]);
  }, 60_000);
});
