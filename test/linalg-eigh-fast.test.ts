/**
 * The fast wasm symmetric eigendecomposition (linalg.c syevi: tred, QL eigenvalues, inverse
 * iteration per unreduced block of T, Householder back-transformation), used by eighRows and
 * Shampoo: against ml-matrix and the QL path (eighWasm) on random, rank-deficient PSD, exactly
 * repeated, identity, diagonal, ill-conditioned, clustered, tiny and huge inputs. Checks the
 * exact residual ||A V - V L||_F / ||A||_F, orthogonality max |V^T V - I| and eigenvalue errors
 * relative to ||A||_F.
 */
import { describe, it, expect } from 'vitest';
import { Mat64, mat64, matmulABt, eigh, eighRows, setLinalgKernel } from '../src/linalg/index.js';
import { wasm, eighWasm, eighWasmFast } from '../src/linalg/kernels.js';
import { seededRandom } from './helpers/fd.js';
import { eighQuality as quality } from './helpers/matrix.js';

function randSym(n: number, seed: number): Mat64 {
  const r = seededRandom(seed);
  const a = mat64(n, n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      const v = r() - 0.5;
      a.data[i * n + j] = v;
      a.data[j * n + i] = v;
    }
  }
  return a;
}

/** Q diag(lambda) Q^T with Q orthonormal (eigenvectors of a random symmetric matrix, QL path). */
function withSpectrum(lambda: number[], seed: number): Mat64 {
  const n = lambda.length;
  setLinalgKernel('js');
  const { vectors } = eigh(randSym(n, seed));
  setLinalgKernel(null);
  const vl = mat64(n, n);
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) vl.data[i * n + k] = vectors.data[i * n + k] * lambda[k]!;
  const a = matmulABt(vl, vectors);
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) a.data[i * n + j] = a.data[j * n + i]!;
  return a;
}

/** Sum of `k` outer products g g^T (rank <= k) with g the columns of a random n x k matrix. */
function lowRank(n: number, k: number, shift: number, seed: number): Mat64 {
  const r = seededRandom(seed);
  const g = mat64(k, n);
  for (let t = 0; t < g.data.length; t++) g.data[t] = r() + r() + r() - 1.5;
  const a = matmulABt(
    { rows: n, cols: k, data: transposeData(g.data, k, n) },
    { rows: n, cols: k, data: transposeData(g.data, k, n) },
  );
  for (let i = 0; i < n; i++) a.data[i * n + i] += shift;
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) a.data[i * n + j] = a.data[j * n + i]!;
  return a;
}
function transposeData(x: Float64Array, rows: number, cols: number): Float64Array {
  const y = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) y[j * rows + i] = x[i * cols + j]!;
  return y;
}

const w = wasm();
const cases: [string, () => Mat64][] = [
  ...[1, 2, 5, 64, 128, 200].map((n): [string, () => Mat64] => [
    `random symmetric n = ${n}`,
    () => randSym(n, 100 + n),
  ]),
  ['PSD rank 3 (sum of 3 outer products), n = 128', () => lowRank(128, 3, 0, 7)],
  ['PSD rank 30 + 1e-6 I, n = 128', () => lowRank(128, 30, 1e-6, 8)],
  ['PSD rank 10 (AdaGrad-like), n = 200', () => lowRank(200, 10, 0, 9)],
  [
    'exactly repeated eigenvalues diag(1,1,1,2,2,5,...), n = 128',
    () =>
      withSpectrum(
        Array.from({ length: 128 }, (_, k) => (k < 3 ? 1 : k < 5 ? 2 : k < 60 ? 5 : k)),
        3,
      ),
  ],
  ['identity n = 128', () => withSpectrum(new Array(128).fill(1), 4)],
  [
    'exact identity n = 64',
    () => {
      const a = mat64(64, 64);
      for (let i = 0; i < 64; i++) a.data[i * 65] = 1;
      return a;
    },
  ],
  [
    'diagonal with repeats n = 128',
    () => {
      const a = mat64(128, 128);
      for (let i = 0; i < 128; i++) a.data[i * 129] = (i * 7) % 13;
      return a;
    },
  ],
  [
    'condition 1e10, n = 128',
    () =>
      withSpectrum(
        Array.from({ length: 128 }, (_, k) => 10 ** ((-10 * k) / 127)),
        5,
      ),
  ],
  [
    'clustered 1 + 1e-6 k, n = 128',
    () =>
      withSpectrum(
        Array.from({ length: 128 }, (_, k) => 1 + 1e-6 * k),
        6,
      ),
  ],
  [
    'tiny scale 1e-150, n = 64',
    () => {
      const a = randSym(64, 11);
      a.data.forEach((x, k) => (a.data[k] = x * 1e-150));
      return a;
    },
  ],
  [
    'huge scale 1e150, n = 64',
    () => {
      const a = randSym(64, 12);
      a.data.forEach((x, k) => (a.data[k] = x * 1e150));
      return a;
    },
  ],
  ['zero matrix n = 16', () => mat64(16, 16)],
];

describe.skipIf(w === null)('fast wasm eigh (inverse iteration)', () => {
  for (const [name, make] of cases) {
    it(`${name}: residual, orthogonality and eigenvalues`, () => {
      const a = make();
      // eighRows (power-of-two scaling, sorting) on the fast wasm path
      setLinalgKernel('wasm');
      const { values, vt } = eighRows(a);
      setLinalgKernel(null);
      for (let k = 1; k < values.length; k++) expect(values[k]).toBeGreaterThanOrEqual(values[k - 1]!);
      const q = quality(a, values, vt.data);
      expect(q.res).toBeLessThan(1e-13);
      expect(q.orth).toBeLessThan(1e-12);
      expect(q.ev).toBeLessThan(1e-13);
      // the kernel directly (unsorted) where no scaling is needed, and the QL path alike
      const amax = a.data.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      if (amax < 2 ** 400 && (amax === 0 || amax > 2 ** -400)) {
        const f = eighWasmFast(w!, a.data, a.rows);
        const qf = quality(a, f.d, f.vt);
        expect(qf.res).toBeLessThan(1e-13);
        expect(qf.orth).toBeLessThan(1e-12);
        const ql = eighWasm(w!, a.data, a.rows);
        const sf = Array.from(f.d).sort((x, y) => x - y);
        const sq = Array.from(ql.d).sort((x, y) => x - y);
        let na = 0;
        for (const x of a.data) na += x * x;
        na = Math.sqrt(na) || 1;
        for (let k = 0; k < sf.length; k++) expect(Math.abs(sf[k]! - sq[k]!) / na).toBeLessThan(1e-13);
      }
    });
  }

  it('can fail: a wrong eigenvector breaks the residual and orthogonality checks', () => {
    const a = randSym(32, 21);
    const f = eighWasmFast(w!, a.data, 32);
    const vt = f.vt.slice();
    for (let i = 0; i < 32; i++) vt[5 * 32 + i] = vt[6 * 32 + i]!; // duplicate a vector
    const q = quality(a, f.d, vt);
    expect(q.res).toBeGreaterThan(1e-3);
    expect(q.orth).toBeGreaterThan(0.5);
  });
});
