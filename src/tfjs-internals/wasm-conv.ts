/**
 * Convolution gradient kernels for the wasm backend.
 *
 * tfjs-backend-wasm 4.22 registers Conv2D, DepthwiseConv2dNative, MaxPool(Grad) and
 * AvgPool(Grad), but not Conv2DBackpropFilter nor the two depthwise backprops, so training any
 * conv net on wasm failed ("Kernel 'Conv2DBackpropFilter' not registered for backend 'wasm'").
 * Its Conv2DBackpropInput is a scalar C loop, several times slower than the XNNPACK forward, and
 * its MaxPoolGrad and MaxPoolWithArgmax are wrong for windows whose values are all negative (the
 * maximum starts at 0; MaxPoolGrad's max error against the cpu backend: 0 on N(5,1) inputs, 73 on
 * N(-5,1), 3.2 on N(0,1) with a 2x2 pool), so max pooling after tanh trained on wrong gradients.
 *
 * Every kernel here is a composition of the wasm backend's own kernels on TensorInfos (XNNPACK
 * Conv2D / DepthwiseConv2dNative with SIMD, plus Transpose, Reshape, PadV2, Slice, Reverse, Sum),
 * temporaries disposed with backend.disposeData (the runner: wasm-ops.ts). With x [B,H,W,Ci],
 * dy [B,OH,OW,Co], filter [KH,KW,Ci,Co], strides s and the forward's pads (top, left):
 *
 *   dW[kh,kw,ci,co] = sum_{b,oh,ow} x[b, oh*s+kh-top, ow*s+kw-left, ci] dy[b,oh,ow,co]
 *     = a stride-1 convolution with dilation s of x^T [Ci,H,W,B] (batch Ci, channels B) by
 *       dy^T [OH,OW,B,Co] as the filter; output [Ci,KH,KW,Co], transposed to [KH,KW,Ci,Co].
 *   dX = a stride-1 convolution of dy zero-dilated by s (pad + reshape) with the spatially
 *       flipped filter, channels swapped ([KH,KW,Co,Ci]), padded by KH-1-top / KW-1-left.
 *
 * The depthwise backprops use the same identities with XNNPACK's depthwise convolution
 * (filter = channel multiplier M): dW sums a [1,H,W,B*Ci] depthwise correlation over B; dX sums
 * a Ci*M-channel depthwise convolution over M.
 *
 * MaxPoolGrad = MaxPoolWithArgmax (batch in the index) + ScatterNd of dy at the argmax (summed
 * where windows overlap), the same routing the higher-order gradient gathers with.
 *
 * Values equal the cpu backend's to float32 rounding (test/conv-wasm.test.ts). Gradients of these
 * kernels (for Hessian-vector products) are in conv-gradients.ts and use ordinary tf ops.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

import {
  NEEDED,
  Ops,
  type Backend,
  type Func,
  type Info,
  type KernelArgs,
  type Needed,
  type Pad,
  type Rounding,
  type Shape4,
} from './wasm-ops.js';

function channelsLast(dataFormat: unknown, kernel: string): void {
  if (dataFormat !== undefined && dataFormat !== 'NHWC' && dataFormat !== 'channelsLast') {
    throw new Error(
      `curvature: ${kernel} on the wasm backend supports dataFormat 'NHWC' only (got '${String(dataFormat)}')`,
    );
  }
}

/** dW = conv2DBackpropFilter(x, dy); `depthwise`: filter [KH,KW,Ci,M], dy channels Ci*M. */
function backpropFilter(
  ops: Ops,
  x: Info,
  dy: Info,
  filterShape: Shape4,
  attrs: Record<string, unknown>,
  depthwise: boolean,
): Info {
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as Shape4,
    filterShape,
    attrs.strides as [number, number],
    1,
    attrs.pad as Pad,
    attrs.dimRoundingMode as Rounding,
    depthwise,
  );
  const { strideHeight: sh, strideWidth: sw, outHeight: oh, outWidth: ow, inHeight: h, inWidth: w } = info;
  const [kh, kw] = filterShape;
  const { top, left } = info.padInfo;
  const [b, , , ci] = x.shape;
  // Padding so the dilated "filter" (dy) spans exactly kh x kw output positions (never negative:
  // rows of x that no output reads are simply not reached; the output is sliced to kh x kw).
  const bottom = Math.max(0, kh - 1 + (oh - 1) * sh + 1 - h - top);
  const right = Math.max(0, kw - 1 + (ow - 1) * sw + 1 - w - left);
  if (!depthwise) {
    const co = filterShape[3];
    const xT = ops.transpose(x, [3, 1, 2, 0]); // [Ci,H,W,B]
    const dyT = ops.transpose(dy, [1, 2, 0, 3]); // [OH,OW,B,Co]
    const out = ops.conv(xT, dyT, [top, bottom, left, right], [sh, sw]); // [Ci,KH',KW',Co]
    const cut = ops.slice(out, [0, 0, 0, 0], [ci, kh, kw, co]);
    return ops.transpose(cut, [1, 2, 0, 3]);
  }
  const m = filterShape[3];
  const xT = ops.reshape(ops.transpose(x, [1, 2, 0, 3]), [1, h, w, b * ci]); // [1,H,W,B*Ci]
  const dy5 = ops.reshape(dy, [b, oh, ow, ci, m]);
  const dyT = ops.reshape(ops.transpose(dy5, [1, 2, 0, 3, 4]), [oh, ow, b * ci, m]);
  const out = ops.conv(xT, dyT, [top, bottom, left, right], [sh, sw], true); // [1,KH',KW',B*Ci*M]
  const cut = ops.slice(out, [0, 0, 0, 0], [1, kh, kw, b * ci * m]);
  const perB = ops.reshape(cut, [kh, kw, b, ci * m]);
  return ops.reshape(ops.sum(perB, [2]), filterShape);
}

/** dX = conv2DBackpropInput(dy, filter); `depthwise`: filter [KH,KW,Ci,M]. */
function backpropInput(
  ops: Ops,
  dy: Info,
  filter: Info,
  inputShape: Shape4,
  attrs: Record<string, unknown>,
  depthwise: boolean,
): Info {
  const filterShape = filter.shape as Shape4;
  const info = tf.backend_util.computeConv2DInfo(
    inputShape,
    filterShape,
    attrs.strides as [number, number],
    1,
    attrs.pad as Pad,
    attrs.dimRoundingMode as Rounding,
    depthwise,
  );
  const { strideHeight: sh, strideWidth: sw, inHeight: h, inWidth: w } = info;
  const [kh, kw, ci, co] = filterShape;
  const { top, left } = info.padInfo;
  if (!depthwise && (sh > 1 || sw > 1)) return backpropInputCol2im(ops, dy, filter, info);
  const dyD = ops.dilate(dy, sh, sw);
  const [b, hd, wd] = dyD.shape;
  // Full-correlation padding kh-1-top; a forward pad larger than kh-1 (explicit padding) makes it
  // negative: pad 0 and crop instead.
  const pt = Math.max(0, kh - 1 - top);
  const pl = Math.max(0, kw - 1 - left);
  const offH = pt - (kh - 1 - top);
  const offW = pl - (kw - 1 - left);
  const pb = Math.max(0, h + offH + kh - 1 - hd - pt);
  const pr = Math.max(0, w + offW + kw - 1 - wd - pl);
  const flipped = ops.reverse(filter, [0, 1]);
  if (!depthwise) {
    const f = ops.transpose(flipped, [0, 1, 3, 2]); // [KH,KW,Co,Ci]
    const out = ops.conv(dyD, f, [pt, pb, pl, pr], [1, 1]);
    return ops.slice(out, [0, offH, offW, 0], [b, h, w, ci]);
  }
  const m = co;
  const f = ops.reshape(flipped, [kh, kw, ci * m, 1]);
  const out = ops.conv(dyD, f, [pt, pb, pl, pr], [1, 1], true); // [B,H',W',Ci*M]
  const cut = ops.slice(out, [0, offH, offW, 0], [b, h, w, ci * m]);
  if (m === 1) return cut;
  return ops.sum(ops.reshape(cut, [b, h, w, ci, m]), [4]);
}

/**
 * MaxPoolWithArgmax, in JS on the wasm heap. The stock wasm kernel starts each window's maximum
 * at 0 instead of -Infinity: a window of negative values returns 0 and index 0. The cpu
 * backend's rule is kept: the first maximum in row-major window order wins; padding never does.
 */
function maxPoolWithArgmax(backend: Backend, x: Info, attrs: Record<string, unknown>): [Info, Info] {
  if (x.shape.length !== 4) throw new Error(`curvature: maxPoolWithArgmax: input must be rank 4 (got [${x.shape}])`);
  const info = tf.backend_util.computePool2DInfo(
    x.shape as Shape4,
    attrs.filterSize as [number, number],
    attrs.strides as [number, number],
    1,
    attrs.pad as Pad,
    attrs.dimRoundingMode as Rounding,
  );
  const { batchSize, inHeight, inWidth, inChannels: c, outHeight, outWidth, strideHeight, strideWidth } = info;
  const { effectiveFilterHeight: fh, effectiveFilterWidth: fw } = info;
  const { top, left } = info.padInfo;
  const pooled = backend.makeOutput(info.outShape, x.dtype);
  const indexes = backend.makeOutput(info.outShape, 'int32');
  // Views after every allocation (a growing heap detaches earlier views).
  const xv = backend.typedArrayFromHeap(x);
  const pv = backend.typedArrayFromHeap(pooled);
  const iv = backend.typedArrayFromHeap(indexes);
  const withBatch = attrs.includeBatchInIndex === true;
  let o = 0;
  for (let b = 0; b < batchSize; b++) {
    const base = b * inHeight * inWidth * c;
    for (let oh = 0; oh < outHeight; oh++) {
      const r0 = oh * strideHeight - top;
      const rStart = Math.max(0, r0);
      const rEnd = Math.min(inHeight, r0 + fh);
      for (let ow = 0; ow < outWidth; ow++) {
        const c0 = ow * strideWidth - left;
        const cStart = Math.max(0, c0);
        const cEnd = Math.min(inWidth, c0 + fw);
        for (let d = 0; d < c; d++, o++) {
          let best = Number.NEGATIVE_INFINITY;
          let at = -1;
          for (let r = rStart; r < rEnd; r++) {
            for (let q = cStart; q < cEnd; q++) {
              const k = (r * inWidth + q) * c + d;
              const v = xv[base + k]!;
              if (v > best || at < 0) {
                best = v;
                at = k;
              }
            }
          }
          pv[o] = best;
          iv[o] = withBatch ? base + at : at;
        }
      }
    }
  }
  return [pooled, indexes];
}

/** Max pooling's values and flat argmax indices (batch included), as MaxPoolWithArgmax. */
function argmax(ops: Ops, x: Info, attrs: Record<string, unknown>): Info {
  const outs = maxPoolWithArgmax(ops.backend, x, { ...attrs, includeBatchInIndex: true });
  ops.track(...outs);
  return outs[1];
}

/**
 * MaxPoolGrad: dx = dy scattered to each window's argmax (summed where windows overlap). The
 * stock wasm kernel is wrong for windows whose values are all negative (see the header).
 */
function maxPoolGrad(ops: Ops, dy: Info, input: Info, attrs: Record<string, unknown>): Info {
  const indexes = argmax(ops, input, attrs);
  if (!tf.util.arraysEqual(indexes.shape, dy.shape)) {
    throw new Error(
      `curvature: MaxPoolGrad on wasm: dy has shape [${dy.shape}] but the pooled input has shape [${indexes.shape}]` +
        (attrs.dimRoundingMode != null ? ' (dimRoundingMode is not supported)' : ''),
    );
  }
  const n = tf.util.sizeFromShape(dy.shape);
  const flat = ops.scatter(ops.reshape(indexes, [n, 1]), ops.reshape(dy, [n]), tf.util.sizeFromShape(input.shape));
  return ops.reshape(flat, input.shape);
}

/**
 * dX for strides > 1, where the zero-dilated convolution would spend most of its work on zeros:
 * cols = dy [B*OH*OW, Co] @ W^T [Co, KH*KW*Ci] (XNNPACK matMul), then col2im adds each column
 * block into dx (a JS loop over the wasm heap, B*OH*OW*KH*KW*Ci additions).
 */
function backpropInputCol2im(ops: Ops, dy: Info, filter: Info, info: tf.backend_util.Conv2DInfo): Info {
  const {
    batchSize: b,
    inHeight: h,
    inWidth: w,
    outHeight: oh,
    outWidth: ow,
    strideHeight: sh,
    strideWidth: sw,
  } = info;
  const [kh, kw, ci, co] = filter.shape as Shape4;
  const { top, left } = info.padInfo;
  const wT = ops.transpose(ops.reshape(filter, [kh * kw * ci, co]), [1, 0]);
  const cols = ops.matMul(ops.reshape(dy, [b * oh * ow, co]), wT); // [B*OH*OW, KH*KW*Ci]
  const dx = ops.zeros([b, h, w, ci]);
  const cv = ops.view(cols);
  const dv = ops.view(dx);
  dv.fill(0);
  const rowLen = kh * kw * ci;
  let row = 0;
  for (let n = 0; n < b; n++) {
    const base = n * h * w * ci;
    for (let y = 0; y < oh; y++) {
      for (let x = 0; x < ow; x++, row++) {
        const src = row * rowLen;
        for (let i = 0; i < kh; i++) {
          const r = y * sh + i - top;
          if (r < 0 || r >= h) continue;
          for (let j = 0; j < kw; j++) {
            const q = x * sw + j - left;
            if (q < 0 || q >= w) continue;
            const d = base + (r * w + q) * ci;
            const s = src + (i * kw + j) * ci;
            for (let k = 0; k < ci; k++) dv[d + k]! += cv[s + k]!;
          }
        }
      }
    }
  }
  return dx;
}

let installed = false;
const stockConfigs = new Map<string, tf.KernelConfig | undefined>();
const fastConfigs = new Map<string, tf.KernelConfig>();

/** Names of the wasm kernels curvature registers or replaces. */
export const WASM_CONV_KERNELS = [
  'Conv2DBackpropFilter',
  'Conv2DBackpropInput',
  'DepthwiseConv2dNativeBackpropFilter',
  'DepthwiseConv2dNativeBackpropInput',
  'MaxPoolGrad',
  'MaxPoolWithArgmax',
] as const;

/**
 * Register the conv gradient kernels on wasm (idempotent). Conv2DBackpropInput replaces the
 * stock scalar loop and MaxPoolGrad the stock kernel's wrong values; the other three are
 * missing from tfjs-backend-wasm 4.22.
 */
export function installWasmConvKernels(): void {
  if (installed) return;
  const funcs = {} as Record<Needed, Func>;
  for (const name of NEEDED) {
    const k = tf.getKernel(name, 'wasm');
    if (!k) return;
    funcs[name] = k.kernelFunc as unknown as Func;
  }
  installed = true;
  const wrap =
    (body: (ops: Ops, args: KernelArgs) => Info) =>
    (args: KernelArgs): Info => {
      const ops = new Ops(funcs, args.backend);
      let out: Info;
      try {
        out = body(ops, args);
      } catch (e) {
        ops.fail();
        throw e;
      }
      return ops.finish(out);
    };
  const bodies: Record<
    Exclude<(typeof WASM_CONV_KERNELS)[number], 'MaxPoolWithArgmax'>,
    (ops: Ops, args: KernelArgs) => Info
  > = {
    Conv2DBackpropFilter: (ops, { inputs, attrs = {} }) => {
      channelsLast(attrs.dataFormat, 'Conv2DBackpropFilter');
      return backpropFilter(ops, inputs.x, inputs.dy, attrs.filterShape as Shape4, attrs, false);
    },
    Conv2DBackpropInput: (ops, { inputs, attrs = {} }) => {
      channelsLast(attrs.dataFormat, 'Conv2DBackpropInput');
      return backpropInput(ops, inputs.dy, inputs.filter, attrs.inputShape as Shape4, attrs, false);
    },
    DepthwiseConv2dNativeBackpropFilter: (ops, { inputs, attrs = {} }) => {
      noDilation(attrs.dilations, 'DepthwiseConv2dNativeBackpropFilter');
      return backpropFilter(ops, inputs.x, inputs.dy, attrs.filterShape as Shape4, attrs, true);
    },
    DepthwiseConv2dNativeBackpropInput: (ops, { inputs, attrs = {} }) => {
      noDilation(attrs.dilations, 'DepthwiseConv2dNativeBackpropInput');
      return backpropInput(ops, inputs.dy, inputs.filter, attrs.inputShape as Shape4, attrs, true);
    },
    MaxPoolGrad: (ops, { inputs, attrs = {} }) => maxPoolGrad(ops, inputs.dy, inputs.input, attrs),
  };
  const multiOutput: Partial<Record<(typeof WASM_CONV_KERNELS)[number], (args: KernelArgs) => Info[]>> = {
    MaxPoolWithArgmax: ({ inputs, backend, attrs = {} }) => maxPoolWithArgmax(backend, inputs.x, attrs),
  };
  for (const name of WASM_CONV_KERNELS) {
    const stock = tf.getKernel(name, 'wasm');
    stockConfigs.set(name, stock);
    const config: tf.KernelConfig = {
      kernelName: name,
      backendName: 'wasm',
      kernelFunc: (multiOutput[name] ?? wrap(bodies[name as keyof typeof bodies])) as unknown as tf.KernelFunc,
    };
    fastConfigs.set(name, config);
    if (stock) tf.unregisterKernel(name, 'wasm');
    tf.registerKernel(config);
  }
}

function noDilation(dilations: unknown, kernel: string): void {
  const d =
    dilations == null ? [1, 1] : typeof dilations === 'number' ? [dilations, dilations] : (dilations as number[]);
  if (d.some((v) => v !== 1)) {
    throw new Error(`curvature: ${kernel} on the wasm backend supports dilations 1 only (got ${String(d)})`);
  }
}

/** Whether the stock Conv2DBackpropInput's setupFunc has been run (withStockWasmConvInput). */
let stockSetUp = false;

/**
 * Run `fn` with tfjs-backend-wasm's stock Conv2DBackpropInput (the others have no stock
 * version) -- for benchmarks and tests that compare with it.
 */
export function withStockWasmConvInput<T>(fn: () => T): T {
  const stock = stockConfigs.get('Conv2DBackpropInput');
  const fast = fastConfigs.get('Conv2DBackpropInput');
  if (!stock || !fast) return fn();
  // The stock kernel binds its wasm function in setupFunc, which tfjs runs only for kernels
  // registered when the backend initialises: if the swap came first, bind it here, once.
  const backend = tf.findBackend('wasm');
  if (!stockSetUp && stock.setupFunc && backend) {
    stock.setupFunc(backend);
    stockSetUp = true;
  }
  tf.unregisterKernel('Conv2DBackpropInput', 'wasm');
  tf.registerKernel(stock);
  try {
    return fn();
  } finally {
    tf.unregisterKernel('Conv2DBackpropInput', 'wasm');
    tf.registerKernel(fast);
  }
}
