/**
 * The WebAssembly float64 kernels of src/linalg (src/linalg/wasm/linalg.c): the embedded module
 * matches the committed .wasm, loads in Node, and agrees with the pure-JS kernels and with
 * ml-matrix on eigendecompositions (random, clustered, low-rank, ill-conditioned, odd sizes),
 * products and inverse roots; bad input still throws with the wasm kernels active.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Matrix, EigenvalueDecomposition } from 'ml-matrix';
import {
  Mat64,
  mat64,
  matmul,
  matmulABt,
  transpose,
  relativeDifference,
  eigh,
  eighRows,
  eighResidual,
  inverseRoot,
  linalgKernel,
  setLinalgKernel,
  toMat64,
  toMlMatrix,
  cholesky,
  spdInverse,
  identity,
} from '../src/linalg/index.js';
import { LINALG_WASM_BASE64 } from '../src/linalg/wasm/module.js';
import { seededRandom } from './helpers/fd.js';

// mulberry32, shared with the other derivative tests.
const rng = seededRandom;

function randn(rows: number, cols: number, seed: number): Mat64 {
  const r = rng(seed);
  const m = mat64(rows, cols);
  for (let k = 0; k < m.data.length; k++) m.data[k] = r() + r() + r() - 1.5;
  return m;
}

/** G G^T / cols + shift I with G n x cols (cols < n: rank-deficient, a cluster at `shift`). */
function gram(n: number, cols: number, shift: number, seed: number): Mat64 {
  const g = randn(n, cols, seed);
  const a = matmulABt(g, g);
  for (let k = 0; k < a.data.length; k++) a.data[k] /= cols;
  for (let i = 0; i < n; i++) a.data[i * n + i] += shift;
  return a;
}

/** Q diag(lambda) Q^T with Q from a QR-free orthogonalisation (eigh of a random symmetric matrix). */
function withSpectrum(lambda: number[], seed: number): Mat64 {
  const n = lambda.length;
  const s = gram(n, n, 0, seed);
  const { vectors } = eigh(s);
  const vl = mat64(n, n);
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) vl.data[i * n + k] = vectors.data[i * n + k] * lambda[k];
  const a = matmulABt(vl, vectors);
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) a.data[i * n + j] = a.data[j * n + i];
  return a;
}

function eighBoth(a: Mat64) {
  setLinalgKernel('wasm');
  const w = eighRows(a);
  setLinalgKernel('js');
  const j = eighRows(a);
  setLinalgKernel(null);
  return { w, j };
}

afterEach(() => setLinalgKernel(null));

describe('wasm kernels', () => {
  it('embedded module equals src/linalg/wasm/linalg.wasm and loads in Node', () => {
    const file = readFileSync(fileURLToPath(new URL('../src/linalg/wasm/linalg.wasm', import.meta.url)));
    expect(Buffer.from(LINALG_WASM_BASE64, 'base64').equals(file)).toBe(true);
    expect(linalgKernel()).toBe('wasm');
    setLinalgKernel('js');
    expect(linalgKernel()).toBe('js');
    expect(() => setLinalgKernel('gpu' as never)).toThrow(/setLinalgKernel/);
  });

  it('eigh: wasm and JS kernels agree on random, odd-sized, clustered and diagonal matrices', () => {
    const cases: [string, Mat64][] = [
      ['1x1', mat64(1, 1, [3])],
      ['2x2', mat64(2, 2, [2, 1, 1, 2])],
      ['3x3', gram(3, 3, 0.1, 1)],
      ['17 random', gram(17, 17, 0.01, 2)],
      ['odd 37 rank 5 + 1e-3 I (cluster of 32)', gram(37, 5, 1e-3, 3)],
      ['130 rank 20 (cluster at 0)', gram(130, 20, 0, 4)],
      ['diagonal', mat64(5, 5, [3, 0, 0, 0, 0, 0, -1, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0.5])],
    ];
    for (const [name, a] of cases) {
      const { w, j } = eighBoth(a);
      const n = a.rows;
      const scale = Math.max(Math.abs(j.values[0]), Math.abs(j.values[n - 1]), 1e-300);
      for (let i = 0; i < n; i++)
        expect(Math.abs(w.values[i] - j.values[i]) / scale, `${name} value ${i}`).toBeLessThan(1e-13);
      expect(eighResidual(a, w.values, w.vt), name).toBeLessThan(1e-13);
      // orthonormal rows
      const g = matmulABt(w.vt, w.vt);
      for (let i = 0; i < n; i++) g.data[i * n + i] -= 1;
      expect(Math.max(...g.data.map(Math.abs)), name).toBeLessThan(1e-13);
    }
  });

  it('eigh at n = 200 matches ml-matrix eigenvalues and reconstructs A (wasm)', () => {
    const a = gram(200, 200, 1e-3, 5);
    const { values, vectors } = eigh(a);
    const ref = new EigenvalueDecomposition(toMlMatrix(a), { assumeSymmetric: true }).realEigenvalues.sort(
      (x, y) => x - y,
    );
    for (let i = 0; i < 200; i++) expect(Math.abs(values[i] - ref[i])).toBeLessThan(1e-12 * ref[199]);
    const vl = mat64(200, 200);
    for (let i = 0; i < 200; i++)
      for (let k = 0; k < 200; k++) vl.data[i * 200 + k] = vectors.data[i * 200 + k] * values[k];
    expect(relativeDifference(matmul(vl, transpose(vectors)), a)).toBeLessThan(1e-13);
  });

  it('matmul / matmulABt (upper and full): wasm equals JS to round-off on odd shapes', () => {
    for (const [m, k, n] of [
      [1, 1, 1],
      [5, 7, 3],
      [33, 65, 17],
      [130, 300, 129],
    ]) {
      const a = randn(m, k, m + k);
      const b = randn(n, k, n * 3 + 1);
      setLinalgKernel('js');
      const cj = matmulABt(a, b);
      setLinalgKernel('wasm');
      const cw = matmulABt(a, b);
      expect(relativeDifference(cw, cj)).toBeLessThan(1e-14);
      const s = randn(m, k, 9);
      const uw = matmulABt(s, s, true);
      setLinalgKernel('js');
      expect(relativeDifference(uw, matmulABt(s, s, true))).toBeLessThan(1e-14);
      expect(relativeDifference(uw, transpose(uw))).toBe(0);
    }
  });

  it('inverseRoot (eigh, wasm) vs ml-matrix on well- and ill-conditioned inputs', () => {
    const n = 96;
    const spectra: [string, number[]][] = [
      ['cond 1e3', Array.from({ length: n }, (_, i) => 10 ** (-3 * (i / (n - 1))))],
      ['cond 1e6', Array.from({ length: n }, (_, i) => 10 ** (-6 * (i / (n - 1))))],
      ['cond 1e12 (clustered tail)', Array.from({ length: n }, (_, i) => (i < 48 ? 1 + i / 48 : 1e-12))],
    ];
    for (const [name, lambda] of spectra) {
      const a = withSpectrum(lambda, 11);
      const r = inverseRoot(a, 4, { epsilon: 1e-9 });
      const ed = new EigenvalueDecomposition(toMlMatrix(a), { assumeSymmetric: true });
      const V = ed.eigenvectorMatrix;
      const d = ed.realEigenvalues.map((l) => (Math.max(l, 0) + 1e-9) ** -0.25);
      const ref = toMat64(V.mmul(Matrix.diag(d)).mmul(V.transpose()));
      // float64 round-off perturbs lambda + eps by ~1e-16 lambda_max: relative root error ~1e-16 cond
      const cond = (lambda[0] + 1e-9) / (Math.min(...lambda) + 1e-9);
      expect(relativeDifference(r.root, ref), name).toBeLessThan(Math.max(1e-12, 1e-15 * cond));
      expect(r.error, name).toBeLessThan(1e-5);
    }
  });

  it('cholesky / spdInverse: wasm equals JS, including the jitter retry of a singular PSD matrix', () => {
    // Tolerances: the jittered singular matrix has cond ~1e9, so the two summation orders differ
    // by ~1e-16 cond in the inverse; the residual checks each result on its own.
    for (const [name, a, tolL, tolInv] of [
      ['SPD 101', gram(101, 101, 1e-2, 21), 1e-12, 1e-11],
      ['singular PSD 64 (rank 10)', gram(64, 10, 0, 22), 1e-8, 1e-4],
    ] as [string, Mat64, number, number][]) {
      setLinalgKernel('wasm');
      const cw = cholesky(a);
      const iw = spdInverse(a);
      setLinalgKernel('js');
      const cj = cholesky(a);
      const ij = spdInverse(a);
      expect(cw.jitter, name).toBe(cj.jitter);
      expect(cw.tries, name).toBe(cj.tries);
      expect(relativeDifference(cw.L, cj.L), name).toBeLessThan(tolL);
      expect(relativeDifference(iw.inverse, ij.inverse), name).toBeLessThan(tolInv);
      const shifted = a.data.slice();
      for (let i = 0; i < a.rows; i++) shifted[i * a.rows + i] += iw.jitter;
      const S = { rows: a.rows, cols: a.rows, data: shifted };
      const resW = relativeDifference(matmul(S, iw.inverse), identity(a.rows));
      const resJ = relativeDifference(matmul(S, ij.inverse), identity(a.rows));
      expect(resW, name).toBeLessThan(10 * resJ + 1e-13);
    }
    setLinalgKernel('wasm');
    expect(() =>
      cholesky(
        mat64(
          20,
          20,
          Array.from({ length: 400 }, (_, k) => (k % 21 === 0 ? -1 : 0)),
        ),
        { maxTries: 2 },
      ),
    ).toThrow(/pivot/);
  });

  it('bad input still throws with the wasm kernels', () => {
    expect(() =>
      eigh([
        [1, NaN],
        [NaN, 1],
      ]),
    ).toThrow(/non-finite/);
    expect(() =>
      inverseRoot(
        [
          [1, 2, 3],
          [4, 5, 6],
        ],
        4,
      ),
    ).toThrow(/not square/);
    expect(() =>
      inverseRoot(
        [
          [-1, 0],
          [0, 1],
        ],
        4,
      ),
    ).toThrow(/positive semidefinite/);
    expect(() =>
      eigh([
        [1e308, 1e308],
        [1e308, 1e308],
      ]),
    ).toThrow(/not finite/);
    const tiny = eigh([
      [3e-320, 1e-320],
      [1e-320, 3e-320],
    ]).values; // subnormal scale: no underflow to 0
    expect(tiny[0]).toBeGreaterThan(0);
  });
});
