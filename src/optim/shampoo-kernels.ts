/**
 * Shampoo's per-step float32 work for a 2-D (merged) parameter on the wasm and cpu tfjs
 * backends, in the WebAssembly SIMD module built from src/optim/wasm/shampoo.c (embedded as
 * base64 in src/optim/wasm/shampoo-module.ts; see scripts/build-wasm.sh):
 *
 *   statistics   per block b:  S_L = beta S_L + alpha G_b G_b^T,  S_R = beta S_R + alpha G_b^T G_b
 *                (only the upper triangle is computed, then mirrored: exactly symmetric)
 *   direction    per block b:  D_b = W_L^T (W_L F_b W_R^T) W_R  (absent W = identity), then,
 *                with grafting, D_b *= ||Graft_b|| / (||D_b|| + 1e-16)
 *   roots        the inverse roots P = W^T W are kept and applied as their float32 factors
 *                W = diag(f(lambda))^(1/2) V^T (from the float64 eigendecomposition; see
 *                optimizers/shampoo.ts), so <D_b, F_b> = ||W_L F_b W_R^T||^2 >= 0
 *
 * On these backends tensors live in JavaScript or WebAssembly memory, so reading a gradient
 * (dataSync) is one copy; one module call per parameter replaces the ~50 tfjs kernels (and
 * their per-call overhead) of the same work, and tfjs-wasm's slice/split copies. The result is
 * the same arithmetic in float32 up to summation order.
 *
 * The optimizer keeps the slots the kernels update (statistics, roots, grafting accumulator,
 * first moment) in persistent buffers of the module's memory (`allocBuffer`), updated in place;
 * each call's scratch space starts after them. Host copies of other tensors are cached by tensor
 * data id (tfjs data is immutable per id; a restored or reassigned slot has a new id).
 *
 * `shampooKernels()` returns null when WebAssembly (with SIMD) is unavailable; Shampoo then
 * uses tfjs ops.
 */
import * as tf from '@tensorflow/tfjs';
import { SHAMPOO_WASM_BASE64 } from './wasm/shampoo-module.js';
import { instantiateEmbedded, type WasmMemory } from '../linalg/wasm/embedded.js';

interface Exports {
  memory: WasmMemory;
  __heap_base: { value: number };
  sgemm(
    m: number,
    n: number,
    k: number,
    alpha: number,
    a: number,
    sar: number,
    sac: number,
    b: number,
    ldb: number,
    beta: number,
    c: number,
    ldc: number,
    upper: number,
  ): void;
  mirror_upper(c: number, n: number, ldc: number): void;
  transpose(src: number, lds: number, rows: number, cols: number, dst: number): void;
  copy2d(src: number, lds: number, rows: number, cols: number, dst: number, ldd: number): void;
  sumsq(x: number, ldx: number, rows: number, cols: number): number;
  scale2d(x: number, ldx: number, rows: number, cols: number, s: number): void;
  moments(
    n: number,
    g: number,
    a: number,
    ka: number,
    kg: number,
    adiv: number,
    eps: number,
    m: number,
    b1: number,
    c1: number,
    fdiv: number,
    f: number,
    gr: number,
  ): void;
}

let instance: Exports | null | undefined;

function load(): Exports | null {
  if (instance !== undefined) return instance;
  try {
    instance = instantiateEmbedded<Exports>(SHAMPOO_WASM_BASE64);
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

/**
 * A persistent float32 buffer in the module's memory (statistics, roots, grafting accumulator
 * and first moment that the kernels update in place between steps). Views are made on demand
 * (`bufferView`): growing the memory detaches older views.
 */
export interface HostBuffer {
  readonly off: number;
  readonly length: number;
}

/** End of the persistent buffers; each call's scratch arena starts here. */
let persistentTop = 0;
/** Released buffers by length (the sizes repeat: blocks of the same parameters). */
const freeBuffers = new Map<number, number[]>();

function moduleOrThrow(): Exports {
  const w = load();
  if (w === null) throw new Error('Shampoo kernels: the WebAssembly module is not available');
  return w;
}

function grow(w: Exports, end: number): void {
  const have = w.memory.buffer.byteLength;
  if (end > have) w.memory.grow(Math.ceil((end - have) / 65536));
}

/** A zero-filled persistent buffer of `length` float32s. */
export function allocBuffer(length: number): HostBuffer {
  const w = moduleOrThrow();
  const reuse = freeBuffers.get(length)?.pop();
  let off: number;
  if (reuse !== undefined) {
    off = reuse;
  } else {
    if (persistentTop === 0) persistentTop = (w.__heap_base.value + 15) & ~15;
    off = persistentTop;
    persistentTop += ((length * 4 + 15) >> 4) << 4;
    grow(w, persistentTop);
  }
  const b = { off, length };
  bufferView(b).fill(0);
  return b;
}

export function releaseBuffer(b: HostBuffer): void {
  let list = freeBuffers.get(b.length);
  if (list === undefined) freeBuffers.set(b.length, (list = []));
  list.push(b.off);
}

/** A view of a persistent buffer, valid until the module's memory next grows. */
export function bufferView(b: HostBuffer): Float32Array {
  return new Float32Array(moduleOrThrow().memory.buffer, b.off, b.length);
}

class Arena {
  private off: number;
  constructor(private readonly w: Exports) {
    if (persistentTop === 0) persistentTop = (w.__heap_base.value + 15) & ~15;
    this.off = persistentTop;
  }
  /** Reserve `n` float32s; returns the byte offset. Call `ready()` before making views. */
  take(n: number): number {
    const at = this.off;
    this.off += ((n * 4 + 15) >> 4) << 4;
    return at;
  }
  ready(): void {
    grow(this.w, this.off);
  }
  view(at: number, n: number): Float32Array {
    return new Float32Array(this.w.memory.buffer, at, n);
  }
}

export type RootPair = [HostBuffer | undefined, HostBuffer | undefined];

export interface ShampooKernels {
  /**
   * Every block's statistics updated IN PLACE to beta * S + alpha * Gram: stats[b] = [S_L, S_R]
   * (undefined: new zero buffers, beta not applied). Returns every block's buffers.
   */
  statistics(
    g: Float32Array,
    grid: BlockGrid2d,
    stats: ([HostBuffer, HostBuffer] | undefined)[],
    alpha: number,
    beta: number,
  ): [HostBuffer, HostBuffer][];
  /**
   * The same for one side only (0: S_L = G_b G_b^T, 1: S_R = G_b^T G_b), for one-sided Shampoo
   * (a dimension left unpreconditioned): stats[b] is that side's buffer.
   */
  statisticsSide(
    g: Float32Array,
    grid: BlockGrid2d,
    side: 0 | 1,
    stats: (HostBuffer | undefined)[],
    alpha: number,
    beta: number,
  ): HostBuffer[];
  /** The preconditioned (and grafted) direction [m, n]; roots[b] = [W_L, W_R] (factors), undefined = identity. */
  precondition(f: Float32Array, grid: BlockGrid2d, roots: RootPair[], graft: Float32Array | undefined): Float32Array;
  /**
   * One step's direction from the gradient g: the elementwise first-order part (moments in
   * shampoo.c: the grafting accumulator `acc.buf` and the first moment `moment.buf` updated IN
   * PLACE, undefined: new zero buffers; filtered gradient f; grafted direction), then, when
   * `roots` (factors) is given, W_L^T W_L f_b W_R^T W_R per block, grafted per block when `graft`
   * (`products`: roots[b] hold the symmetric P = W^T W instead, applied as P_L f_b P_R); without roots the
   * direction is the grafted one. `d` is a view into the module's memory, valid until the next
   * call, unless `copy`.
   */
  direction(
    g: Float32Array,
    acc: { buf: HostBuffer | undefined; ka: number; kg: number; adiv: number; eps: number } | undefined,
    moment: { buf: HostBuffer | undefined; b1: number; c1: number; fdiv: number } | undefined,
    grid: BlockGrid2d,
    roots: RootPair[] | undefined,
    graft: boolean,
    copy: boolean,
    products?: boolean,
  ): { a?: HostBuffer; m?: HostBuffer; d: Float32Array };
  /** W^T W (n x n, exactly symmetric) for W [k x n] row-major. */
  gram(wRows: Float32Array, k: number, n: number): Float32Array;
  /** out = W^T W (n x n, exactly symmetric) for the persistent n x n buffer W, in place in `out`. */
  gramInto(W: HostBuffer, n: number, out: HostBuffer): void;
}

function blocks(grid: BlockGrid2d): { r0: number; c0: number; h: number; w: number }[] {
  const out: { r0: number; c0: number; h: number; w: number }[] = [];
  grid.rows.forEach((h, bi) =>
    grid.cols.forEach((w, bj) => out.push({ r0: grid.rowOffsets[bi]!, c0: grid.colOffsets[bj]!, h, w })),
  );
  return out;
}

function makeKernels(w: Exports): ShampooKernels {
  /**
   * D = W_L^T (W_L F W_R^T) W_R for one block F (h x bw at pf) into pd (both stride n), the absent
   * factors the identity; py, px, pt: scratch.
   */
  const factoredBlock = (
    WL: HostBuffer | undefined,
    WR: HostBuffer | undefined,
    pf: number,
    h: number,
    bw: number,
    pd: number,
    n: number,
    py: number,
    px: number,
    pt: number,
  ): void => {
    // X = W_L F W_R^T (or the factors present), stride lx.
    let x = pf;
    let lx = n;
    if (WL !== undefined) {
      w.sgemm(h, bw, h, 1, WL.off, h, 1, x, lx, 0, py, bw, 0);
      x = py;
      lx = bw;
    }
    if (WR !== undefined) {
      w.transpose(WR.off, bw, bw, bw, pt); // W_R^T, dense
      w.sgemm(h, bw, bw, 1, x, lx, 1, pt, bw, 0, px, bw, 0);
      x = px;
      lx = bw;
    }
    // D = W_L^T X W_R.
    if (WL !== undefined && WR !== undefined) {
      w.sgemm(h, bw, h, 1, WL.off, 1, h, x, lx, 0, py, bw, 0);
      w.sgemm(h, bw, bw, 1, py, bw, 1, WR.off, bw, 0, pd, n, 0);
    } else if (WL !== undefined) {
      w.sgemm(h, bw, h, 1, WL.off, 1, h, x, lx, 0, pd, n, 0);
    } else if (WR !== undefined) {
      w.sgemm(h, bw, bw, 1, x, lx, 1, WR.off, bw, 0, pd, n, 0);
    } else {
      w.copy2d(x, lx, h, bw, pd, n);
    }
  };

  /**
   * D = P_L F P_R for one block with the symmetric P = W^T W (two products instead of four),
   * absent P the identity; py: scratch.
   */
  const productBlock = (
    PL: HostBuffer | undefined,
    PR: HostBuffer | undefined,
    pf: number,
    h: number,
    bw: number,
    pd: number,
    n: number,
    py: number,
  ): void => {
    if (PL !== undefined && PR !== undefined) {
      w.sgemm(h, bw, h, 1, PL.off, h, 1, pf, n, 0, py, bw, 0);
      w.sgemm(h, bw, bw, 1, py, bw, 1, PR.off, bw, 0, pd, n, 0);
    } else if (PL !== undefined) {
      w.sgemm(h, bw, h, 1, PL.off, h, 1, pf, n, 0, pd, n, 0);
    } else if (PR !== undefined) {
      w.sgemm(h, bw, bw, 1, pf, n, 1, PR.off, bw, 0, pd, n, 0);
    } else {
      w.copy2d(pf, n, h, bw, pd, n);
    }
  };

  /**
   * d = W_L^T (W_L f_b W_R^T) W_R per block (or P_L f_b P_R with `products`: roots[b] then hold
   * P = W^T W), grafted to the blocks of `pgr` (0: none). The factored form makes
   * <d_b, f_b> = ||W_L f_b W_R^T||^2 >= 0 for the stored float32 factors: a descent direction by
   * construction; the products form is used only where float32 P keeps that (shampoo.ts).
   */
  const preconditionAt = (
    grid: BlockGrid2d,
    roots: RootPair[],
    pf: number,
    pgr: number,
    pd: number,
    py: number,
    px: number,
    pt: number,
    products = false,
  ): void => {
    const n = grid.n;
    blocks(grid).forEach(({ r0, c0, h, w: bw }, b) => {
      const at = 4 * (r0 * n + c0);
      const [L, R] = roots[b]!;
      if (products) productBlock(L, R, pf + at, h, bw, pd + at, n, py);
      else factoredBlock(L, R, pf + at, h, bw, pd + at, n, py, px, pt);
      if (pgr !== 0) {
        const dn = Math.sqrt(w.sumsq(pd + at, n, h, bw));
        const gn = Math.sqrt(w.sumsq(pgr + at, n, h, bw));
        w.scale2d(pd + at, n, h, bw, Math.fround(gn / (dn + 1e-16)));
      }
    });
  };
  const maxBlock = (grid: BlockGrid2d) => Math.max(...grid.rows) * Math.max(...grid.cols);
  const maxCols = (grid: BlockGrid2d) => Math.max(...grid.cols) ** 2;
  return {
    statistics(g, grid, stats, alpha, beta) {
      const { m, n } = grid;
      const bs = blocks(grid);
      // New buffers first: the scratch arena starts after the persistent ones.
      const bufs = bs.map(
        ({ h, w: bw }, b) => stats[b] ?? ([allocBuffer(h * h), allocBuffer(bw * bw)] as [HostBuffer, HostBuffer]),
      );
      const A = new Arena(w);
      const pg = A.take(m * n);
      const pt = A.take(maxBlock(grid));
      A.ready();
      A.view(pg, m * n).set(g);
      bs.forEach(({ r0, c0, h, w: bw }, b) => {
        const gb = pg + 4 * (r0 * n + c0);
        const bet = stats[b] === undefined ? 0 : beta;
        const [pl, pr] = [bufs[b]![0].off, bufs[b]![1].off];
        // S_L = G_b G_b^T: A = G_b (rows), B = G_b^T (transposed copy, bw x h).
        w.transpose(gb, n, h, bw, pt);
        w.sgemm(h, h, bw, alpha, gb, n, 1, pt, h, bet, pl, h, 1);
        w.mirror_upper(pl, h, h);
        // S_R = G_b^T G_b: A[i][p] = G_b[p][i], B = G_b.
        w.sgemm(bw, bw, h, alpha, gb, 1, n, gb, n, bet, pr, bw, 1);
        w.mirror_upper(pr, bw, bw);
      });
      return bufs;
    },

    statisticsSide(g, grid, side, stats, alpha, beta) {
      const { m, n } = grid;
      const bs = blocks(grid);
      const bufs = bs.map(({ h, w: bw }, b) => stats[b] ?? allocBuffer(side === 0 ? h * h : bw * bw));
      const A = new Arena(w);
      const pg = A.take(m * n);
      const pt = side === 0 ? A.take(maxBlock(grid)) : 0;
      A.ready();
      A.view(pg, m * n).set(g);
      bs.forEach(({ r0, c0, h, w: bw }, b) => {
        const gb = pg + 4 * (r0 * n + c0);
        const bet = stats[b] === undefined ? 0 : beta;
        const p = bufs[b]!.off;
        if (side === 0) {
          w.transpose(gb, n, h, bw, pt);
          w.sgemm(h, h, bw, alpha, gb, n, 1, pt, h, bet, p, h, 1);
          w.mirror_upper(p, h, h);
        } else {
          w.sgemm(bw, bw, h, alpha, gb, 1, n, gb, n, bet, p, bw, 1);
          w.mirror_upper(p, bw, bw);
        }
      });
      return bufs;
    },

    precondition(f, grid, roots, graft) {
      const n = grid.m * grid.n;
      const A = new Arena(w);
      const pf = A.take(n);
      const pgr = graft === undefined ? 0 : A.take(n);
      const pd = A.take(n);
      const py = A.take(maxBlock(grid));
      const px = A.take(maxBlock(grid));
      const pt = A.take(maxCols(grid));
      A.ready();
      A.view(pf, n).set(f);
      if (graft !== undefined) A.view(pgr, n).set(graft);
      preconditionAt(grid, roots, pf, pgr, pd, py, px, pt);
      return A.view(pd, n).slice();
    },

    direction(g, acc, moment, grid, roots, graft, copy, products = false) {
      const n = g.length;
      const a = acc === undefined ? undefined : (acc.buf ?? allocBuffer(n));
      const m = moment === undefined ? undefined : (moment.buf ?? allocBuffer(n));
      const A = new Arena(w);
      const pg = A.take(n);
      const pf = A.take(n);
      const pgr = A.take(n);
      const pd = roots === undefined ? pgr : A.take(n);
      const py = A.take(maxBlock(grid));
      const px = roots === undefined ? 0 : A.take(maxBlock(grid));
      const pt = roots === undefined ? 0 : A.take(maxCols(grid));
      A.ready();
      A.view(pg, n).set(g);
      w.moments(
        n,
        pg,
        a?.off ?? 0,
        acc?.ka ?? 0,
        acc?.kg ?? 0,
        acc?.adiv ?? 1,
        acc?.eps ?? 0,
        m?.off ?? 0,
        moment?.b1 ?? 0,
        moment?.c1 ?? 0,
        moment?.fdiv ?? 1,
        pf,
        pgr,
      );
      if (roots !== undefined) preconditionAt(grid, roots, pf, graft ? pgr : 0, pd, py, px, pt, products);
      return { a, m, d: copy ? A.view(pd, n).slice() : A.view(pd, n) };
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

    gramInto(W, n, out) {
      w.sgemm(n, n, n, 1, W.off, 1, n, W.off, n, 0, out.off, n, 1);
      w.mirror_upper(out.off, n, n);
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
