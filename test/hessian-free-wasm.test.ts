/**
 * The wasm fast path for splitting a flat vector into per-variable parts (src/curvature/vector.ts
 * splitFlat; HessianFree's products and every ParameterPoint trial point use it): the same bits
 * as unflatten (tf.split), no leaked tensors, no aliasing of the vector.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { splitFlat, unflatten } from '../src/curvature/vector.js';

beforeAll(async () => {
  expect(await initBackend('wasm')).toBe('wasm');
});

describe('splitFlat (wasm)', () => {
  it('gives the same parts, bit for bit, as unflatten, leak-free', () => {
    const shapes = [[7, 5], [5], [5, 3], [3], [1, 1], []];
    const n = shapes.reduce((s, sh) => s + tf.util.sizeFromShape(sh), 0);
    const v = tf.randomNormal([n], 0, 1, 'float32', 3) as tf.Tensor1D;
    const before = tf.memory().numTensors;
    const fast = splitFlat(v, shapes);
    const ref = unflatten(v, shapes);
    expect(tf.memory().numTensors).toBe(before + 2 * shapes.length);
    fast.forEach((t, i) => {
      expect(t.shape).toEqual(ref[i]!.shape);
      expect(t.dtype).toBe('float32');
      expect(Array.from(t.dataSync())).toEqual(Array.from(ref[i]!.dataSync()));
    });
    tf.dispose([...fast, ...ref]);
    expect(tf.memory().numTensors).toBe(before);
    // A part of the vector must not alias it: changing the vector leaves the parts alone.
    const parts = splitFlat(v, shapes);
    const first = Array.from(parts[0]!.dataSync());
    v.dispose();
    expect(Array.from(parts[0]!.dataSync())).toEqual(first);
    tf.dispose(parts);
  });
});
