/**
 * The float64 hot loops of src/linalg (Householder tridiagonalisation, Q accumulation, QL
 * rotations, C = A B^T, Cholesky, triangular inverse) as a WebAssembly module with 128-bit SIMD, from
 * src/linalg/wasm/linalg.c (built by scripts/build-wasm.sh and embedded as base64 in
 * src/linalg/wasm/module.ts, so it loads synchronously from src/ and dist/, in Node and in
 * bundlers, without file access).
 *
 * Fallback: when WebAssembly or SIMD is unavailable (or the module fails to compile, e.g. a
 * browser main thread refusing synchronous compilation of > 4 KB), every caller uses its
 * pure-JS kernel. `setLinalgKernel('js')` (or env CURVATURE_LINALG_KERNEL=js) forces the JS
 * kernels, e.g. to compare both in tests; `linalgKernel()` reports the active one.
 *
 * Memory: one module instance per process; each call lays its arrays out from __heap_base,
 * growing the linear memory when needed (calls are synchronous, so they never overlap).
 */
import { LINALG_WASM_BASE64 } from './wasm/module.js';
import { instantiateEmbedded, type WasmMemory } from './wasm/embedded.js';

export type LinalgKernel = 'wasm' | 'js';

interface Exports {
  memory: WasmMemory;
  __heap_base: { value: number };
  tred(a: number, n: number, d: number, e: number, beta: number, w1: number, w2: number): void;
  accumq(a: number, n: number, beta: number, qt: number): void;
  tql2(
    d: number,
    e: number,
    vt: number,
    ld: number,
    n: number,
    rc: number,
    rs: number,
    sw: number,
    cap: number,
  ): number;
  gemm_abt(a: number, b: number, c: number, m: number, n: number, k: number, upper: number): void;
  chol(a: number, n: number, jitter: number, l: number, pivotTol: number): number;
  trinv(l: number, x: number, n: number): void;
  syevi(a: number, n: number, d: number, zt: number, wk: number): number;
}

let instance: Exports | null | undefined;
let loadError: string | null = null;
let forced: LinalgKernel | null = null;

function load(): Exports | null {
  if (instance !== undefined) return instance;
  try {
    instance = instantiateEmbedded<Exports>(LINALG_WASM_BASE64);
  } catch (err) {
    loadError = err instanceof Error ? err.message : String(err);
    instance = null;
  }
  return instance;
}

function envKernel(): LinalgKernel | null {
  const p = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  const v = p?.env?.CURVATURE_LINALG_KERNEL;
  return v === 'js' || v === 'wasm' ? v : null;
}

/** Force the 'js' or 'wasm' kernels (null: wasm when it loads). 'wasm' throws if it cannot load. */
export function setLinalgKernel(kernel: LinalgKernel | null): void {
  if (kernel !== null && kernel !== 'js' && kernel !== 'wasm')
    throw new Error(`setLinalgKernel: expected 'js', 'wasm' or null, got '${String(kernel)}'`);
  if (kernel === 'wasm' && load() === null)
    throw new Error(`setLinalgKernel('wasm'): the WebAssembly kernels did not load (${loadError})`);
  forced = kernel;
}

/** The kernels in use: 'wasm' (SIMD WebAssembly) or 'js' (forced, or wasm failed to load). */
export function linalgKernel(): LinalgKernel {
  const want = forced ?? envKernel();
  if (want === 'js') return 'js';
  return load() === null ? 'js' : 'wasm';
}

/** Why the wasm kernels are unavailable (null when they loaded or were never tried). */
export function linalgKernelError(): string | null {
  return loadError;
}

/** The wasm exports when the wasm kernels are active, else null. */
export function wasm(): Exports | null {
  return linalgKernel() === 'wasm' ? (instance as Exports) : null;
}

/**
 * Lay out `sizes` (in float64 elements) from __heap_base, 16-byte aligned, growing memory as
 * needed; returns the byte offsets. Views must be created after this call (growth detaches).
 */
export function arena(w: Exports, sizes: number[]): number[] {
  let off = (w.__heap_base.value + 15) & ~15;
  const offsets: number[] = [];
  for (const s of sizes) {
    offsets.push(off);
    off += ((s * 8 + 15) >> 4) << 4;
  }
  const have = w.memory.buffer.byteLength;
  if (off > have) w.memory.grow(Math.ceil((off - have) / 65536));
  return offsets;
}

export function view(w: Exports, offset: number, length: number): Float64Array {
  return new Float64Array(w.memory.buffer, offset, length);
}

/** C = A B^T for A (m x k), B (n x k) row-major; `upper`: only j >= i is guaranteed (caller mirrors). */
export function gemmAbtWasm(
  w: Exports,
  A: Float64Array,
  B: Float64Array,
  m: number,
  n: number,
  k: number,
  upper: boolean,
): Float64Array {
  const [pa, pb, pc] = arena(w, [m * k, n * k, m * n]);
  view(w, pa, m * k).set(A);
  view(w, pb, n * k).set(B);
  view(w, pc, m * n).fill(0);
  w.gemm_abt(pa, pb, pc, m, n, k, upper ? 1 : 0);
  return view(w, pc, m * n).slice();
}

/** Tridiagonalise and diagonalise a (n x n symmetric): returns d (unsorted eigenvalues) and V^T rows; throws on QL failure. */
export function eighWasm(w: Exports, a: Float64Array, n: number): { d: Float64Array; vt: Float64Array } {
  const cap = Math.max(32768, n);
  const [pa, pq, pd, pe, pbeta, pw1, pw2, prc, prs, psw] = arena(w, [
    n * n,
    n * n,
    n,
    n,
    n,
    n,
    n,
    cap,
    cap,
    Math.ceil((3 * cap) / 2),
  ]);
  view(w, pa, n * n).set(a);
  w.tred(pa, n, pd, pe, pbeta, pw1, pw2);
  const q = view(w, pq, n * n);
  q.fill(0);
  for (let i = 0; i < n; i++) q[i * n + i] = 1;
  w.accumq(pa, n, pbeta, pq);
  const fail = w.tql2(pd, pe, pq, n, n, prc, prs, psw, cap);
  if (fail !== 0) throw new Error(`eigh: QL iteration did not converge for eigenvalue ${fail - 1} of ${n} (60 sweeps)`);
  return { d: view(w, pd, n).slice(), vt: view(w, pq, n * n).slice() };
}

/**
 * The same decomposition by tridiagonalisation, eigenvalues of T by QL without vectors,
 * eigenvectors of T by inverse iteration (LAPACK dstein) and the Householder back-transformation
 * (linalg.c syevi; ~1.5x faster than eighWasm at n = 128, ~2x at 256). Eigenvalues unsorted
 * (ascending per unreduced block of T), V^T rows; falls back to eighWasm if inverse iteration
 * does not converge for some vector.
 */
export function eighWasmFast(w: Exports, a: Float64Array, n: number): { d: Float64Array; vt: Float64Array } {
  const [pa, pz, pd, pwk] = arena(w, [n * n, n * n, n, 17 * n]);
  view(w, pa, n * n).set(a);
  const s = w.syevi(pa, n, pd, pz, pwk);
  if (s < 0) throw new Error(`eigh: QL iteration did not converge for eigenvalue ${-s - 1} of ${n} (60 sweeps)`);
  if (s > 0) return eighWasm(w, a, n); // inverse iteration did not converge (not seen in tests): QL with vectors
  return { d: view(w, pd, n).slice(), vt: view(w, pz, n * n).slice() };
}

/** Cholesky of (A + jitter I) into L (row-major, upper zero); returns the failing pivot or -1. */
export function cholWasm(
  w: Exports,
  A: Float64Array,
  n: number,
  jitter: number,
  L: Float64Array,
  pivotTol: number,
): number {
  const [pa, pl] = arena(w, [n * n, n * n]);
  view(w, pa, n * n).set(A);
  view(w, pl, n * n).fill(0);
  const failed = w.chol(pa, n, jitter, pl, pivotTol);
  L.set(view(w, pl, n * n));
  return failed;
}

/** L^{-1} for lower-triangular L (n x n). */
export function trinvWasm(w: Exports, L: Float64Array, n: number): Float64Array {
  const [pl, px] = arena(w, [n * n, n * n]);
  view(w, pl, n * n).set(L);
  view(w, px, n * n).fill(0);
  w.trinv(pl, px, n);
  return view(w, px, n * n).slice();
}
