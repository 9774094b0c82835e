/**
 * Fast transposed matMul on the wasm backend.
 *
 * XNNPACK's transposed products are 10-16x slower than an explicit transpose followed by a plain
 * matMul (measured: 1024^2, 1207 ms vs 90 ms). The stock MatMul gradient and tfjs-layers' fused
 * Dense gradient both ask for transposed products, so we wrap the wasm BatchMatMul kernel: a
 * transposed operand is transposed explicitly (wasm Transpose kernel) before the plain product.
 * Values are identical; only the memory layout of the operand changes.
 *
 * Identity on wasm: the engine clones every tensor a gradient saves while a tape records, and
 * the wasm Identity kernel copies the data for each clone. Tensor data is immutable in tfjs
 * (the cpu backend's Identity shares the buffer by reference count, and wasm's own Reshape does
 * too), so the wrapped kernel shares it the same way. This removes about a tenth of the time of
 * a Hessian-vector product.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

type KernelArgs = {
  inputs: Record<string, tf.TensorInfo>;
  backend: { disposeData(dataId: object): unknown };
  attrs?: Record<string, unknown>;
};

let wrapped = false;
let originalConfig: tf.KernelConfig | undefined;
let fastConfig: tf.KernelConfig | undefined;

function swapLast2(rank: number): number[] {
  const perm = [...Array(rank).keys()];
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1], perm[rank - 2]];
  return perm;
}

export function installWasmMatMulTranspose(): void {
  if (wrapped) return;
  const original = tf.getKernel('BatchMatMul', 'wasm');
  const transpose = tf.getKernel('Transpose', 'wasm');
  if (!original || !transpose) return;
  wrapped = true;
  const matMulFunc = original.kernelFunc as unknown as (args: KernelArgs) => tf.TensorInfo;
  const transposeFunc = transpose.kernelFunc as unknown as (args: KernelArgs) => tf.TensorInfo;
  const kernelFunc = (args: KernelArgs): tf.TensorInfo => {
    const { inputs, backend, attrs = {} } = args;
    const tA = Boolean(attrs.transposeA);
    const tB = Boolean(attrs.transposeB);
    if (!tA && !tB) return matMulFunc(args);
    const temps: tf.TensorInfo[] = [];
    const transposed = (x: tf.TensorInfo): tf.TensorInfo => {
      const t = transposeFunc({ inputs: { x }, backend, attrs: { perm: swapLast2(x.shape.length) } });
      temps.push(t);
      return t;
    };
    const plain = (x: tf.TensorInfo, flag: boolean): tf.TensorInfo => (flag ? transposed(x) : x);
    const { a, b } = inputs;
    // Two ways to a plain product: transpose the flagged operands, or compute the transposed
    // result C^T = op(b)^T op(a)^T (transposing the unflagged operands) and transpose it back.
    // Take the one that moves fewer elements: for A^T B with A [256,784] (the input of a first
    // layer) and B [256,128], 133k elements instead of 200k.
    const size = (x: tf.TensorInfo): number => x.shape.reduce((p, d) => p * d, 1);
    const rows = a.shape[a.shape.length - (tA ? 1 : 2)];
    const cols = b.shape[b.shape.length - (tB ? 2 : 1)];
    const batchOf = (x: tf.TensorInfo): number => x.shape.slice(0, -2).reduce((p, d) => p * d, 1);
    const batch = Math.max(batchOf(a), batchOf(b));
    const direct = (tA ? size(a) : 0) + (tB ? size(b) : 0);
    const swapped = (tA ? 0 : size(a)) + (tB ? 0 : size(b)) + batch * rows * cols;
    try {
      if (swapped < direct && a.shape.length === b.shape.length) {
        const ct = matMulFunc({
          inputs: { a: plain(b, !tB), b: plain(a, !tA) },
          backend,
          attrs: { ...attrs, transposeA: false, transposeB: false },
        });
        temps.push(ct);
        const c = transposeFunc({ inputs: { x: ct }, backend, attrs: { perm: swapLast2(ct.shape.length) } });
        return c;
      }
      return matMulFunc({
        inputs: { a: plain(a, tA), b: plain(b, tB) },
        backend,
        attrs: { ...attrs, transposeA: false, transposeB: false },
      });
    } finally {
      for (const t of temps) backend.disposeData(t.dataId);
    }
  };
  originalConfig = original;
  fastConfig = { ...original, kernelFunc: kernelFunc as unknown as tf.KernelFunc };
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel(fastConfig);
}

/**
 * True when a matMul with transposeA/transposeB costs about as much as a plain one on the active
 * backend: every backend but wasm, and wasm once the wrapper above is the registered kernel
 * (withStockWasmMatMul swaps it out). The BatchMatMul gradient (src/autodiff/registrations.ts)
 * asks for transposed products only then: the transpose happens inside the kernel, off the tape,
 * so a second-order pass does not differentiate (and re-transpose) explicit Transpose ops.
 */
export function transposedMatMulIsFast(): boolean {
  if (tf.getBackend() !== 'wasm') return true;
  return wrapped && tf.getKernel('BatchMatMul', 'wasm') === fastConfig;
}

let identityShared = false;
let identityOriginal: tf.KernelConfig | undefined;
let identityFast: tf.KernelConfig | undefined;

type RefCountingBackend = { incRef(dataId: object): void };

export function installWasmIdentityShare(): void {
  if (identityShared) return;
  const original = tf.getKernel('Identity', 'wasm');
  if (!original) return;
  identityShared = true;
  const originalFunc = original.kernelFunc as unknown as (args: KernelArgs) => tf.TensorInfo;
  const kernelFunc = (args: KernelArgs): tf.TensorInfo => {
    const x = args.inputs.x;
    if (x.dtype === 'string') return originalFunc(args);
    (args.backend as unknown as RefCountingBackend).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
  identityOriginal = original;
  identityFast = { ...original, kernelFunc: kernelFunc as unknown as tf.KernelFunc };
  tf.unregisterKernel('Identity', 'wasm');
  tf.registerKernel(identityFast);
}

/** Run `fn` with the stock wasm BatchMatMul kernel (for benchmarks against stock tfjs). */
export function withStockWasmMatMul<T>(fn: () => T): T {
  const swaps: [string, tf.KernelConfig | undefined, tf.KernelConfig | undefined][] = [
    ['BatchMatMul', originalConfig, fastConfig],
    ['Identity', identityOriginal, identityFast],
  ];
  const set = (name: string, config: tf.KernelConfig | undefined): void => {
    if (!config) return;
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel(config);
  };
  for (const [name, stock] of swaps) set(name, stock);
  try {
    return fn();
  } finally {
    for (const [name, , fast] of swaps) set(name, fast);
  }
}
