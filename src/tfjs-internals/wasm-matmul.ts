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
    if (!attrs.transposeA && !attrs.transposeB) return matMulFunc(args);
    const temps: tf.TensorInfo[] = [];
    const plain = (x: tf.TensorInfo, flag: unknown): tf.TensorInfo => {
      if (!flag) return x;
      const t = transposeFunc({ inputs: { x }, backend, attrs: { perm: swapLast2(x.shape.length) } });
      temps.push(t);
      return t;
    };
    try {
      return matMulFunc({
        inputs: { a: plain(inputs.a, attrs.transposeA), b: plain(inputs.b, attrs.transposeB) },
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
