/**
 * The src/linalg pieces Shampoo is built on since issue 14: `inverseRootFromEigen` (the
 * matrix-function rules split from the eigensolver) gives exactly `inverseRoot`'s 'eigh' result
 * when reconstructed, and rejects what inverseRoot rejects; `eighUnsorted` is eighRows without
 * the sort; `blockPlan(..., { merge: false })` only squeezes.
 */
import { describe, expect, it } from 'vitest';
import {
  blockPlan,
  eighRows,
  eighUnsorted,
  inverseRoot,
  inverseRootFromEigen,
  reconstruct,
  type Mat64,
} from '../src/linalg/index.js';
import { rng } from './optim-helpers.js';

/** A random symmetric PSD matrix G G^T (n x n, rank k). */
function psd(n: number, k: number, seed: number): Mat64 {
  const r = rng(seed);
  const g = Float64Array.from({ length: n * k }, () => r() - 0.5);
  const data = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let q = 0; q < k; q++) s += g[i * k + q]! * g[j * k + q]!;
      data[i * n + j] = s;
    }
  }
  return { rows: n, cols: n, data };
}

describe('inverseRootFromEigen', () => {
  it.each([
    [12, 12, 1e-3, 'absolute' as const, 4],
    [20, 5, 1e-5, 'relative' as const, 2],
  ])('n %i rank %i, epsilon %s %s, p %i: reconstructs inverseRoot exactly', (n, k, epsilon, epsilonMode, p) => {
    const A = psd(n, k, n + k);
    const { values, vt } = eighRows(A);
    const w = inverseRootFromEigen(values, p, { epsilon, epsilonMode });
    const want = inverseRoot(A, p, { epsilon, epsilonMode });
    expect(w.epsilon).toBe(want.epsilon);
    expect(w.clamped).toBe(want.clamped);
    expect(Array.from(reconstruct(vt, w.weights).data)).toEqual(Array.from(want.root.data));
  });

  it('the order of the eigenvalues does not matter', () => {
    const values = Float64Array.from([3, -1e-9, 0.5, 2]);
    const a = inverseRootFromEigen(values, 4, { epsilon: 1e-2, epsilonMode: 'relative' });
    const b = inverseRootFromEigen(Float64Array.from([2, 0.5, -1e-9, 3]), 4, {
      epsilon: 1e-2,
      epsilonMode: 'relative',
    });
    expect(a.epsilon).toBeCloseTo(3e-2, 15);
    expect(a.clamped).toBe(1);
    expect(Array.from(b.weights)).toEqual([a.weights[3], a.weights[2], a.weights[1], a.weights[0]]);
    expect(a.weights[1]).toBe(a.epsilon ** (-1 / 4));
  });

  it('rejects an indefinite spectrum, a singular one without epsilon, non-finite values and a bad p', () => {
    expect(() => inverseRootFromEigen(Float64Array.from([1, -0.1]), 2)).toThrow(/not positive semidefinite/);
    expect(() => inverseRootFromEigen(Float64Array.from([1, 0]), 2)).toThrow(/singular/);
    expect(() => inverseRootFromEigen(Float64Array.from([1, NaN]), 2)).toThrow(/not finite/);
    expect(() => inverseRootFromEigen(Float64Array.from([1, 2]), 0)).toThrow(/p must be/);
    expect(() => inverseRootFromEigen(Float64Array.from([1, 2]), 2, { epsilon: -1 })).toThrow(/epsilon/);
  });
});

describe('eighUnsorted', () => {
  it('has the eigenpairs of eighRows (same solver, unsorted)', () => {
    const A = psd(16, 16, 3);
    const u = eighUnsorted(A.data, 16);
    const s = eighRows(A);
    expect(Array.from(u.values).sort((x, y) => x - y)).toEqual(Array.from(s.values));
    for (let k = 0; k < 16; k++) {
      // A v = lambda v for every row v of vt.
      let err = 0;
      for (let i = 0; i < 16; i++) {
        let av = 0;
        for (let j = 0; j < 16; j++) av += A.data[i * 16 + j]! * u.vt.data[k * 16 + j]!;
        err = Math.max(err, Math.abs(av - u.values[k]! * u.vt.data[k * 16 + i]!));
      }
      expect(err).toBeLessThan(1e-12 * Math.max(1, Math.abs(s.values[15]!)));
    }
  });

  it('rejects non-finite entries and a wrong size', () => {
    expect(() => eighUnsorted(Float64Array.from([1, NaN, NaN, 1]), 2)).toThrow(/not finite/);
    expect(() => eighUnsorted(new Float64Array(3), 2)).toThrow(/expected 2 x 2/);
  });
});

describe('blockPlan merge option', () => {
  it('merge: false only drops dimensions of size 1, then blocks', () => {
    expect(blockPlan([1, 6, 5, 1], 8, { merge: false })).toEqual({
      mergedShape: [6, 5],
      blocks: [{ offset: [0, 0], size: [6, 5] }],
    });
    expect(blockPlan([6, 5], 32).mergedShape).toEqual([30]);
    expect(blockPlan([6, 5], 32, { merge: false }).mergedShape).toEqual([6, 5]);
    expect(blockPlan([10, 3], 4, { merge: false }).blocks.map((b) => b.size)).toEqual([
      [4, 3],
      [4, 3],
      [2, 3],
    ]);
    expect(blockPlan([1, 1], 4, { merge: false }).mergedShape).toEqual([1]);
    expect(blockPlan([3, 0], 4, { merge: false }).blocks).toEqual([]);
  });
});
