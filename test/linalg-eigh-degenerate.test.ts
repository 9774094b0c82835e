/**
 * eigh on degenerate spectra: Gram matrices G G^T of rank k < n with exactly zero rows (Shampoo's
 * and SOAP's statistic of MNIST's first layer, whose always-zero pixels give a ~164-fold zero
 * eigenvalue), at scales from 1e-30 to 1e30, on both kernels. Checks the exact residual
 * ||A V - V L||_F / ||A||_F, orthogonality max |V^T V - I|, and the eigenvalues against ml-matrix's
 * independent EISPACK-style solver; the zero rows' coordinates must be eigenvectors of 0.
 * Before the fix in tred (linalg.c, eigh.ts), the round-off residue left in the null space
 * shrank by ~eps per Householder step and 1/(sigma |v0|) overflowed: a non-finite eigenvalue
 * for max|a_ij| below ~1e-6.
 */
import { describe, it, expect } from 'vitest';
import { Matrix, EigenvalueDecomposition } from 'ml-matrix';
import { Mat64, matmulABt, eighRows, setLinalgKernel } from '../src/linalg/index.js';
import { seededRandom } from './helpers/fd.js';
import { eighQuality } from './helpers/matrix.js';
import { loadMnist } from '../experiments/index.js';

/** G G^T for G (n x k) random with `zeros` exactly zero rows at random positions, times `scale`. */
function degenerateGram(n: number, k: number, zeros: number, scale: number, seed: number) {
  const r = seededRandom(seed);
  const zeroRows = new Set<number>();
  while (zeroRows.size < zeros) zeroRows.add(Math.floor(r() * n));
  const g = new Float64Array(n * k);
  for (let i = 0; i < n; i++) {
    if (zeroRows.has(i)) continue;
    // decaying column scales, like a gradient's singular values
    for (let j = 0; j < k; j++) g[i * k + j] = (r() - 0.5) * 10 ** (-3 * (j / k));
  }
  const G: Mat64 = { rows: n, cols: k, data: g };
  const a = matmulABt(G, G, true);
  for (let t = 0; t < a.data.length; t++) a.data[t] *= scale;
  return { a, zeroRows };
}

/** Residual, orthogonality and eigenvalue error (test/helpers/matrix.ts), and that the values ascend. */
function check(a: Mat64, values: Float64Array, vt: Float64Array) {
  const q = eighQuality(a, values, vt);
  let ascending = true;
  for (let k = 1; k < values.length; k++) if (values[k]! < values[k - 1]!) ascending = false;
  return { residual: q.res, orth: q.orth, valErr: q.ev, ascending };
}

describe('eigh on Gram matrices with a many-fold zero eigenvalue', () => {
  const n = 120;
  const k = 24;
  const zeros = 30;
  for (const kernel of ['wasm', 'js'] as const) {
    for (const scale of [1, 1e-12, 1e-30, 1e30]) {
      it(`${kernel} kernel, scale ${scale}: residual, orthogonality, eigenvalues, null vectors`, () => {
        const { a, zeroRows } = degenerateGram(n, k, zeros, scale, 7);
        setLinalgKernel(kernel);
        let r;
        try {
          r = eighRows(a);
        } finally {
          setLinalgKernel(null);
        }
        const { values, vt } = r;
        for (const v of values) expect(Number.isFinite(v)).toBe(true);
        const q = check(a, values, vt.data);
        expect(q.residual).toBeLessThan(1e-13);
        expect(q.orth).toBeLessThan(1e-12);
        expect(q.valErr).toBeLessThan(1e-13);
        expect(q.ascending).toBe(true);
        // rank k: n - k eigenvalues are zero to round-off
        const top = values[n - 1]!;
        expect(values.filter((v) => Math.abs(v) <= 1e-12 * top).length).toBe(n - k);
        expect(values[n - k]! / top).toBeGreaterThan(1e-8);
        // a zero row's coordinate vector e_i lies in the null space: its component on the
        // eigenvector of a nonzero eigenvalue lambda is round-off, ~eps ||A|| / lambda
        let worst = 0;
        for (const i of zeroRows) {
          for (let m = n - k; m < n; m++) worst = Math.max(worst, (Math.abs(vt.data[m * n + i]!) * values[m]!) / top);
        }
        expect(worst).toBeLessThan(1e-14);
      });
    }
  }
});

/** Residual and orthogonality with the (wasm) matrix product: O(n^3) but fast at n = 784. */
function checkFast(a: Mat64, values: Float64Array, vt: Mat64) {
  const n = a.rows;
  let amax = 0;
  for (const x of a.data) amax = Math.max(amax, Math.abs(x));
  const s = 1 / amax;
  const as: Mat64 = { rows: n, cols: n, data: a.data.map((x) => x * s) };
  const avt = matmulABt(vt, as); // row k = (A v_k)^T
  let res = 0;
  let na = 0;
  for (const x of as.data) na += x * x;
  for (let k = 0; k < n; k++) {
    for (let i = 0; i < n; i++) res += (avt.data[k * n + i]! - values[k]! * s * vt.data[k * n + i]!) ** 2;
  }
  const g = matmulABt(vt, vt);
  let orth = 0;
  for (let k = 0; k < n; k++)
    for (let l = 0; l < n; l++) orth = Math.max(orth, Math.abs(g.data[k * n + l]! - (k === l ? 1 : 0)));
  return { residual: Math.sqrt(res / na), orth };
}

describe('eigh of an MNIST pixel Gram matrix X^T X (784 x 784, rank 8)', () => {
  // The first 8 training digits: pixels >= 0, 784 - 8 zero eigenvalues (many exactly zero rows).
  // The old tred overflowed on this matrix at every scale tried (1e-20 to 1e-6).
  const m = 8;
  const n = 784;
  const data = loadMnist();
  const xt: Mat64 = { rows: n, cols: m, data: new Float64Array(n * m) };
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) xt.data[j * m + i] = data.trainX[i * n + j]!;
  const c = matmulABt(xt, xt, true);
  // nonzero eigenvalues of X^T X = eigenvalues of X X^T (8 x 8), by ml-matrix
  const x = new Matrix(Array.from({ length: m }, (_, i) => Array.from(data.trainX.subarray(i * n, i * n + n))));
  const small = new EigenvalueDecomposition(x.mmul(x.transpose()), { assumeSymmetric: true }).realEigenvalues.sort(
    (p, q) => p - q,
  );
  for (const kernel of ['wasm', 'js'] as const) {
    for (const scale of [1, 1e-6, 1e-12]) {
      it(`${kernel} kernel, scale ${scale}`, () => {
        const a: Mat64 = { rows: n, cols: n, data: c.data.map((v) => v * scale) };
        setLinalgKernel(kernel);
        let r;
        try {
          r = eighRows(a);
        } finally {
          setLinalgKernel(null);
        }
        for (const v of r.values) expect(Number.isFinite(v)).toBe(true);
        const q = checkFast(a, r.values, r.vt);
        expect(q.residual).toBeLessThan(1e-13);
        expect(q.orth).toBeLessThan(1e-12);
        const top = small[m - 1]!;
        for (let i = 0; i < m; i++)
          expect(Math.abs(r.values[n - m + i]! / scale - small[i]!) / top).toBeLessThan(1e-13);
        for (let i = 0; i < n - m; i++) expect(Math.abs(r.values[i]! / scale) / top).toBeLessThan(1e-13);
      });
    }
  }
});
