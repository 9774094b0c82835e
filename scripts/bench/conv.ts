/**
 * Convolutions (issue 18): the cost of conv gradients against the forward pass on the wasm
 * backend, with the cpu backend for contrast, measured in the same run.
 *
 *   1. Kernels: Conv2D forward, Conv2DBackpropFilter (dW) and Conv2DBackpropInput (dX) on the
 *      shapes of a small CNN's second layer, strides 1 and 2. curvature's wasm backprops
 *      (src/tfjs-internals/wasm-conv.ts, XNNPACK convolutions) against the stock wasm dX (a scalar
 *      loop; stock wasm has no dW) and the cpu backend.
 *   2. A small CNN (conv 3x3x16 'same' + tanh, max pool 2, conv 3x3x32 stride 2 + tanh, dense 10,
 *      softmax cross-entropy; batch 32 of 28x28x1): forward, gradient and Hessian-vector product.
 */
import * as tf from '@tensorflow/tfjs';
import { hvp, losses } from '../../src/autodiff/index.js';
import { withStockWasmConvInput } from '../../src/tfjs-internals/wasm-conv.js';
import { runKernel } from '../../src/tfjs-internals/engine.js';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Wall time of one call (ms), reading results back so the work is really done. */
function once(fn: () => tf.Tensor[]): number {
  const t0 = performance.now();
  const out = fn();
  for (const t of out) t.dataSync();
  const dt = performance.now() - t0;
  tf.dispose(out);
  return dt;
}

/** Median times of several variants, interleaved rep by rep (shared machine). */
function timeInterleaved(variants: Record<string, () => number>, reps: number): Record<string, number> {
  const samples: Record<string, number[]> = {};
  for (const k of Object.keys(variants)) {
    for (let i = 0; i < 2; i++) variants[k]!();
    samples[k] = [];
  }
  for (let i = 0; i < reps; i++) for (const [k, v] of Object.entries(variants)) samples[k]!.push(v());
  return Object.fromEntries(Object.entries(samples).map(([k, xs]) => [k, median(xs)]));
}

function onBackend<T>(name: string, fn: () => T): T {
  const previous = tf.getBackend();
  tf.setBackend(name);
  try {
    return fn();
  } finally {
    tf.setBackend(previous);
  }
}

type Kernels = { fwd: () => number; dW: () => number; dX: () => number };

function kernelTimers(stride: number): Kernels & { dispose: () => void } {
  const x = tf.randomNormal([32, 14, 14, 16], 0, 1, 'float32', 1) as tf.Tensor4D;
  const w = tf.randomNormal([3, 3, 16, 32], 0, 0.1, 'float32', 2) as tf.Tensor4D;
  const dy = tf.conv2d(x, w, stride, 'same');
  const attrs = { strides: stride, pad: 'same', dataFormat: 'NHWC' };
  const kernel = (name: string, inputs: Record<string, tf.Tensor>, extra: object) => (): tf.Tensor[] => [
    runKernel(name, inputs, { ...attrs, ...extra }),
  ];
  return {
    fwd: () => once(() => [tf.conv2d(x, w, stride, 'same')]),
    dW: () => once(kernel('Conv2DBackpropFilter', { x, dy }, { filterShape: w.shape })),
    dX: () => once(kernel('Conv2DBackpropInput', { dy, filter: w }, { inputShape: x.shape })),
    dispose: () => tf.dispose([x, w, dy]),
  };
}

function cnnTimers(): { fwd: () => number; grad: () => number; hvp: () => number; dispose: () => void } {
  const X = tf.randomNormal([32, 28, 28, 1], 0, 1, 'float32', 3) as tf.Tensor4D;
  const Y = tf.oneHot(tf.randomUniform([32], 0, 10, 'int32', 4), 10).toFloat();
  const params = [
    tf.randomNormal([3, 3, 1, 16], 0, 0.3, 'float32', 5),
    tf.zeros([16]),
    tf.randomNormal([3, 3, 16, 32], 0, 0.1, 'float32', 6),
    tf.zeros([32]),
    tf.randomNormal([7 * 7 * 32, 10], 0, 0.05, 'float32', 7),
    tf.zeros([10]),
  ];
  const vs = params.map((p, i) => tf.randomNormal(p.shape, 0, 1, 'float32', 10 + i));
  const f = (...p: tf.Tensor[]): tf.Scalar => {
    let h = tf.tanh(tf.add(tf.conv2d(X, p[0] as tf.Tensor4D, 1, 'same'), p[1]!)) as tf.Tensor4D;
    h = tf.maxPool(h, 2, 2, 'valid');
    h = tf.tanh(tf.add(tf.conv2d(h, p[2] as tf.Tensor4D, 2, 'same'), p[3]!)) as tf.Tensor4D;
    return losses.softmaxCrossEntropy(Y, tf.add(tf.matMul(tf.reshape(h, [32, -1]), p[4]!), p[5]!));
  };
  return {
    fwd: () => once(() => [f(...params)]),
    grad: () => once(() => tf.tidy(() => tf.grads(f)(params))),
    hvp: () => once(() => hvp(f, params, vs)),
    dispose: () => tf.dispose([X, Y, ...params, ...vs]),
  };
}

export async function run(): Promise<string> {
  const backend = tf.getBackend();
  if (backend !== 'wasm')
    return `## Convolutions\n\n(skipped: the section measures the wasm backend; this run uses ${backend})\n`;
  const rows: string[] = [];
  const r = (a: number, b: number): string => (a / b).toFixed(2);
  for (const stride of [1, 2]) {
    const wasm = kernelTimers(stride);
    const cpu = onBackend('cpu', () => kernelTimers(stride));
    const t = {
      ...timeInterleaved(
        { fwd: wasm.fwd, dW: wasm.dW, dX: wasm.dX, stockDX: () => withStockWasmConvInput(wasm.dX) },
        9,
      ),
      // The cpu backend's dW takes seconds: fewer runs.
      ...timeInterleaved(
        {
          cpuFwd: () => onBackend('cpu', cpu.fwd),
          cpuDW: () => onBackend('cpu', cpu.dW),
          cpuDX: () => onBackend('cpu', cpu.dX),
        },
        3,
      ),
    };
    rows.push(
      `| wasm (curvature) | ${stride} | ${t.fwd!.toFixed(2)} | ${t.dW!.toFixed(2)} | ${t.dX!.toFixed(2)} | ${r(t.dW!, t.fwd!)} | ${r(t.dX!, t.fwd!)} |`,
      `| wasm (stock tfjs 4.22) | ${stride} | ${t.fwd!.toFixed(2)} | not registered | ${t.stockDX!.toFixed(2)} | | ${r(t.stockDX!, t.fwd!)} |`,
      `| cpu | ${stride} | ${t.cpuFwd!.toFixed(2)} | ${t.cpuDW!.toFixed(2)} | ${t.cpuDX!.toFixed(2)} | ${r(t.cpuDW!, t.cpuFwd!)} | ${r(t.cpuDX!, t.cpuFwd!)} |`,
    );
    wasm.dispose();
    onBackend('cpu', () => cpu.dispose());
  }

  const wasmNet = cnnTimers();
  const cpuNet = onBackend('cpu', cnnTimers);
  const n = {
    ...timeInterleaved({ fwd: wasmNet.fwd, grad: wasmNet.grad, hvp: wasmNet.hvp }, 7),
    ...timeInterleaved(
      {
        cpuFwd: () => onBackend('cpu', cpuNet.fwd),
        cpuGrad: () => onBackend('cpu', cpuNet.grad),
        cpuHvp: () => onBackend('cpu', cpuNet.hvp),
      },
      3,
    ),
  };
  wasmNet.dispose();
  onBackend('cpu', () => cpuNet.dispose());

  return [
    '## Convolutions',
    '',
    'Conv gradient kernels on wasm (src/tfjs-internals/wasm-conv.ts: XNNPACK convolutions of transposed / zero-dilated',
    'operands) against the forward convolution, the stock wasm kernel and the cpu backend, measured in the same run',
    '(median of 9 interleaved runs; cpu: 3). Shapes: x [32,14,14,16], filter [3,3,16,32], padding same.',
    '',
    '| backend | stride | forward (ms) | dW (ms) | dX (ms) | dW / forward | dX / forward |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...rows,
    '',
    'A small CNN (conv 3x3x16 same + tanh, max pool 2, conv 3x3x32 stride 2 + tanh, dense 10, softmax',
    'cross-entropy), batch 32 of 28x28x1; median of 7 interleaved runs (cpu: 3).',
    '',
    '| backend | forward (ms) | gradient (ms) | HVP (ms) | gradient / forward | HVP / gradient |',
    '|---|---:|---:|---:|---:|---:|',
    `| wasm | ${n.fwd!.toFixed(2)} | ${n.grad!.toFixed(2)} | ${n.hvp!.toFixed(2)} | ${r(n.grad!, n.fwd!)} | ${r(n.hvp!, n.grad!)} |`,
    `| cpu | ${n.cpuFwd!.toFixed(2)} | ${n.cpuGrad!.toFixed(2)} | ${n.cpuHvp!.toFixed(2)} | ${r(n.cpuGrad!, n.cpuFwd!)} | ${r(n.cpuHvp!, n.cpuGrad!)} |`,
    `| wasm speed-up over cpu | ${r(n.cpuFwd!, n.fwd!)}x | ${r(n.cpuGrad!, n.grad!)}x | ${r(n.cpuHvp!, n.hvp!)}x | | |`,
    '',
  ].join('\n');
}
