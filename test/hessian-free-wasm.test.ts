/**
 * The wasm fast path for splitting a flat vector into per-variable parts (src/curvature/vector.ts
 * splitFlat; HessianFree's products and every ParameterPoint trial point use it): the same bits
 * as unflatten (tf.split), no leaked tensors, no aliasing of the vector's memory in the wasm heap.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { splitFlat, unflatten } from '../src/curvature/vector.js';

/** The wasm backend's view of a tensor's buffer in its heap (BackendWasm.typedArrayFromHeap). */
interface WasmHeapView {
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
}

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
    // A part must not alias the vector's memory: overwrite the vector's buffer in the wasm heap in
    // place (through the backend's own view of it) and read the parts again. A reshape of the
    // vector shares its buffer, so it must see the write: the probe detects an alias.
    const parts = splitFlat(v, shapes);
    const alias = tf.reshape(v, [n, 1]);
    const values = parts.map((t) => Array.from(t.dataSync()));
    const heap = (tf.backend() as unknown as WasmHeapView).typedArrayFromHeap(v);
    expect(heap).toBeInstanceOf(Float32Array);
    heap.fill(1234.5);
    const written = new Array<number>(n).fill(1234.5);
    expect(Array.from(v.dataSync())).toEqual(written);
    expect(Array.from(alias.dataSync())).toEqual(written);
    parts.forEach((t, i) => expect(Array.from(t.dataSync()), `part ${i}`).toEqual(values[i]));
    tf.dispose([...parts, alias, v]);
    expect(tf.memory().numTensors).toBe(before - 1);
  });
});
