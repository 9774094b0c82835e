/**
 * The wasm BatchMatMul wrapper (src/tfjs-internals/wasm-matmul.ts) computes every transposed
 * product, by either route (transpose the flagged operands, or compute the transposed result and
 * transpose it back, whichever moves fewer elements), with the same values as the cpu backend;
 * and the BatchMatMul gradient asks for transposed products only when they are fast.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { installWasmKernels } from '../src/autodiff/index.js';
import { transposedMatMulIsFast, withStockWasmMatMul } from '../src/tfjs-internals/wasm-matmul.js';
import { seededRandom } from './helpers/fd.js';

beforeAll(async () => {
  expect(await initBackend('wasm')).toBe('wasm');
  installWasmKernels();
});

function values(shape: number[], seed: number): Float32Array {
  const r = seededRandom(seed);
  const n = shape.reduce((p, d) => p * d, 1);
  return Float32Array.from({ length: n }, () => r() - 0.5);
}

function product(
  backend: 'cpu' | 'wasm',
  a: Float32Array,
  aShape: number[],
  b: Float32Array,
  bShape: number[],
  tA: boolean,
  tB: boolean,
) {
  const previous = tf.getBackend();
  tf.setBackend(backend);
  try {
    const c = tf.tidy(() => tf.matMul(tf.tensor(a, aShape), tf.tensor(b, bShape), tA, tB));
    const out = { shape: c.shape, data: c.dataSync() as Float32Array };
    c.dispose();
    return out;
  } finally {
    tf.setBackend(previous);
  }
}

describe('wasm transposed matMul', () => {
  // [m, k] x [k, n] as stored with the flags; shapes chosen so that both routes are taken:
  // A^T B with A [40,100], B [40,16] (swapped: 640 + 1600 < 4000), A^T B with A [40,8], B [40,100]
  // (direct: 320 < 4000 + 800), A B^T both ways, A^T B^T, and batched (rank 3, broadcast batch).
  const cases: [number[], number[], boolean, boolean][] = [
    [[40, 100], [40, 16], true, false],
    [[40, 8], [40, 100], true, false],
    [[100, 40], [16, 40], false, true],
    [[8, 40], [100, 40], false, true],
    [[40, 100], [16, 40], true, true],
    [[40, 8], [100, 40], true, true],
    [[3, 40, 100], [3, 40, 16], true, false],
    [[3, 100, 40], [1, 16, 40], false, true],
    [[1, 40, 100], [3, 16, 40], true, true],
  ];
  it.each(cases)('%j x %j (transposeA %s, transposeB %s) matches the cpu backend', (aShape, bShape, tA, tB) => {
    const a = values(aShape, 1);
    const b = values(bShape, 2);
    const wasm = product('wasm', a, aShape, b, bShape, tA, tB);
    const cpu = product('cpu', a, aShape, b, bShape, tA, tB);
    expect(wasm.shape).toEqual(cpu.shape);
    let err = 0;
    for (let i = 0; i < cpu.data.length; i++) err = Math.max(err, Math.abs(wasm.data[i]! - cpu.data[i]!));
    expect(err).toBeLessThan(1e-5);
    const before = tf.engine().backend.numDataIds();
    product('wasm', a, aShape, b, bShape, tA, tB);
    expect(tf.engine().backend.numDataIds()).toBe(before);
  });

  it('the gradient uses transposed products only where they are fast', () => {
    expect(transposedMatMulIsFast()).toBe(true);
    expect(withStockWasmMatMul(() => transposedMatMulIsFast())).toBe(false);
    tf.setBackend('cpu');
    try {
      expect(transposedMatMulIsFast()).toBe(true);
    } finally {
      tf.setBackend('wasm');
    }
  });
});
