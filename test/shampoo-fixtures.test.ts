/**
 * Shampoo at its defaults against float64 reference trajectories written in numpy from the
 * documented algorithm (scripts/reference/shampoo_reference.py -> test/fixtures/shampoo-*.json),
 * on the cpu and wasm backends and on both code paths (the float32 WebAssembly kernel path and
 * the tfjs-ops path), plus issue 13's reproduction against its closed form.
 *
 * The gradients are not stored: both sides generate them with the same integer hash (every
 * value is exact in float32), so the reference and the optimizer see identical gradients.
 */
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { Shampoo, type ShampooInternals, type ShampooOptions } from '../optimizers/shampoo.js';
import { relErr } from './optim-helpers.js';

/** Force the tfjs-ops backend (the constructor's internal hook) for the optimizers made next. */
let forceTfjs = false;
const internals = (): ShampooInternals => ({ backend: forceTfjs ? 'tfjs' : 'auto' });

interface FixtureCase {
  name: string;
  shape: number[];
  seed: number;
  rank: number;
  updates: string[];
}
interface Fixture {
  options: ShampooOptions;
  steps: number;
  cases: FixtureCase[];
}

const fixture = (file: string): Fixture =>
  JSON.parse(readFileSync(new URL(`./fixtures/${file}`, import.meta.url), 'utf8')) as Fixture;
const FIXTURES: [string, Fixture][] = [
  ['defaults, preconditionFrequency 4', fixture('shampoo-reference-f4.json')],
  ['all defaults', fixture('shampoo-reference-defaults.json')],
  ['4-D conv kernels, preconditionFrequency 4', fixture('shampoo-reference-conv.json')],
];

/** The generator's 32-bit hash (shampoo_reference.py hash32). */
function hash32(seed: number, i: number): number {
  let h = (Math.imul(i, 0x9e3779b1) + seed) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** The generator's gradient of step t (shampoo_reference.py gradient), row-major, float32-exact. */
function gradient(c: FixtureCase, t: number): Float64Array {
  const size = c.shape.reduce((a, b) => a * b, 1);
  const seed = c.seed * 1000 + t;
  const stepScale = 2 ** -(t % 3);
  const g = new Float64Array(size);
  if (c.rank > 0) {
    const [m, n] = c.shape as [number, number];
    const k = c.rank;
    const ints = (s: number, i: number) => (hash32(s, i) >>> 28) - 8;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let q = 0; q < k; q++) s += ints(seed, i * k + q) * ints(seed + 500, j * k + q);
        g[i * n + j] = (s / 64) * stepScale;
      }
    }
  } else {
    const inner = size / c.shape[0]!;
    for (let i = 0; i < size; i++) {
      const u = ((hash32(seed, i) >>> 8) - 2 ** 23) / 2 ** 24;
      g[i] = u * 2 ** -(Math.floor(i / inner) % 4) * stepScale;
    }
  }
  return g;
}

function decode(b64: string): Float64Array {
  const bytes = Buffer.from(b64, 'base64');
  const f = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  return Float64Array.from(f);
}

let counter = 0;

/** The optimizer's update at every step for the fixture's gradients (parameter starts at 0). */
function run(c: FixtureCase, options: ShampooOptions, steps: number): Float64Array[] {
  const v = tf.variable(tf.zeros(c.shape), true, `shampoo_fixture_${counter++}`);
  const opt = new Shampoo(options, internals());
  const out: Float64Array[] = [];
  let before = Float64Array.from(v.dataSync());
  for (let t = 1; t <= steps; t++) {
    const g = tf.tensor(Float32Array.from(gradient(c, t)), c.shape);
    opt.applyGradients({ [v.name]: g });
    g.dispose();
    const after = Float64Array.from(v.dataSync());
    out.push(after.map((x, i) => x - before[i]!));
    before = after;
  }
  expect(opt.failedInverseRoots).toBe(0);
  opt.dispose();
  v.dispose();
  return out;
}

afterEach(() => {
  forceTfjs = false;
});

describe.each(['cpu', 'wasm'])('Shampoo vs the float64 numpy reference on %s', (backend) => {
  beforeAll(async () => {
    expect(await initBackend(backend)).toBe(backend);
  });

  describe.each(FIXTURES)('%s', (_, fx) => {
    it.each([
      ['kernel path', false],
      ['tfjs-ops path', true],
    ])('every case, every step within 1e-3 relative (%s)', (path, device) => {
      forceTfjs = device;
      const worst: string[] = [];
      for (const c of fx.cases) {
        const got = run(c, fx.options, fx.steps);
        const errs = got.map((u, t) => relErr(u, decode(c.updates[t]!)));
        const max = Math.max(...errs);
        worst.push(`${c.name}: ${max.toExponential(1)}`);
        expect(max, `${c.name}, step ${errs.indexOf(max) + 1}`).toBeLessThan(1e-3);
      }
      console.log(
        `${backend} ${path}, ${JSON.stringify(fx.options)}: max relative update error per case\n  ${worst.join('\n  ')}`,
      );
    });
  });

  /** Issue 13's reproduction: a single preconditioned step on a 20x10 matrix (merged to [200], root 2). */
  describe("issue 13's reproduction on 20x10", () => {
    const options: ShampooOptions = {
      learningRate: 1e-3,
      preconditionFrequency: 1,
      startPreconditioningStep: 1,
      grafting: 'none',
      beta1: 0,
      // 20x10 merged into one dimension of 200 (the block default was 256 when this was written).
      maxPreconditionerDim: 256,
    };

    const step = (norm: number, extra: ShampooOptions = {}): { g: Float64Array; d: Float64Array } => {
      const g0 = tf.tidy(() => tf.randomNormal([20, 10], 0, 1, 'float32', 1).dataSync() as Float32Array);
      const n0 = Math.hypot(...g0);
      const g = Float32Array.from(g0, (x) => (x * norm) / n0);
      const v = tf.variable(tf.zeros([20, 10]), true, `shampoo_issue13_${counter++}`);
      const opt = new Shampoo({ ...options, ...extra }, internals());
      const gt = tf.tensor(g, [20, 10]);
      opt.applyGradients({ [v.name]: gt });
      const d = Float64Array.from(v.dataSync());
      tf.dispose([gt, v]);
      opt.dispose();
      return { g: Float64Array.from(g), d };
    };

    it.each([0.15, 15, 149])(
      '||g|| = %s: the update is -lr g / sqrt(||g||^2 (1 + 1e-5)) to 1e-4, and downhill',
      (norm) => {
        for (const device of [false, true]) {
          forceTfjs = device;
          const { g, d } = step(norm);
          // Closed form of the documented update with the default epsilon 1e-5 * lambda_max, lambda_max = ||g||^2.
          const g2 = g.reduce((s, x) => s + x * x, 0);
          const want = g.map((x) => (-1e-3 * x) / Math.sqrt(g2 * (1 + 1e-5)));
          expect(relErr(d, want)).toBeLessThan(1e-4);
          expect(d.reduce((s, x, i) => s + x * g[i]!, 0)).toBeLessThan(0);
        }
      },
    );

    it('with the old epsilon (1e-12 absolute) the step is still downhill: the root is applied in factored form', () => {
      for (const device of [false, true]) {
        forceTfjs = device;
        for (const norm of [0.15, 15, 149]) {
          const { g, d } = step(norm, { epsilon: 1e-12, epsilonMode: 'absolute' });
          expect(d.reduce((s, x, i) => s + x * g[i]!, 0)).toBeLessThan(0);
        }
      }
    });

    it('at the default epsilon, a 2-D parameter (30x20, rank-2 gradients, r = 2, 12 steps) only goes downhill at any scale, on both paths', () => {
      // 600 entries: not merged, so on wasm/cpu the kernel path (W_L^T (W_L G W_R^T) W_R) is used;
      // r = 2 makes the roots as ill-conditioned as the merged case's. The factored form is
      // downhill exactly for the stored factors; in float32 the products' rounding is bounded by
      // ~u sqrt(n) cond(W_L) cond(W_R), which the relative epsilon keeps far below 1 (with 1e-12
      // absolute, the old default, cond(W) reaches 1e4 here and the step can go uphill).
      for (const device of [false, true]) {
        forceTfjs = device;
        for (const scale of [0.01, 1, 100, 1e4]) {
          const v = tf.variable(tf.zeros([30, 20]), true, `shampoo_issue13_2d_${counter++}`);
          const opt = new Shampoo({ ...options, rootExponent: 2 }, internals());
          for (let t = 1; t <= 12; t++) {
            const g = tf.tidy(() =>
              tf.mul(
                tf.matMul(
                  tf.randomNormal([30, 2], 0, 1, 'float32', t),
                  tf.randomNormal([2, 20], 0, 1, 'float32', 100 + t),
                ),
                scale,
              ),
            );
            const before = Float64Array.from(v.dataSync());
            opt.applyGradients({ [v.name]: g });
            const gv = g.dataSync();
            const inner = Array.from(v.dataSync()).reduce((s, x, i) => s + (x - before[i]!) * gv[i]!, 0);
            expect(inner, `scale ${scale}, step ${t}, ${device ? 'tfjs-ops' : 'kernel'} path`).toBeLessThan(0);
            g.dispose();
          }
          opt.dispose();
          v.dispose();
        }
      }
    });
  });
});
