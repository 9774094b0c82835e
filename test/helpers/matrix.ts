// Float64 references for tensor results: tensors as ml-matrix matrices, relative differences.
import type * as tf from '@tensorflow/tfjs';
import { Matrix } from 'ml-matrix';

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
