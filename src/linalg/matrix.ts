/**
 * Mat64: a dense float64 row-major matrix, the one matrix type of src/linalg, with input
 * validation, conversions (number[][], ml-matrix, tfjs tensors) and the matmul kernels.
 *
 * No runtime import of '@tensorflow/tfjs' (only types): the matrix worker (src/async/worker.ts)
 * imports this module and must not load tfjs. Tensors are recognised structurally (`isTensorLike`);
 * `toTensor` lives in ./tensor.ts.
 *
 * Layout: element (i, j) is `data[i * cols + j]`. Functions never alias their output with an
 * input unless their name says `InPlace`.
 *
 * Kernels: `matmul` is computed as A (B^T)^T so that the inner loop is a dot product of two
 * contiguous rows, with 2x2 register blocking (4 accumulators, 4 loads per 8 flops) and the
 * B-rows tiled so that a tile stays in L2. On Node 20 this runs at ~1.5-2.5 GFLOP/s, 3-4x
 * ml-matrix's `mmul` (measured by scripts/bench/linalg.ts). When the WebAssembly kernels are
 * active (./kernels.ts) products of m n k >= 4096 run on the SIMD `gemm_abt` instead (5-9x).
 *
 * Validation: every public entry point of src/linalg calls `toMat64` / `assertSquare` /
 * `assertFinite`, so a non-square, mismatched or non-finite input is a thrown Error that names
 * the function, the argument and the problem, never a NaN result.
 */
import type * as tf from '@tensorflow/tfjs';
import { AbstractMatrix, Matrix } from 'ml-matrix';
import { wasm, gemmAbtWasm } from './kernels.js';
import { mulberry32 } from '../rng.js';

/** Dense float64 matrix, row-major. */
export interface Mat64 {
  readonly rows: number;
  readonly cols: number;
  readonly data: Float64Array;
}

/** Anything src/linalg accepts as a matrix argument (a tf.Tensor must be 2-D; read with dataSync). */
export type MatrixInput = Mat64 | number[][] | AbstractMatrix | tf.Tensor;

export function mat64(rows: number, cols: number, data?: Float64Array | number[]): Mat64 {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 0) {
    throw new Error(`mat64: invalid shape ${rows}x${cols}`);
  }
  if (data === undefined) return { rows, cols, data: new Float64Array(rows * cols) };
  if (data.length !== rows * cols) {
    throw new Error(`mat64: data has ${data.length} elements, shape ${rows}x${cols} needs ${rows * cols}`);
  }
  return { rows, cols, data: data instanceof Float64Array ? data : Float64Array.from(data) };
}

export function identity(n: number): Mat64 {
  const m = mat64(n, n);
  for (let i = 0; i < n; i++) m.data[i * n + i] = 1;
  return m;
}

export function isMat64(x: unknown): x is Mat64 {
  return (
    typeof x === 'object' &&
    x !== null &&
    (x as Mat64).data instanceof Float64Array &&
    typeof (x as Mat64).rows === 'number' &&
    typeof (x as Mat64).cols === 'number'
  );
}

/**
 * A tf.Tensor, recognised by its shape, rank and dataSync (tfjs itself is not imported here: see
 * the file header). Any object with these members is read as a tensor.
 */
export function isTensorLike(x: unknown): x is tf.Tensor {
  if (typeof x !== 'object' || x === null) return false;
  const t = x as { shape?: unknown; rank?: unknown; dataSync?: unknown };
  return Array.isArray(t.shape) && typeof t.rank === 'number' && typeof t.dataSync === 'function';
}

/**
 * Convert any MatrixInput to Mat64 (a copy unless `x` already is a Mat64, which is returned as
 * is). `where` names the caller and argument in error messages, e.g. 'cholesky(A)'.
 */
export function toMat64(x: MatrixInput, where = 'matrix'): Mat64 {
  let m: Mat64;
  if (isMat64(x)) {
    if (x.data.length !== x.rows * x.cols) {
      throw new Error(`${where}: Mat64 data length ${x.data.length} does not match shape ${x.rows}x${x.cols}`);
    }
    m = x;
  } else if (Array.isArray(x)) {
    const rows = x.length;
    const cols = rows === 0 ? 0 : x[0].length;
    const data = new Float64Array(rows * cols);
    for (let i = 0; i < rows; i++) {
      const r = x[i];
      if (!Array.isArray(r) || r.length !== cols) {
        throw new Error(
          `${where}: ragged number[][] (row 0 has ${cols} entries, row ${i} has ${Array.isArray(r) ? r.length : 'no array'})`,
        );
      }
      for (let j = 0; j < cols; j++) data[i * cols + j] = r[j];
    }
    m = { rows, cols, data };
  } else if (x instanceof AbstractMatrix) {
    const rows = x.rows;
    const cols = x.columns;
    const data = new Float64Array(rows * cols);
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) data[i * cols + j] = x.get(i, j);
    m = { rows, cols, data };
  } else if (isTensorLike(x)) {
    if (x.rank !== 2) throw new Error(`${where}: expected a 2-D tensor, got shape [${x.shape.join(', ')}]`);
    m = {
      rows: x.shape[0] as number,
      cols: x.shape[1] as number,
      data: Float64Array.from(x.dataSync() as ArrayLike<number>),
    };
  } else {
    throw new Error(`${where}: expected Mat64, number[][], ml-matrix Matrix or 2-D tf.Tensor`);
  }
  return m;
}

export function assertSquare(m: Mat64, where: string): void {
  if (m.rows !== m.cols) throw new Error(`${where}: matrix is not square (${m.rows}x${m.cols})`);
  if (m.rows === 0) throw new Error(`${where}: matrix is empty (0x0)`);
}

export function assertFinite(m: Mat64, where: string): void {
  const d = m.data;
  for (let k = 0; k < d.length; k++) {
    if (!Number.isFinite(d[k])) {
      const i = Math.floor(k / m.cols);
      throw new Error(`${where}: non-finite entry ${d[k]} at (${i}, ${k - i * m.cols})`);
    }
  }
}

/** Largest |A_ij - A_ji| relative to max |A_ij|. */
export function asymmetry(m: Mat64): number {
  const n = m.rows;
  const d = m.data;
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const a = d[i * n + j];
      scale = Math.max(scale, Math.abs(a));
      if (j > i) diff = Math.max(diff, Math.abs(a - d[j * n + i]));
    }
  }
  return scale === 0 ? 0 : diff / scale;
}

/**
 * Validate a symmetric input: square, non-empty, finite, symmetric to `tol` (relative; the
 * default 1e-6 admits float32 round-off from tfjs). Kernels read one triangle only.
 * Returns the Mat64 (not copied when already one).
 */
export function symmetricInput(x: MatrixInput, where: string, tol = 1e-6): Mat64 {
  const m = toMat64(x, where);
  assertSquare(m, where);
  assertFinite(m, where);
  const asym = asymmetry(m);
  if (asym > tol) {
    throw new Error(`${where}: matrix is not symmetric (max |A - A^T| / max |A| = ${asym.toExponential(2)} > ${tol})`);
  }
  return m;
}

export function copy(m: Mat64): Mat64 {
  return { rows: m.rows, cols: m.cols, data: m.data.slice() };
}

export function transpose(m: Mat64): Mat64 {
  const { rows, cols, data } = m;
  const out = new Float64Array(rows * cols);
  const B = 32;
  for (let i0 = 0; i0 < rows; i0 += B) {
    const i1 = Math.min(rows, i0 + B);
    for (let j0 = 0; j0 < cols; j0 += B) {
      const j1 = Math.min(cols, j0 + B);
      for (let i = i0; i < i1; i++) for (let j = j0; j < j1; j++) out[j * rows + i] = data[i * cols + j];
    }
  }
  return { rows: cols, cols: rows, data: out };
}

/** Copy the upper triangle onto the lower one (in place); returns m. */
export function symmetrizeFromUpperInPlace(m: Mat64): Mat64 {
  const n = m.rows;
  const d = m.data;
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) d[j * n + i] = d[i * n + j];
  return m;
}

/**
 * C = A B^T for A (m x k), B (n x k): C_ij = <A_i, B_j>, rows contiguous. `upperOnly` computes
 * j >= i only (then mirrors), for symmetric results such as V D V^T.
 */
export function matmulABt(a: Mat64, b: Mat64, upperOnly = false): Mat64 {
  if (a.cols !== b.cols)
    throw new Error(`matmulABt: inner sizes differ (${a.rows}x${a.cols} times (${b.rows}x${b.cols})^T)`);
  const m = a.rows;
  const n = b.rows;
  const k = a.cols;
  const w = m * n * k >= 4096 ? wasm() : null;
  if (w !== null) {
    const out = { rows: m, cols: n, data: gemmAbtWasm(w, a.data, b.data, m, n, k, upperOnly) };
    if (upperOnly) symmetrizeFromUpperInPlace(out);
    return out;
  }
  const A = a.data;
  const Bd = b.data;
  const C = new Float64Array(m * n);
  // Tile B rows so a tile (jb rows x k) stays around 128 KiB.
  const jb = Math.max(4, Math.min(n, (Math.floor(16384 / Math.max(1, k)) >> 1) << 1));
  for (let j0 = 0; j0 < n; j0 += jb) {
    const j1 = Math.min(n, j0 + jb);
    let i = 0;
    for (; i + 1 < m; i += 2) {
      const a0 = i * k;
      const a1 = a0 + k;
      let j = upperOnly ? Math.max(j0, i) : j0;
      for (; j + 1 < j1; j += 2) {
        const b0 = j * k;
        const b1 = b0 + k;
        let s00 = 0,
          s01 = 0,
          s10 = 0,
          s11 = 0;
        for (let t = 0; t < k; t++) {
          const x0 = A[a0 + t];
          const x1 = A[a1 + t];
          const y0 = Bd[b0 + t];
          const y1 = Bd[b1 + t];
          s00 += x0 * y0;
          s01 += x0 * y1;
          s10 += x1 * y0;
          s11 += x1 * y1;
        }
        C[i * n + j] = s00;
        C[i * n + j + 1] = s01;
        C[(i + 1) * n + j] = s10;
        C[(i + 1) * n + j + 1] = s11;
      }
      for (; j < j1; j++) {
        const b0 = j * k;
        let s0 = 0,
          s1 = 0;
        for (let t = 0; t < k; t++) {
          const y = Bd[b0 + t];
          s0 += A[a0 + t] * y;
          s1 += A[a1 + t] * y;
        }
        C[i * n + j] = s0;
        C[(i + 1) * n + j] = s1;
      }
    }
    for (; i < m; i++) {
      const a0 = i * k;
      for (let j = upperOnly ? Math.max(j0, i) : j0; j < j1; j++) {
        const b0 = j * k;
        let s = 0;
        for (let t = 0; t < k; t++) s += A[a0 + t] * Bd[b0 + t];
        C[i * n + j] = s;
      }
    }
  }
  const out = { rows: m, cols: n, data: C };
  if (upperOnly) symmetrizeFromUpperInPlace(out);
  return out;
}

/** C = A B (float64). */
export function matmul(a: Mat64, b: Mat64): Mat64 {
  if (a.cols !== b.rows) throw new Error(`matmul: inner sizes differ (${a.rows}x${a.cols} times ${b.rows}x${b.cols})`);
  return matmulABt(a, transpose(b));
}

/** y = A x. */
export function matvec(a: Mat64, x: Float64Array): Float64Array {
  if (a.cols !== x.length) throw new Error(`matvec: sizes differ (${a.rows}x${a.cols} times vector of ${x.length})`);
  const { rows, cols, data } = a;
  const y = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    const o = i * cols;
    for (let j = 0; j < cols; j++) s += data[o + j] * x[j];
    y[i] = s;
  }
  return y;
}

export function frobeniusNorm(m: Mat64): number {
  let s = 0;
  const d = m.data;
  for (let k = 0; k < d.length; k++) s += d[k] * d[k];
  return Math.sqrt(s);
}

/** ||A - B||_F / ||B||_F (0/0 = 0). */
export function relativeDifference(a: Mat64, b: Mat64): number {
  if (a.rows !== b.rows || a.cols !== b.cols) {
    throw new Error(`relativeDifference: shapes differ (${a.rows}x${a.cols} vs ${b.rows}x${b.cols})`);
  }
  let num = 0;
  let den = 0;
  for (let k = 0; k < a.data.length; k++) {
    const d = a.data[k] - b.data[k];
    num += d * d;
    den += b.data[k] * b.data[k];
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** A + s I (new matrix). */
export function addDiagonal(m: Mat64, s: number): Mat64 {
  const out = copy(m);
  const n = m.rows;
  for (let i = 0; i < n; i++) out.data[i * n + i] += s;
  return out;
}

export function toArray2D(m: Mat64): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < m.rows; i++) out.push(Array.from(m.data.subarray(i * m.cols, (i + 1) * m.cols)));
  return out;
}

export function toMlMatrix(m: Mat64): Matrix {
  return new Matrix(toArray2D(m));
}

/** Deterministic RNG (mulberry32, src/rng.ts) for probes; not exported from the package index. */
export const rng = mulberry32;
