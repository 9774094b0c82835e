/**
 * Shampoo's float32 WebAssembly kernels (src/optim/wasm/shampoo.c via
 * src/optim/shampoo-kernels.ts): the embedded module matches the committed .wasm; the kernels
 * agree with plain float64 loops on odd sizes (register-tile edges, symmetric upper-only
 * products); and the optimizer's kernel path agrees with its tfjs-ops path over many steps
 * (blocks with edge sizes, grafting, EMA statistics, relative epsilon, root refreshes).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { Shampoo, type ShampooInternals, type ShampooOptions } from '../optimizers/shampoo.js';
import {
  allocBuffer,
  bufferView,
  releaseBuffer,
  shampooKernels,
  type BlockGrid2d,
  type HostBuffer,
} from '../src/optim/shampoo-kernels.js';
import { SHAMPOO_WASM_BASE64 } from '../src/optim/wasm/shampoo-module.js';
import { rng } from './optim-helpers.js';

/** Force the tfjs-ops backend (the constructor's internal hook) for the optimizers made next. */
let forceTfjs = false;
const internals = (): ShampooInternals => ({ backend: forceTfjs ? 'tfjs' : 'auto' });

beforeAll(async () => {
  await initBackend('cpu');
});
afterEach(() => {
  forceTfjs = false;
});

function grid(rows: number[], cols: number[]): BlockGrid2d {
  const off = (s: number[]) => s.map((_, i) => s.slice(0, i).reduce((a, b) => a + b, 0));
  return {
    m: rows.reduce((a, b) => a + b, 0),
    n: cols.reduce((a, b) => a + b, 0),
    rows,
    rowOffsets: off(rows),
    cols,
    colOffsets: off(cols),
  };
}

/** Block (r0, c0, h, w) of a row-major [m, n] array as number[][]. */
function block(x: Float32Array, n: number, r0: number, c0: number, h: number, w: number): number[][] {
  return Array.from({ length: h }, (_, i) => Array.from({ length: w }, (_, j) => x[(r0 + i) * n + c0 + j]!));
}

function mm(a: number[][], b: number[][]): number[][] {
  return a.map((row) => b[0]!.map((_, j) => row.reduce((s, v, p) => s + v * b[p]![j]!, 0)));
}

const T = (a: number[][]) => a[0]!.map((_, j) => a.map((row) => row[j]!));

function relErr(got: ArrayLike<number>, want: number[][]): number {
  const flat = want.flat();
  let num = 0;
  let den = 0;
  flat.forEach((v, i) => {
    num += (got[i]! - v) ** 2;
    den += v * v;
  });
  return Math.sqrt(num / den);
}

describe('Shampoo WebAssembly kernels', () => {
  it('embedded module equals src/optim/wasm/shampoo.wasm and loads', () => {
    const file = readFileSync(fileURLToPath(new URL('../src/optim/wasm/shampoo.wasm', import.meta.url)));
    expect(Buffer.from(SHAMPOO_WASM_BASE64, 'base64').equals(file)).toBe(true);
    expect(shampooKernels()).not.toBeNull();
  });

  // Sizes off the 4x8 register tile: 13 = 8 + 5 rows, 11 = 8 + 3 columns.
  const G = grid([8, 5], [8, 3]);
  const r = rng(3);
  const g = Float32Array.from({ length: G.m * G.n }, r);

  it('statistics: beta * S + alpha * Gram per block (in place), exactly symmetric', () => {
    const K = shampooKernels()!;
    const fresh = K.statistics(g, G, [undefined, undefined, undefined, undefined], 0.1, 0.9);
    const first = fresh.map(([l, r]) => [bufferView(l).slice(), bufferView(r).slice()]);
    const bufs = K.statistics(g, G, fresh, 0.1, 0.9);
    bufs.forEach(([l, r], b) => {
      expect(l).toBe(fresh[b]![0]); // updated in place
      expect(r).toBe(fresh[b]![1]);
    });
    const second = bufs.map(([l, r]) => [bufferView(l).slice(), bufferView(r).slice()]);
    bufs.flat().forEach(releaseBuffer);
    let b = 0;
    for (const [ri, h] of G.rows.entries()) {
      for (const [ci, w] of G.cols.entries()) {
        const gb = block(g, G.n, G.rowOffsets[ri]!, G.colOffsets[ci]!, h, w);
        const L = mm(gb, T(gb));
        const R = mm(T(gb), gb);
        // first: 0.1 Gram (beta ignored without a previous value); second: 0.9 * first + 0.1 Gram = 0.19 Gram.
        expect(
          relErr(
            first[b]![0],
            L.map((row) => row.map((v) => 0.1 * v)),
          ),
        ).toBeLessThan(1e-6);
        expect(
          relErr(
            first[b]![1],
            R.map((row) => row.map((v) => 0.1 * v)),
          ),
        ).toBeLessThan(1e-6);
        expect(
          relErr(
            second[b]![0],
            L.map((row) => row.map((v) => 0.19 * v)),
          ),
        ).toBeLessThan(1e-6);
        expect(
          relErr(
            second[b]![1],
            R.map((row) => row.map((v) => 0.19 * v)),
          ),
        ).toBeLessThan(1e-6);
        for (const [S, s] of [
          [second[b]![0], h],
          [second[b]![1], w],
        ] as const) {
          for (let i = 0; i < s; i++) for (let j = 0; j < i; j++) expect(S[i * s + j]).toBe(S[j * s + i]);
        }
        b++;
      }
    }
  });

  it('precondition: W_L^T (W_L F_b W_R^T) W_R per block from the factors (identity when absent), grafted to the block norms', () => {
    const K = shampooKernels()!;
    // Root factors W (P = W^T W): general square matrices.
    const sq = (s: number) => Array.from({ length: s }, () => Array.from({ length: s }, r));
    const roots: [number[][] | undefined, number[][] | undefined][] = [
      [sq(8), sq(8)],
      [sq(8), undefined],
      [undefined, sq(8)],
      [sq(5), sq(3)],
    ];
    const graft = Float32Array.from({ length: G.m * G.n }, r);
    const buf = (a: number[][] | undefined): HostBuffer | undefined => {
      if (a === undefined) return undefined;
      const b = allocBuffer(a.length * a.length);
      bufferView(b).set(a.flat());
      return b;
    };
    const rootBufs = roots.map(([a, b]) => [buf(a), buf(b)] as [HostBuffer | undefined, HostBuffer | undefined]);
    for (const withGraft of [false, true]) {
      const d = K.precondition(g, G, rootBufs, withGraft ? graft : undefined);
      let b = 0;
      for (const [ri, h] of G.rows.entries()) {
        for (const [ci, w] of G.cols.entries()) {
          const [r0, c0] = [G.rowOffsets[ri]!, G.colOffsets[ci]!];
          let want = block(g, G.n, r0, c0, h, w);
          const [wl, wr] = roots[b]!;
          if (wl) want = mm(mm(T(wl), wl), want);
          if (wr) want = mm(want, mm(T(wr), wr));
          if (withGraft) {
            const norm = (a: number[][]) => Math.hypot(...a.flat());
            const s = norm(block(graft, G.n, r0, c0, h, w)) / norm(want);
            want = want.map((row) => row.map((v) => v * s));
          }
          expect(relErr(Float32Array.from(block(d, G.n, r0, c0, h, w).flat()), want)).toBeLessThan(1e-6);
          b++;
        }
      }
    }
    rootBufs.flat().forEach((b) => b !== undefined && releaseBuffer(b));
  });
});

describe('Shampoo: WebAssembly kernel path vs tfjs-ops path', () => {
  function run(shape: [number, number], options: ShampooOptions, steps: number, device: boolean): Float32Array {
    forceTfjs = device;
    const r = rng(11);
    const w0 = Float32Array.from({ length: shape[0] * shape[1] }, r);
    const w = tf.variable(tf.tensor2d(w0, shape), true);
    const opt = new Shampoo(options, internals());
    const left = tf.tensor2d(Float32Array.from({ length: shape[0] * shape[0] }, r), [shape[0], shape[0]]);
    for (let t = 0; t < steps; t++) {
      const gr = tf.tidy(() =>
        tf.matMul(left, tf.tensor2d(Float32Array.from({ length: shape[0] * shape[1] }, r), shape)),
      );
      opt.applyGradients({ [w.name]: gr });
      gr.dispose();
    }
    // The total update (not the parameter, which the initial values dominate).
    const out = Float32Array.from(w.dataSync(), (v, i) => v - w0[i]!);
    tf.dispose([w, left]);
    opt.dispose();
    return out;
  }

  it.each([
    [
      'blocks 16/16/5 x 16/4, Adam grafting, EMA, relative epsilon',
      [37, 20],
      {
        maxPreconditionerDim: 16,
        grafting: 'adam',
        beta2: 0.99,
        epsilon: 1e-3,
        epsilonMode: 'relative',
        preconditionFrequency: 3,
      },
    ],
    [
      'one block 12x7, AdaGrad sum, no grafting, r = 2',
      [12, 7],
      {
        grafting: 'none',
        epsilon: 1e-4,
        rootExponent: 2,
        preconditionFrequency: 2,
        learningRate: 1e-3,
        mergeDims: false,
      },
    ],
    [
      'blocks 8/8/8 x 8/2, RMSProp grafting, statisticsComputeSteps 2, momentum',
      [24, 10],
      {
        maxPreconditionerDim: 8,
        grafting: 'rmsprop',
        beta2: 0.9,
        statisticsComputeSteps: 2,
        momentum: 0.9,
        epsilon: 1e-6,
        startPreconditioningStep: 20, // the default before issue 16's round 4 (= preconditionFrequency)
      },
    ],
    [
      'AdaGrad grafting, beta1 0, start 5, frequency 4',
      [18, 9],
      {
        maxPreconditionerDim: 8,
        mergeDims: false,
        grafting: 'adagrad',
        beta1: 0,
        epsilon: 1e-5,
        startPreconditioningStep: 5,
        preconditionFrequency: 4,
      },
    ],
    [
      'a vector [1, 37] (diagonal statistic), Adam grafting, relative epsilon, r = 4',
      [1, 37],
      {
        grafting: 'adam',
        beta2: 0.99,
        epsilon: 1e-3,
        epsilonMode: 'relative',
        rootExponent: 4,
        preconditionFrequency: 3,
      },
    ],
    [
      'a vector [23, 1], AdaGrad sum, no grafting, beta1 0',
      [23, 1],
      { grafting: 'none', beta1: 0, epsilon: 1e-6, learningRate: 1e-3 },
    ],
    [
      'SGD grafting, no bias correction, L2 weight decay, Nesterov',
      [10, 12],
      {
        maxPreconditionerDim: 6,
        grafting: 'sgd',
        biasCorrection: false,
        beta2: 0.99,
        epsilon: 1e-5,
        weightDecay: 0.1,
        decoupledWeightDecay: false,
        momentum: 0.5,
        nesterov: true,
      },
    ],
  ] as [string, [number, number], ShampooOptions][])('%s', (_, shape, options) => {
    const steps = 25;
    const kernel = run(shape, options, steps, false);
    const device = run(shape, options, steps, true);
    let num = 0;
    let den = 0;
    kernel.forEach((v, i) => {
      num += (v - device[i]!) ** 2;
      den += device[i]! ** 2;
    });
    expect(kernel.every(Number.isFinite)).toBe(true);
    console.log(`kernel vs tfjs ops: relative difference of the total update ${Math.sqrt(num / den).toExponential(2)}`);
    expect(Math.sqrt(num / den)).toBeLessThan(1e-5);
  });
});

describe('Shampoo kernel path: host-resident statistics', () => {
  it('getWeights/setWeights mid-run continues the same trajectory (statistics written back first)', async () => {
    const r = rng(21);
    const shape: [number, number] = [20, 9];
    const w0 = Float32Array.from({ length: 180 }, r);
    const grads = Array.from({ length: 14 }, () => Float32Array.from({ length: 180 }, r));
    const options: ShampooOptions = {
      maxPreconditionerDim: 8,
      mergeDims: false,
      grafting: 'adam',
      beta2: 0.95,
      preconditionFrequency: 3,
      epsilon: 1e-4,
    };
    const step = (opt: Shampoo, v: tf.Variable, t: number) => {
      const g = tf.tensor2d(grads[t]!, shape);
      opt.applyGradients({ [v.name]: g });
      g.dispose();
    };
    const va = tf.variable(tf.tensor2d(w0, shape), true);
    const a = new Shampoo(options);
    for (let t = 0; t < 7; t++) step(a, va, t);
    const saved = await a.getWeights();
    // The saved statistics are the current ones: 3 row blocks x 2 column blocks, L and R each.
    expect(saved.filter((w) => /\/L\d_\d$/.test(w.name))).toHaveLength(12);
    const vb = tf.variable(va.clone(), true);
    const b = new Shampoo(options);
    await b.setWeights(saved);
    tf.dispose(saved.map((w) => w.tensor));
    for (let t = 7; t < 14; t++) {
      step(a, va, t);
      step(b, vb, t);
    }
    expect(Array.from(vb.dataSync())).toEqual(Array.from(va.dataSync()));
    // And the same trajectory as an optimizer that never saved (flushing changes nothing).
    const vc = tf.variable(tf.tensor2d(w0, shape), true);
    const c = new Shampoo(options);
    for (let t = 0; t < 14; t++) step(c, vc, t);
    expect(Array.from(vc.dataSync())).toEqual(Array.from(va.dataSync()));
    tf.dispose([va, vb, vc]);
    [a, b, c].forEach((o) => o.dispose());
  });
});

describe('Shampoo kernel path: persistent buffers', () => {
  it('buffers released by dispose are reused by another optimizer without touching a live one', () => {
    const r = rng(31);
    const shape: [number, number] = [20, 9];
    const w0 = Float32Array.from({ length: 180 }, r);
    const grads = Array.from({ length: 10 }, () => Float32Array.from({ length: 180 }, r));
    const options: ShampooOptions = {
      maxPreconditionerDim: 8,
      mergeDims: false,
      grafting: 'adam',
      beta2: 0.95,
      preconditionFrequency: 2,
      epsilon: 1e-4,
    };
    const step = (opt: Shampoo, v: tf.Variable, t: number) => {
      const g = tf.tensor2d(grads[t]!, shape);
      opt.applyGradients({ [v.name]: g });
      g.dispose();
    };
    const ref = tf.variable(tf.tensor2d(w0, shape), true);
    const o = new Shampoo(options);
    for (let t = 0; t < 10; t++) step(o, ref, t);
    o.dispose();

    const live = tf.variable(tf.tensor2d(w0, shape), true);
    const a = new Shampoo(options);
    for (let t = 0; t < 5; t++) step(a, live, t);
    const other = tf.variable(tf.tensor2d(w0, shape), true);
    const tmp = new Shampoo(options);
    for (let t = 0; t < 3; t++) step(tmp, other, 9 - t);
    tmp.dispose();
    const tmp2 = new Shampoo(options); // takes tmp's released buffers
    for (let t = 5; t < 10; t++) {
      step(tmp2, other, t);
      step(a, live, t);
    }
    expect(Array.from(live.dataSync())).toEqual(Array.from(ref.dataSync()));
    tf.dispose([ref, live, other]);
    a.dispose();
    tmp2.dispose();
  });
});
