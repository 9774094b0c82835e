// Float64 references for tensor results: tensors as ml-matrix matrices, relative differences.
import type * as tf from '@tensorflow/tfjs';
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import type { Mat64 } from '../../src/linalg/index.js';

/** A rank-2 tensor's values as an ml-matrix Matrix (float64). */
export function toMatrix(t: tf.Tensor): Matrix {
  const [r, c] = t.shape as [number, number];
  const d = t.dataSync();
  return new Matrix(Array.from({ length: r }, (_, i) => Array.from(d.subarray(i * c, (i + 1) * c))));
}

/** max |a - b| / max |b| over all entries. */
export function maxRelDiff(a: Matrix, b: Matrix): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.rows; i++)
    for (let j = 0; j < a.columns; j++) {
      num = Math.max(num, Math.abs(a.get(i, j) - b.get(i, j)));
      den = Math.max(den, Math.abs(b.get(i, j)));
    }
  return num / den;
}

/**
 * Exact checks of an eigendecomposition (values, rows of vt) of symmetric A, in a scale-free form
 * (A / max|a|): relative residual ||A V - V diag(values)|| / ||A||, orthogonality max|V^T V - I|,
 * and the sorted eigenvalues' error against ml-matrix's, relative to ||A||.
 */
export function eighQuality(a: Mat64, values: Float64Array, vt: Float64Array) {
  const n = a.rows;
  let amax = 0;
  for (const x of a.data) amax = Math.max(amax, Math.abs(x));
  const s = amax > 0 ? 1 / amax : 1; // compare A / max|a| (no overflow in the checks)
  let na = 0;
  for (const x of a.data) na += (x * s) ** 2;
  na = Math.sqrt(na) || 1;
  let res = 0;
  for (let k = 0; k < n; k++) {
    for (let i = 0; i < n; i++) {
      let t = 0;
      for (let j = 0; j < n; j++) t += a.data[i * n + j]! * s * vt[k * n + j]!;
      res += (t - values[k]! * s * vt[k * n + i]!) ** 2;
    }
  }
  let orth = 0;
  for (let k = 0; k < n; k++) {
    for (let l = 0; l <= k; l++) {
      let t = 0;
      for (let i = 0; i < n; i++) t += vt[k * n + i]! * vt[l * n + i]!;
      orth = Math.max(orth, Math.abs(t - (k === l ? 1 : 0)));
    }
  }
  const ref = new EigenvalueDecomposition(
    new Matrix(Array.from({ length: n }, (_, i) => Array.from(a.data.subarray(i * n, i * n + n), (x) => x * s))),
    {
      assumeSymmetric: true,
    },
  ).realEigenvalues.sort((x, y) => x - y);
  const sorted = Array.from(values, (x) => x * s).sort((x, y) => x - y);
  let ev = 0;
  for (let k = 0; k < n; k++) ev = Math.max(ev, Math.abs(ref[k]! - sorted[k]!));
  return { res: Math.sqrt(res) / na, orth, ev: ev / na };
}
