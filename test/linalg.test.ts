import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Matrix, EigenvalueDecomposition, inverse as mlInverse } from 'ml-matrix';
import {
  Mat64,
  mat64,
  identity,
  toMat64,
  toArray2D,
  toMlMatrix,
  toTensor,
  matmul,
  transpose,
  relativeDifference,
  cholesky,
  spdSolve,
  spdInverse,
  eigh,
  inverseRoot,
  matrixPower,
  solveModified,
  splitDim,
  mergeSmallDims,
  blockPlan,
} from '../src/linalg/index.js';
import { initBackend } from '../src/backend.js';
import { seededRandom } from './helpers/fd.js';

// mulberry32, shared with the other derivative tests.
const rng = seededRandom;

function gaussian(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(rand() + 1e-300)) * Math.cos(2 * Math.PI * rand());
}

function randomOrthogonal(n: number, rand: () => number): Mat64 {
  // Gram-Schmidt on a Gaussian matrix (rows).
  const q = mat64(n, n);
  for (let k = 0; k < n * n; k++) q.data[k] = gaussian(rand);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < i; j++) {
      let d = 0;
      for (let k = 0; k < n; k++) d += q.data[i * n + k] * q.data[j * n + k];
      for (let k = 0; k < n; k++) q.data[i * n + k] -= d * q.data[j * n + k];
    }
    let nr = 0;
    for (let k = 0; k < n; k++) nr += q.data[i * n + k] ** 2;
    nr = Math.sqrt(nr);
    for (let k = 0; k < n; k++) q.data[i * n + k] /= nr;
  }
  return q;
}

/** Q diag(values) Q^T with a random orthogonal Q. */
function withSpectrum(values: number[], seed: number): Mat64 {
  const n = values.length;
  const q = randomOrthogonal(n, rng(seed));
  const qd = mat64(n, n);
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) qd.data[i * n + k] = q.data[k * n + i] * values[k];
  const a = matmul(qd, q);
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) a.data[j * n + i] = a.data[i * n + j];
  return a;
}

function randomSpd(n: number, seed: number): Mat64 {
  const rand = rng(seed);
  const g = mat64(n, n);
  for (let k = 0; k < n * n; k++) g.data[k] = gaussian(rand);
  const a = matmul(g, transpose(g));
  for (let i = 0; i < n; i++) a.data[i * n + i] += n * 0.05;
  return a;
}

function power(m: Mat64, p: number): Mat64 {
  let r = m;
  for (let k = 1; k < p; k++) r = matmul(r, m);
  return r;
}

function mlEigRoot(a: Mat64, p: number, eps: number): Mat64 {
  const ed = new EigenvalueDecomposition(toMlMatrix(a), { assumeSymmetric: true });
  const V = ed.eigenvectorMatrix;
  const d = ed.realEigenvalues.map((l) => (Math.max(l, 0) + eps) ** (-1 / p));
  return toMat64(V.mmul(Matrix.diag(d)).mmul(V.transpose()));
}

const spd40 = randomSpd(40, 11);
const logSpectrum = Array.from({ length: 30 }, (_, i) => 10 ** (-8 * (i / 29))); // cond 1e8

beforeAll(async () => {
  await initBackend('wasm');
});

describe('conversions and validation', () => {
  it('round-trips number[][], ml-matrix and tf tensors', () => {
    const a = [
      [1, 2],
      [3, 4],
    ];
    const m = toMat64(a);
    expect(Array.from(m.data)).toEqual([1, 2, 3, 4]);
    expect(toArray2D(m)).toEqual(a);
    expect(toMat64(toMlMatrix(m)).data).toEqual(m.data);
    const t = toTensor(m);
    expect(t.shape).toEqual([2, 2]);
    expect(Array.from(toMat64(t).data)).toEqual([1, 2, 3, 4]);
    t.dispose();
  });

  it('rejects non-square, ragged, non-finite, asymmetric and 1-D tensor inputs by name', () => {
    expect(() =>
      cholesky([
        [1, 2, 3],
        [4, 5, 6],
      ]),
    ).toThrow(/not square \(2x3\)/);
    expect(() => eigh([[1, 2], [3]])).toThrow(/ragged/);
    expect(() =>
      eigh([
        [1, NaN],
        [NaN, 1],
      ]),
    ).toThrow(/non-finite entry NaN at \(0, 1\)/);
    expect(() =>
      spdInverse([
        [1, Infinity],
        [Infinity, 1],
      ]),
    ).toThrow(/non-finite/);
    expect(() =>
      inverseRoot(
        [
          [2, 1],
          [0, 2],
        ],
        2,
      ),
    ).toThrow(/not symmetric/);
    const v = tf.tensor1d([1, 2]);
    expect(() => eigh(v)).toThrow(/2-D tensor/);
    v.dispose();
    expect(() => eigh([])).toThrow(/empty/);
  });

  it('rejects size mismatches in solves and products', () => {
    expect(() => spdSolve(spd40, new Float64Array(39))).toThrow(/39 entries, A is 40x40/);
    expect(() => spdSolve(spd40, mat64(41, 2))).toThrow(/41 rows/);
    expect(() => matmul(mat64(2, 3), mat64(2, 3))).toThrow(/inner sizes differ/);
    expect(() => spdSolve(spd40, Array(40).fill(NaN))).toThrow(/non-finite/);
  });
});

describe('cholesky, spdSolve, spdInverse', () => {
  it('factors an SPD matrix without jitter: L L^T = A', () => {
    const { L, jitter, tries } = cholesky(spd40);
    expect(jitter).toBe(0);
    expect(tries).toBe(1);
    expect(relativeDifference(matmul(L, transpose(L)), spd40)).toBeLessThan(1e-14);
    for (let i = 0; i < 40; i++) for (let j = i + 1; j < 40; j++) expect(L.data[i * 40 + j]).toBe(0);
  });

  it('retries a singular PSD matrix with growing jitter and reports it', () => {
    const a = withSpectrum([3, 2, 1, 0, 0], 5);
    const { L, jitter, tries } = cholesky(a);
    expect(tries).toBeGreaterThan(1);
    expect(jitter).toBeGreaterThan(0);
    expect(jitter).toBeLessThan(1e-3);
    const shifted = a.data.slice();
    for (let i = 0; i < 5; i++) shifted[i * 5 + i] += jitter;
    expect(relativeDifference(matmul(L, transpose(L)), mat64(5, 5, shifted))).toBeLessThan(1e-12);
  });

  it('throws a clear error for an indefinite matrix when the retry is exhausted', () => {
    const a = withSpectrum([1, 1, -1], 3);
    expect(() => cholesky(a, { maxTries: 4 })).toThrow(/not positive definite: pivot \d of 3 failed even with jitter/);
    expect(() => cholesky(a, { maxTries: 0 })).toThrow(/invalid options/);
  });

  it('solves one and many right-hand sides with a small residual', () => {
    const rand = rng(2);
    const b = Array.from({ length: 40 }, () => gaussian(rand));
    const r1 = spdSolve(spd40, b);
    expect(r1.x).toBeInstanceOf(Float64Array);
    expect(r1.residual).toBeLessThan(1e-13);
    const B = mat64(
      40,
      3,
      Array.from({ length: 120 }, () => gaussian(rand)),
    );
    const r3 = spdSolve(spd40, B);
    expect(r3.x.cols).toBe(3);
    expect(relativeDifference(matmul(spd40, r3.x), B)).toBeLessThan(1e-13);
  });

  it('inverts an SPD matrix: agrees with ml-matrix and A A^{-1} = I', () => {
    const { inverse, jitter } = spdInverse(spd40);
    expect(jitter).toBe(0);
    expect(relativeDifference(matmul(spd40, inverse), identity(40))).toBeLessThan(1e-12);
    expect(relativeDifference(inverse, toMat64(mlInverse(toMlMatrix(spd40))))).toBeLessThan(1e-11);
  });

  it('inverts a condition-1e8 matrix to the accuracy its conditioning allows', () => {
    const a = withSpectrum(logSpectrum, 8);
    const { inverse } = spdInverse(a);
    expect(relativeDifference(matmul(a, inverse), identity(30))).toBeLessThan(1e-6);
  });

  it('handles 1x1', () => {
    expect(cholesky([[4]]).L.data[0]).toBe(2);
    expect(spdInverse([[4]]).inverse.data[0]).toBe(0.25);
    expect(spdSolve([[4]], [2]).x[0]).toBe(0.5);
  });
});

describe('eigh', () => {
  it('matches ml-matrix eigenvalues and reconstructs A = V diag V^T with orthonormal V', () => {
    const { values, vectors } = eigh(spd40);
    const ml = new EigenvalueDecomposition(toMlMatrix(spd40), { assumeSymmetric: true }).realEigenvalues;
    for (let i = 0; i < 40; i++) expect(Math.abs(values[i] - ml[i])).toBeLessThan(1e-11 * values[39]);
    for (let i = 1; i < 40; i++) expect(values[i]).toBeGreaterThanOrEqual(values[i - 1]);
    const vd = mat64(40, 40);
    for (let i = 0; i < 40; i++)
      for (let k = 0; k < 40; k++) vd.data[i * 40 + k] = vectors.data[i * 40 + k] * values[k];
    expect(relativeDifference(matmul(vd, transpose(vectors)), spd40)).toBeLessThan(1e-13);
    expect(relativeDifference(matmul(transpose(vectors), vectors), identity(40))).toBeLessThan(1e-13);
  });

  it('resolves a known spectrum of an indefinite matrix with repeated eigenvalues', () => {
    const spec = [-3, -1, 0, 0, 2, 2, 2, 5];
    const { values } = eigh(withSpectrum(spec, 4));
    spec.forEach((l, i) => expect(values[i]).toBeCloseTo(l, 12));
  });

  it('handles diagonal, 1x1 and 2x2 matrices', () => {
    expect(
      Array.from(
        eigh([
          [3, 0, 0],
          [0, 1, 0],
          [0, 0, 2],
        ]).values,
      ),
    ).toEqual([1, 2, 3]);
    const one = eigh([[-7]]);
    expect(one.values[0]).toBe(-7);
    expect(Math.abs(one.vectors.data[0])).toBe(1);
    const two = eigh([
      [2, 1],
      [1, 2],
    ]);
    expect(two.values[0]).toBeCloseTo(1, 14);
    expect(two.values[1]).toBeCloseTo(3, 14);
  });
});

describe('inverseRoot and matrixPower', () => {
  it('eigh: (A^{-1/4})^4 A = I on random SPD, agreeing with ml-matrix', () => {
    const r = inverseRoot(spd40, 4);
    expect(r.error).toBeLessThan(1e-12);
    expect(relativeDifference(matmul(power(r.root, 4), spd40), identity(40))).toBeLessThan(1e-12);
    expect(relativeDifference(r.root, mlEigRoot(spd40, 4, 0))).toBeLessThan(1e-12);
  });

  it('newton (float64) converges to the same root with its residual reported', () => {
    const ref = inverseRoot(spd40, 4).root;
    const r = inverseRoot(spd40, 4, { method: 'newton' });
    expect(r.converged).toBe(true);
    expect(r.newtonResidual).toBeLessThanOrEqual(1e-10);
    expect(r.iterations).toBeGreaterThan(0);
    expect(r.error).toBeLessThan(1e-9);
    expect(relativeDifference(r.root, ref)).toBeLessThan(1e-9);
  });

  it('newton-f32 (tfjs) reaches float32 accuracy', () => {
    const ref = inverseRoot(spd40, 2).root;
    const before = tf.memory().numTensors;
    const r = inverseRoot(spd40, 2, { method: 'newton-f32' });
    expect(tf.memory().numTensors).toBe(before);
    expect(relativeDifference(r.root, ref)).toBeLessThan(1e-4);
    expect(r.error).toBeLessThan(1e-3);
  });

  it('condition 1e8: eigh root satisfies the identity to the accuracy the conditioning allows', () => {
    const a = withSpectrum(logSpectrum, 9);
    const r = inverseRoot(a, 4);
    expect(r.error).toBeLessThan(1e-6);
    const exact = withSpectrum(
      logSpectrum.map((l) => l ** -0.25),
      9,
    );
    expect(relativeDifference(r.root, exact)).toBeLessThan(1e-6);
  });

  it('singular PSD with epsilon: absolute and relative epsilon give (A + eps I)^{-1/p}', () => {
    const spec = [4, 2, 1, 0, 0, 0];
    const a = withSpectrum(spec, 6);
    expect(() => inverseRoot(a, 2)).toThrow(/singular.*pass epsilon > 0/);
    const abs = inverseRoot(a, 2, { epsilon: 1e-3 });
    expect(abs.epsilon).toBe(1e-3);
    expect(
      relativeDifference(
        abs.root,
        withSpectrum(
          spec.map((l) => (l + 1e-3) ** -0.5),
          6,
        ),
      ),
    ).toBeLessThan(1e-8);
    const rel = inverseRoot(a, 2, { epsilon: 1e-3, epsilonMode: 'relative' });
    expect(rel.epsilon).toBeCloseTo(4e-3, 12);
    expect(rel.error).toBeLessThan(1e-8);
    const nt = inverseRoot(a, 2, { epsilon: 1e-3, method: 'newton' });
    expect(relativeDifference(nt.root, abs.root)).toBeLessThan(1e-8);
  });

  it('clamps round-off negative eigenvalues and reports how many', () => {
    const a = withSpectrum([1, 0.5, -1e-14], 12);
    const r = inverseRoot(a, 2, { epsilon: 1e-6 });
    expect(r.clamped).toBe(1);
    expect(r.error).toBeLessThan(1e-6);
  });

  it('indefinite input: eigh throws a clear error, Newton reports non-convergence or a large error', () => {
    const a = withSpectrum([2, 1, -1], 13);
    expect(() => inverseRoot(a, 2)).toThrow(/not positive semidefinite \(eigenvalue -1\.000e\+0/);
    expect(() => matrixPower(a, -0.5)).toThrow(/not positive semidefinite/);
    let flagged = false;
    try {
      const r = inverseRoot(a, 2, { method: 'newton', maxIterations: 50 });
      flagged = !r.converged || r.error > 1e-3;
    } catch (e) {
      flagged = /diverged/.test(String(e));
    }
    expect(flagged).toBe(true);
  });

  it('matrixPower gives A^{-1/(2k)}, A^{1/2} and A^{-1} consistent with each other', () => {
    const sqrt = matrixPower(spd40, 0.5).result;
    expect(relativeDifference(matmul(sqrt, sqrt), spd40)).toBeLessThan(1e-13);
    const inv = matrixPower(spd40, -1).result;
    expect(relativeDifference(inv, spdInverse(spd40).inverse)).toBeLessThan(1e-12);
    const r6 = matrixPower(spd40, -1 / 6);
    expect(r6.error).toBeLessThan(1e-13);
    expect(relativeDifference(matmul(power(r6.result, 6), spd40), identity(40))).toBeLessThan(1e-12);
  });

  it('1x1 and bad arguments', () => {
    expect(inverseRoot([[16]], 4).root.data[0]).toBeCloseTo(0.5, 15);
    expect(inverseRoot([[16]], 4, { method: 'newton' }).root.data[0]).toBeCloseTo(0.5, 10);
    expect(() => inverseRoot(spd40, 0)).toThrow(/positive integer/);
    expect(() => inverseRoot(spd40, 2, { epsilon: -1 })).toThrow(/epsilon must be finite and >= 0/);
    expect(() => inverseRoot(spd40, 2, { method: 'svd' as 'eigh' })).toThrow(/method must be/);
    expect(() => inverseRoot(mat64(3, 3), 2, { method: 'newton' })).toThrow(/zero/);
  });
});

describe('solveModified (indefinite Newton systems)', () => {
  const spec = [-2, -0.5, 1, 3];
  const H = withSpectrum(spec, 21);
  const g = [1, -2, 0.5, 3];

  it("'eig-abs' solves with |lambda| and reports the flipped eigenvalues", () => {
    const r = solveModified(H, g);
    expect(r.modifiedCount).toBe(2);
    expect(r.minEigenvalue).toBeCloseTo(-2, 12);
    const Habs = withSpectrum(spec.map(Math.abs), 21);
    const back = matmul(Habs, mat64(4, 1, r.x));
    g.forEach((v, i) => expect(back.data[i]).toBeCloseTo(v, 10));
  });

  it("'eig-clamp' floors eigenvalues at delta", () => {
    const r = solveModified(H, g, { strategy: 'eig-clamp', delta: 0.1 });
    expect(r.modifiedCount).toBe(2);
    const Hc = withSpectrum(
      spec.map((l) => Math.max(l, 0.1)),
      21,
    );
    const back = matmul(Hc, mat64(4, 1, r.x));
    g.forEach((v, i) => expect(back.data[i]).toBeCloseTo(v, 10));
  });

  it("'shift' adds tau I until Cholesky succeeds, tau > -lambda_min", () => {
    const r = solveModified(H, g, { strategy: 'shift' });
    expect(r.shift).toBeGreaterThan(2);
    expect(r.unmodified).toBe(false);
    const Hs = withSpectrum(
      spec.map((l) => l + r.shift),
      21,
    );
    const back = matmul(Hs, mat64(4, 1, r.x));
    g.forEach((v, i) => expect(back.data[i]).toBeCloseTo(v, 9));
  });

  it('leaves a positive definite H unmodified', () => {
    const r = solveModified(spd40, new Float64Array(40).fill(1));
    expect(r.unmodified).toBe(true);
    const ref = spdSolve(spd40, new Float64Array(40).fill(1)).x;
    for (let i = 0; i < 40; i++) expect(r.x[i]).toBeCloseTo(ref[i], 10);
    expect(solveModified(spd40, new Float64Array(40).fill(1), { strategy: 'shift' }).shift).toBe(0);
  });
});

describe('blocking', () => {
  it('splitDim covers the dimension with blocks <= maxDim', () => {
    expect(splitDim(10, 4)).toEqual([4, 4, 2]);
    expect(splitDim(8, 4)).toEqual([4, 4]);
    expect(splitDim(3, 4)).toEqual([3]);
    expect(() => splitDim(3, 0)).toThrow(/maxDim/);
  });

  it("mergeSmallDims follows Distributed Shampoo's merge_small_dims", () => {
    expect(mergeSmallDims([1, 2, 512, 1, 2048, 1, 3, 4], 1024)).toEqual([1024, 2048, 12]);
    expect(mergeSmallDims([1, 1, 1], 8)).toEqual([1]);
    expect(mergeSmallDims([3, 0, 2], 8)).toEqual([0]);
    expect(mergeSmallDims([785, 128], 1024)).toEqual([785, 128]);
    expect(mergeSmallDims([3, 3, 64, 32], 100)).toEqual([9, 64, 32]);
  });

  it('blockPlan tiles the merged shape exactly', () => {
    const plan = blockPlan([785, 1, 300], 256);
    expect(plan.mergedShape).toEqual([785, 300]);
    expect(plan.blocks.length).toBe(4 * 2);
    let covered = 0;
    for (const b of plan.blocks) {
      expect(Math.max(...b.size)).toBeLessThanOrEqual(256);
      covered += b.size[0] * b.size[1];
    }
    expect(covered).toBe(785 * 300);
    expect(plan.blocks[plan.blocks.length - 1].offset).toEqual([768, 256]);
  });
});
