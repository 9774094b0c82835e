/**
 * Mat64 -> tf.Tensor conversion. Kept apart from ./matrix.ts so that modules the matrix worker
 * imports (src/async/worker.ts) never load '@tensorflow/tfjs'; re-exported from ./index.ts.
 */
import * as tf from '@tensorflow/tfjs';
import type { Mat64 } from './matrix.js';

/** A float32 tf.Tensor2D (tfjs computes in float32; values are rounded). */
export function toTensor(m: Mat64): tf.Tensor2D {
  return tf.tensor2d(Float32Array.from(m.data), [m.rows, m.cols], 'float32');
}
