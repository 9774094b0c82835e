/**
 * A small runner over the wasm backend's own kernels on TensorInfos, for the kernels that
 * wasm-conv.ts composes from them (XNNPACK Conv2D / DepthwiseConv2dNative, Transpose, Reshape,
 * PadV2, Slice, Reverse, Sum, ScatterNd, BatchMatMul): each call records its output, and
 * `finish(keep)` / `fail()` dispose every temporary with backend.disposeData.
 */
import type * as tf from '@tensorflow/tfjs';

export type Info = tf.TensorInfo;
export type Backend = {
  disposeData(dataId: object): unknown;
  makeOutput(shape: number[], dtype: tf.DataType): Info;
  typedArrayFromHeap(info: Info): Float32Array | Int32Array | Uint8Array;
};
export type KernelArgs = { inputs: Record<string, Info>; backend: Backend; attrs?: Record<string, unknown> };
export type Func = (args: KernelArgs) => Info | Info[];
export type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];
export type Rounding = 'floor' | 'round' | 'ceil' | undefined;
export type Shape4 = [number, number, number, number];

export const NEEDED = [
  'Conv2D',
  'DepthwiseConv2dNative',
  'Transpose',
  'Reshape',
  'PadV2',
  'Slice',
  'Reverse',
  'Sum',
  'ScatterNd',
  'BatchMatMul',
] as const;
export type Needed = (typeof NEEDED)[number];

/** A small runner over the wasm kernels that records temporaries to dispose. */
export class Ops {
  private readonly temps: Info[] = [];
  constructor(
    private readonly funcs: Record<Needed, Func>,
    readonly backend: Backend,
  ) {}

  private run(name: Needed, inputs: Record<string, Info>, attrs: Record<string, unknown>): Info {
    const out = this.funcs[name]({ inputs, backend: this.backend, attrs }) as Info;
    this.temps.push(out);
    return out;
  }
  transpose(x: Info, perm: number[]): Info {
    return this.run('Transpose', { x }, { perm });
  }
  reshape(x: Info, shape: number[]): Info {
    return this.run('Reshape', { x }, { shape });
  }
  pad(x: Info, paddings: [number, number][]): Info {
    return this.run('PadV2', { x }, { paddings, constantValue: 0 });
  }
  slice(x: Info, begin: number[], size: number[]): Info {
    if (size.every((d, i) => d === x.shape[i] && begin[i] === 0)) return x;
    return this.run('Slice', { x }, { begin, size });
  }
  reverse(x: Info, dims: number[]): Info {
    return this.run('Reverse', { x }, { dims });
  }
  sum(x: Info, axis: number[]): Info {
    return this.run('Sum', { x }, { axis, keepDims: false });
  }
  /** Stride-1 convolution with explicit padding [top, bottom, left, right] and dilation d. */
  conv(x: Info, filter: Info, pads: number[], dilations: [number, number], depthwise = false): Info {
    const pad: Pad = [
      [0, 0],
      [pads[0], pads[1]],
      [pads[2], pads[3]],
      [0, 0],
    ];
    const name = depthwise ? 'DepthwiseConv2dNative' : 'Conv2D';
    return this.run(name, { x, filter }, { strides: [1, 1], pad, dilations, dataFormat: 'NHWC' });
  }
  /** Zero-dilate the spatial axes of [B,OH,OW,C] by strides (sh, sw): [B,(OH-1)sh+1,(OW-1)sw+1,C]. */
  dilate(dy: Info, sh: number, sw: number): Info {
    if (sh === 1 && sw === 1) return dy;
    const [b, oh, ow, c] = dy.shape;
    const r = this.reshape(dy, [b, oh, 1, ow, 1, c]);
    const p = this.pad(r, [
      [0, 0],
      [0, 0],
      [0, sh - 1],
      [0, 0],
      [0, sw - 1],
      [0, 0],
    ]);
    const flat = this.reshape(p, [b, oh * sh, ow * sw, c]);
    return this.slice(flat, [0, 0, 0, 0], [b, (oh - 1) * sh + 1, (ow - 1) * sw + 1, c]);
  }
  /** Outputs of a kernel run outside `run` (multi-output), disposed with the temporaries. */
  track(...outs: Info[]): void {
    this.temps.push(...outs);
  }
  /** A zero tensor of `size` elements with `updates` added at `indices` (duplicates summed). */
  scatter(indices: Info, updates: Info, size: number): Info {
    return this.run('ScatterNd', { indices, updates }, { shape: [size] });
  }
  matMul(a: Info, b: Info): Info {
    return this.run('BatchMatMul', { a, b }, { transposeA: false, transposeB: false });
  }
  /** A float32 output tensor and a zeroed view of it (views taken after every allocation). */
  zeros(shape: number[]): Info {
    const out = this.backend.makeOutput(shape, 'float32');
    this.temps.push(out);
    return out;
  }
  view(x: Info): Float32Array {
    return this.backend.typedArrayFromHeap(x) as Float32Array;
  }
  /** Dispose every temporary except `keep`. */
  finish(keep: Info): Info {
    for (const t of this.temps) if (t !== keep) this.backend.disposeData(t.dataId);
    return keep;
  }
  fail(): void {
    for (const t of this.temps) this.backend.disposeData(t.dataId);
  }
}
