/**
 * Gradients of the convolution and pooling backprop kernels, so that Hessian-vector products
 * (nested gradients) go through conv nets on every backend.
 *
 * The gradient of Conv2D calls Conv2DBackpropInput and Conv2DBackpropFilter; a second
 * differentiation needs their gradients. tfjs registers one for Conv2DBackpropInput only. Each
 * backprop is bilinear in its two inputs, so its gradient is the other two members of the
 * (forward, backprop-input, backprop-filter) triple with the incoming cotangent substituted:
 *
 *   dW = F(x, dy):  d/dx = Bi(dy, ddW),   d/d(dy) = conv(x, ddW)
 *   dX = Bi(dy, W): d/d(dy) = conv(ddX, W), d/dW = F(ddX, dy)            (the same for depthwise)
 *
 * Pooling: tfjs's MaxPool gradient reads the op's saved OUTPUT, which an outer tape treats as a
 * constant (tensorflow/tfjs#3252, docs/autodiff.md); ours recomputes it from the saved input.
 * MaxPoolGrad(dy, x, y) is linear in dy with a piecewise-constant routing matrix (each pooled
 * value's cotangent goes to its argmax); its adjoint gathers at the argmax (maxPoolWithArgmax),
 * and its derivatives in x and y are zero almost everywhere. AvgPoolGrad is the transpose of the
 * linear map AvgPool, so its adjoint is AvgPool itself.
 *
 * All gradients are written with engine.runKernel / tf ops, so they are recorded on an outer
 * tape like any op (values: test/conv-wasm.test.ts against central differences and PyTorch).
 */
import * as tf from '@tensorflow/tfjs';
import { runKernel } from '../tfjs-internals/engine.js';

type Saved = tf.Tensor[];
type Attrs = Record<string, unknown>;
type PoolPad = 'same' | 'valid' | number;

const run = (name: string, inputs: Record<string, tf.Tensor>, attrs: Attrs): tf.Tensor =>
  runKernel(name, inputs, attrs);

function convAttrs(attrs: Attrs): Attrs {
  return {
    strides: attrs.strides,
    pad: attrs.pad,
    dataFormat: attrs.dataFormat ?? 'NHWC',
    dimRoundingMode: attrs.dimRoundingMode,
  };
}

function depthwiseAttrs(attrs: Attrs): Attrs {
  return {
    strides: attrs.strides,
    pad: attrs.pad,
    dilations: attrs.dilations ?? [1, 1],
    dimRoundingMode: attrs.dimRoundingMode,
  };
}

const registrations: tf.GradConfig[] = [
  {
    kernelName: 'Conv2DBackpropFilter',
    inputsToSave: ['x', 'dy'],
    gradFunc: (ddw, [x, dy]: Saved, attrs: Attrs) => ({
      x: () =>
        run('Conv2DBackpropInput', { dy, filter: ddw as tf.Tensor }, { ...convAttrs(attrs), inputShape: x.shape }),
      dy: () => run('Conv2D', { x, filter: ddw as tf.Tensor }, { ...convAttrs(attrs), dilations: [1, 1] }),
    }),
  },
  {
    kernelName: 'DepthwiseConv2dNativeBackpropFilter',
    inputsToSave: ['x', 'dy'],
    gradFunc: (ddw, [x, dy]: Saved, attrs: Attrs) => ({
      x: () =>
        run(
          'DepthwiseConv2dNativeBackpropInput',
          { dy, filter: ddw as tf.Tensor },
          { ...depthwiseAttrs(attrs), inputShape: x.shape },
        ),
      dy: () => run('DepthwiseConv2dNative', { x, filter: ddw as tf.Tensor }, depthwiseAttrs(attrs)),
    }),
  },
  {
    kernelName: 'DepthwiseConv2dNativeBackpropInput',
    inputsToSave: ['dy', 'filter'],
    gradFunc: (ddx, [dy, filter]: Saved, attrs: Attrs) => ({
      dy: () => run('DepthwiseConv2dNative', { x: ddx as tf.Tensor, filter }, depthwiseAttrs(attrs)),
      filter: () =>
        run(
          'DepthwiseConv2dNativeBackpropFilter',
          { x: ddx as tf.Tensor, dy },
          { ...depthwiseAttrs(attrs), filterShape: filter.shape },
        ),
    }),
  },
  {
    kernelName: 'MaxPool',
    inputsToSave: ['x'],
    gradFunc: (dy, [x]: Saved, attrs: Attrs) => ({
      x: () => {
        const y = run('MaxPool', { x }, attrs);
        return run('MaxPoolGrad', { dy: dy as tf.Tensor, input: x, output: y }, attrs);
      },
    }),
  },
  {
    kernelName: 'MaxPoolGrad',
    inputsToSave: ['input', 'output'],
    gradFunc: (ddx, [input, output]: Saved, attrs: Attrs) => ({
      dy: () => {
        const { indexes } = tf.maxPoolWithArgmax(
          input as tf.Tensor4D,
          attrs.filterSize as [number, number],
          attrs.strides as [number, number],
          attrs.pad as PoolPad,
          true,
        );
        const flat = tf.reshape(ddx as tf.Tensor, [-1]);
        return tf.reshape(tf.gather(flat, tf.reshape(indexes, [-1])), output.shape);
      },
      input: () => tf.zeros(input.shape, 'float32'),
      output: () => tf.zeros(output.shape, 'float32'),
    }),
  },
  {
    kernelName: 'AvgPoolGrad',
    inputsToSave: ['input'],
    gradFunc: (ddx, [input]: Saved, attrs: Attrs) => ({
      dy: () => run('AvgPool', { x: ddx as tf.Tensor }, attrs),
      input: () => tf.zeros(input.shape, 'float32'),
    }),
  },
];

let installed = false;

/** Register the conv/pool higher-order gradients (idempotent; runs on import of curvature). */
export function installConvGradients(): void {
  if (installed) return;
  for (const config of registrations) tf.registerGradient(config);
  installed = true;
}

/** Names of the conv/pool kernels whose gradients curvature registers (for docs and tests). */
export const CONV_GRADIENT_KERNELS: readonly string[] = registrations.map((r) => r.kernelName);
