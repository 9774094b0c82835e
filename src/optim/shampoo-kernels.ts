/**
 * Shampoo's per-step float32 work for a 2-D (merged) parameter on the wasm and cpu tfjs
 * backends, in the WebAssembly SIMD module built from src/optim/wasm/shampoo.c (embedded as
 * base64 in src/optim/wasm/shampoo-module.ts; see scripts/build-wasm.sh):
 *
 *   statistics   per block b:  S_L = beta S_L + alpha G_b G_b^T,  S_R = beta S_R + alpha G_b^T G_b
 *                (only the upper triangle is computed, then mirrored: exactly symmetric)
 *   direction    per block b:  D_b = P_L F_b P_R  (absent P = identity), then, with grafting,
 *                D_b *= ||Graft_b|| / (||D_b|| + 1e-16)
 *   roots        P = W^T W with W = diag(f(lambda))^(1/2) V^T from the float64 eigendecomposition
 *                (the float32 P is what Shampoo stores; see optimizers/shampoo.ts)
 *
 * On these backends tensors live in JavaScript or WebAssembly memory, so reading a gradient
 * (dataSync) is one copy; one module call per parameter replaces the ~50 tfjs kernels (and
 * their per-call overhead) of the same work, and tfjs-wasm's slice/split copies. The result is
 * the same arithmetic in float32 up to summation order.
 *
 * Host copies of the statistics and roots are cached by tensor data id (tfjs data is
 * immutable per id; a restored or reassigned slot has a new id and is read again).
 *
 * `shampooKernels()` returns null when WebAssembly (with SIMD) is unavailable; Shampoo then
 * uses tfjs ops.
 */
import * as tf from '@tensorflow/tfjs';
import { SHAMPOO_WASM_BASE64 } from './wasm/shampoo-module.js';

interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}

interface Exports {
  memory: WasmMemory;
  __heap_base: { value: number };
  sgemm(
    m: number, n: number, k: number, alpha: number, a: number, sar: number, sac: number,
    b: number, ldb: number, beta: number, c: number, ldc: number, upper: number,
  ): void;
  mirror_upper(c: number, n: number, ldc: number): void;
  transpose(src: number, lds: number, rows: number, cols: number, dst: number): void;
  copy2d(src: number, lds: number, rows: number, cols: number, dst: number, ldd: number): void;
  sumsq(x: number, ldx: number, rows: number, cols: number): number;
  scale2d(x: number, ldx: number, rows: number, cols: number, s: number): void;
  moments(
    n: number, g: number, a: number, ka: number, kg: number, adiv: number, eps: number,
    m: number, b1: number, c1: number, fdiv: number, f: number, gr: number,
  ): void;
}

let instance: Exports | null | undefined;

function decodeBase64(s: string): Uint8Array {
  const g = globalThis as { Buffer?: { from(s: string, enc: string): Uint8Array }; atob?: (s: string) => string };
  if (g.Buffer) return new Uint8Array(g.Buffer.from(s, 'base64'));
  const bin = (g.atob as (s: string) => string)(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function load(): Exports | null {
  if (instance !== undefined) return instance;
  try {
    const api = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
    if (api === undefined) throw new Error('WebAssembly is not available');
    instance = new api.Instance(new api.Module(decodeBase64(SHAMPOO_WASM_BASE64)), {}).exports as Exports;
  } catch {
    instance = null;
  }
  return instance;
}

/** Block grid of a 2-D parameter [m, n]: row and column block sizes and offsets. */
export interface BlockGrid2d {
  m: number;
  n: number;
  rows: number[];
  rowOffsets: number[];
  cols: number[];
  colOffsets: number[];
}

/** Host copy of a tensor's values, cached per data id (tfjs data is immutable per id). */
const hostCache = new WeakMap<object, Float32Array>();

export function hostValues(t: tf.Tensor): Float32Array {
  const hit = hostCache.get(t.dataId);
  if (hit !== undefined) return hit;
  const v = t.dataSync() as Float32Array;
  hostCache.set(t.dataId, v);
  return v;
}

/** A tensor made from `values` (never mutated afterwards), with its host copy cached. */
export function hostTensor(values: Float32Array, shape: number[]): tf.Tensor {
  const t = tf.tensor(values, shape, 'float32');
  hostCache.set(t.dataId, values);
  return t;
}

/** Record that `t` (e.g. a state variable after `assign`) holds `values`. */
export function cacheHost(t: tf.Tensor, values: Float32Array): void {
  hostCache.set(t.dataId, values);
}

class Arena {
  private off: number;
  constructor(private readonly w: Exports) {
    this.off = (w.__heap_base.value + 15) & ~15;
  }
  /** Reserve `n` float32s; returns the byte offset. Call `ready()` before making views. */
  take(n: number): number {
    const at = this.off;
    this.off += ((n * 4 + 15) >> 4) << 4;
    return at;
  }
  ready(): void {
    const have = this.w.memory.buffer.byteLength;
    if (this.off > have) this.w.memory.grow(Math.ceil((this.off - have) / 65536));
  }
  view(at: number, n: number): Float32Array {
    return new Float32Array(this.w.memory.buffer, at, n);
  }
}

export interface ShampooKernels {
  /**
   * New statistics of every block, beta * prev + alpha * Gram: prev[b] = [S_L, S_R] host
   * values, updated IN PLACE (undefined: zeros, not read; new arrays are returned for them).
   * Returns every block's arrays.
   */
  statistics(g: Float32Array, grid: BlockGrid2d, prev: ([Float32Array, Float32Array] | undefined)[], alpha: number, beta: number): [Float32Array, Float32Array][];
  /** The preconditioned (and grafted) direction [m, n]; roots[b] = [P_L, P_R], undefined = identity. */
  precondition(f: Float32Array, grid: BlockGrid2d, roots: [Float32Array | undefined, Float32Array | undefined][], graft: Float32Array | undefined): Float32Array;
  /**
   * One step's direction from the gradient g: the elementwise first-order part (moments in
   * shampoo.c: new grafting accumulator `a` when `acc` is given, prev undefined = zeros; new
   * first moment `m` when `moment` is given; filtered gradient f; grafted direction), then,
   * when `roots` is given, P_L f_b P_R per block, grafted per block when `graft`; without
   * roots the direction is the grafted one. `acc.prev` / `moment.prev` are updated IN PLACE
   * (undefined: zeros; new arrays are returned). `d` is a view into the module's memory, valid
   * until the next call, unless `copy`.
   */
  direction(
    g: Float32Array,
    acc: { prev: Float32Array | undefined; ka: number; kg: number; adiv: number; eps: number } | undefined,
    moment: { prev: Float32Array | undefined; b1: number; c1: number; fdiv: number } | undefined,
    grid: BlockGrid2d,
    roots: [Float32Array | undefined, Float32Array | undefined][] | undefined,
    graft: boolean,
    copy: boolean,
  ): { a?: Float32Array; m?: Float32Array; d: Float32Array };
  /** W^T W (n x n, exactly symmetric) for W [k x n] row-major. */
  gram(wRows: Float32Array, k: number, n: number): Float32Array;
}

function blocks(grid: BlockGrid2d): { r0: number; c0: number; h: number; w: number }[] {
  const out: { r0: number; c0: number; h: number; w: number }[] = [];
  grid.rows.forEach((h, bi) => grid.cols.forEach((w, bj) => out.push({ r0: grid.rowOffsets[bi]!, c0: grid.colOffsets[bj]!, h, w })));
  return out;
}

interface Scratch {
  py: number;
  pl: number;
  pr: number;
}

function takeScratch(A: Arena, grid: BlockGrid2d): Scratch {
  const maxH = Math.max(...grid.rows);
  const maxW = Math.max(...grid.cols);
  return { py: A.take(maxH * maxW), pl: A.take(maxH * maxH), pr: A.take(maxW * maxW) };
}

function makeKernels(w: Exports): ShampooKernels {
  /** d = P_L f_b P_R per block (absent P = identity), grafted to the blocks of `pgr` (0: none). */
  const preconditionAt = (A: Arena, grid: BlockGrid2d, roots: [Float32Array | undefined, Float32Array | undefined][], pf: number, pgr: number, pd: number, s: Scratch): void => {
    const n = grid.n;
    blocks(grid).forEach(({ r0, c0, h, w: bw }, b) => {
      const at = 4 * (r0 * n + c0);
      const [PL, PR] = roots[b]!;
      // Y = P_L F_b (or F_b), stride ly.
      let y = pf + at;
      let ly = n;
      if (PL !== undefined) {
        A.view(s.pl, h * h).set(PL);
        w.sgemm(h, bw, h, 1, s.pl, h, 1, pf + at, n, 0, s.py, bw, 0);
        y = s.py;
        ly = bw;
      }
      if (PR !== undefined) {
        A.view(s.pr, bw * bw).set(PR);
        w.sgemm(h, bw, bw, 1, y, ly, 1, s.pr, bw, 0, pd + at, n, 0);
      } else {
        w.copy2d(y, ly, h, bw, pd + at, n);
      }
      if (pgr !== 0) {
        const dn = Math.sqrt(w.sumsq(pd + at, n, h, bw));
        const gn = Math.sqrt(w.sumsq(pgr + at, n, h, bw));
        w.scale2d(pd + at, n, h, bw, Math.fround(gn / (dn + 1e-16)));
      }
    });
  };
  return {
    statistics(g, grid, prev, alpha, beta) {
      const { m, n } = grid;
      const bs = blocks(grid);
      const A = new Arena(w);
      const pg = A.take(m * n);
      const maxH = Math.max(...grid.rows);
      const maxW = Math.max(...grid.cols);
      const pt = A.take(maxH * maxW);
      const pl = A.take(maxH * maxH);
      const pr = A.take(maxW * maxW);
      A.ready();
      A.view(pg, m * n).set(g);
      return bs.map(({ r0, c0, h, w: bw }, b) => {
        const gb = pg + 4 * (r0 * n + c0);
        const p = prev[b];
        const bet = p === undefined ? 0 : beta;
        if (p !== undefined) {
          A.view(pl, h * h).set(p[0]);
          A.view(pr, bw * bw).set(p[1]);
        }
        // S_L = G_b G_b^T: A = G_b (rows), B = G_b^T (transposed copy, bw x h).
        w.transpose(gb, n, h, bw, pt);
        w.sgemm(h, h, bw, alpha, gb, n, 1, pt, h, bet, pl, h, 1);
        w.mirror_upper(pl, h, h);
        // S_R = G_b^T G_b: A[i][p] = G_b[p][i], B = G_b.
        w.sgemm(bw, bw, h, alpha, gb, 1, n, gb, n, bet, pr, bw, 1);
        w.mirror_upper(pr, bw, bw);
        // Copy back into the caller's arrays (allocating 64 KB arrays costs ~10x the copy).
        if (p === undefined) return [A.view(pl, h * h).slice(), A.view(pr, bw * bw).slice()];
        p[0].set(A.view(pl, h * h));
        p[1].set(A.view(pr, bw * bw));
        return p;
      });
    },

    precondition(f, grid, roots, graft) {
      const n = grid.m * grid.n;
      const A = new Arena(w);
      const pf = A.take(n);
      const pgr = graft === undefined ? 0 : A.take(n);
      const pd = A.take(n);
      const scratch = takeScratch(A, grid);
      A.ready();
      A.view(pf, n).set(f);
      if (graft !== undefined) A.view(pgr, n).set(graft);
      preconditionAt(A, grid, roots, pf, pgr, pd, scratch);
      return A.view(pd, n).slice();
    },

    direction(g, acc, moment, grid, roots, graft, copy) {
      const n = g.length;
      const A = new Arena(w);
      const pg = A.take(n);
      const pa = acc === undefined ? 0 : A.take(n);
      const pm = moment === undefined ? 0 : A.take(n);
      const pf = A.take(n);
      const pgr = A.take(n);
      const pd = roots === undefined ? pgr : A.take(n);
      const scratch = takeScratch(A, grid);
      A.ready();
      A.view(pg, n).set(g);
      if (acc !== undefined) {
        if (acc.prev === undefined) A.view(pa, n).fill(0);
        else A.view(pa, n).set(acc.prev);
      }
      if (moment !== undefined) {
        if (moment.prev === undefined) A.view(pm, n).fill(0);
        else A.view(pm, n).set(moment.prev);
      }
      w.moments(n, pg, pa, acc?.ka ?? 0, acc?.kg ?? 0, acc?.adiv ?? 1, acc?.eps ?? 0, pm, moment?.b1 ?? 0, moment?.c1 ?? 0, moment?.fdiv ?? 1, pf, pgr);
      if (roots !== undefined) preconditionAt(A, grid, roots, pf, graft ? pgr : 0, pd, scratch);
      const out = (prev: Float32Array | undefined, at: number): Float32Array => {
        if (prev === undefined) return A.view(at, n).slice();
        prev.set(A.view(at, n));
        return prev;
      };
      return {
        a: acc === undefined ? undefined : out(acc.prev, pa),
        m: moment === undefined ? undefined : out(moment.prev, pm),
        d: copy ? A.view(pd, n).slice() : A.view(pd, n),
      };
    },

    gram(wRows, k, n) {
      const A = new Arena(w);
      const pw = A.take(k * n);
      const pc = A.take(n * n);
      A.ready();
      A.view(pw, k * n).set(wRows);
      w.sgemm(n, n, k, 1, pw, 1, n, pw, n, 0, pc, n, 1);
      w.mirror_upper(pc, n, n);
      return A.view(pc, n * n).slice();
    },
  };
}

/**
 * Benchmark hook (scripts/bench/shampoo.ts): `count` products C = A B of size n x n x n with
 * the module's float32 kernel, full or upper-triangle only (the Gram products); returns ms.
 */
export function timeKernelProducts(n: number, count: number, upper: boolean): number | null {
  const w = load();
  if (w === null) return null;
  const A = new Arena(w);
  const pa = A.take(n * n);
  const pb = A.take(n * n);
  const pc = A.take(n * n);
  A.ready();
  A.view(pa, n * n).forEach((_, i, a) => (a[i] = Math.sin(i)));
  A.view(pb, n * n).forEach((_, i, a) => (a[i] = Math.cos(i)));
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    if (upper) w.sgemm(n, n, n, 1, pa, 1, n, pa, n, 0.5, pc, n, 1);
    else w.sgemm(n, n, n, 1, pa, n, 1, pb, n, 0, pc, n, 0);
  }
  return performance.now() - t0;
}

let kernels: ShampooKernels | null | undefined;

/** The Shampoo kernels, or null when the WebAssembly module cannot load. */
export function shampooKernels(): ShampooKernels | null {
  if (kernels === undefined) {
    const w = load();
    kernels = w === null ? null : makeKernels(w);
  }
  return kernels;
}
