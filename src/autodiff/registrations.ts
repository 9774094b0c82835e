/**
 * Gradient re-registrations that make tfjs autodiff exact to any order.
 *
 * Why (tensorflow/tfjs#3252, docs/autodiff.md): a built-in gradient that uses the op's saved
 * OUTPUT sees a clone recorded on the tape before the op itself, so an outer tape treats it as a
 * constant. Nested gradients then throw or, worse, are silently wrong (sum(tanh(x)^2)). And
 * gradients that call comparison/logical kernels (no registered gradient) throw on the next
 * differentiation.
 *
 * Fix: every affected gradient is re-registered so that it recomputes what it needs from its
 * saved INPUTS with ordinary, themselves differentiable ops; comparison and logical kernels get
 * zero gradients (their outputs are piecewise constant). First-order values are unchanged (tests
 * compare them with stock tfjs).
 *
 * MatMul: the built-in BatchMatMul gradient uses transposed matMuls, which are 10-16x slower
 * than an explicit transpose + plain matMul on the wasm backend. On wasm a BatchMatMul kernel
 * wrapper transposes explicitly for any caller that asks for a transposed product (tfjs-layers'
 * fused Dense gradient among them); where it is installed (and on every other backend) our
 * gradient asks for transposed products, so the transposes stay off the tape and a second-order
 * pass does not differentiate them; on wasm without the wrapper it transposes explicitly.
 */
import * as tf from '@tensorflow/tfjs';
import { transposedMatMulIsFast } from '../tfjs-internals/wasm-matmul.js';

type Saved = tf.Tensor[];
type Attrs = Record<string, unknown>;
type GradMap = Record<string, () => tf.Tensor>;

/** Swap the last two axes of a tensor of rank >= 2. */
function transposeLast2(x: tf.Tensor): tf.Tensor {
  if (x.rank === 2) return tf.transpose(x, [1, 0]);
  const perm = [...Array(x.rank).keys()];
  [perm[x.rank - 2], perm[x.rank - 1]] = [perm[x.rank - 1], perm[x.rank - 2]];
  return tf.transpose(x, perm);
}

/** Sum a broadcast gradient back to the shape of the input it flows to. */
function unbroadcast(grad: tf.Tensor, shape: number[]): tf.Tensor {
  const outShape = grad.shape;
  const axes: number[] = [];
  const offset = outShape.length - shape.length;
  for (let i = 0; i < outShape.length; i++) {
    const inDim = i - offset < 0 ? 1 : shape[i - offset];
    if (inDim === 1 && outShape[i] !== 1) axes.push(i);
  }
  const summed = axes.length > 0 ? tf.sum(grad, axes) : grad;
  return tf.reshape(summed, shape);
}

function parseAxes(axis: unknown, rank: number): number[] {
  const list = axis == null ? [...Array(rank).keys()] : Array.isArray(axis) ? axis : [axis];
  return (list as number[]).map((a) => (a < 0 ? a + rank : a));
}

/** Shape of a reduction's result with kept dims, so it broadcasts against the input. */
function keepDimsShape(shape: number[], axes: number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

/** Kernels whose output is piecewise constant: zero gradient for every float input. */
const ZERO_GRAD_KERNELS: Record<string, string[]> = {
  Equal: ['a', 'b'],
  NotEqual: ['a', 'b'],
  Greater: ['a', 'b'],
  GreaterEqual: ['a', 'b'],
  Less: ['a', 'b'],
  LessEqual: ['a', 'b'],
  LogicalAnd: ['a', 'b'],
  LogicalOr: ['a', 'b'],
  LogicalXor: ['a', 'b'],
  LogicalNot: ['x'],
};

const registrations: tf.GradConfig[] = [
  {
    // tanh'(x) = 1 - tanh(x)^2 = 4 sigmoid(2x) sigmoid(-2x). The sigmoid form is as accurate
    // (each factor to a few ulp; no cancellation in 1 - tanh^2 for large |x|) and much cheaper on
    // wasm, where Sigmoid is XNNPACK's vectorised kernel (~0.05 ms on [256,128]) and Tanh is not
    // (~0.5 ms): a Hessian-vector product through tanh otherwise runs Tanh four times.
    kernelName: 'Tanh',
    inputsToSave: ['x'],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], [x]: Saved) => ({
      x: () => {
        const x2 = tf.mul(x, 2);
        return tf.mul(tf.mul(dy as tf.Tensor, 4), tf.mul(tf.sigmoid(x2), tf.sigmoid(tf.neg(x2))));
      },
    }),
  },
  {
    kernelName: 'Sigmoid',
    inputsToSave: ['x'],
    gradFunc: (dy, [x]: Saved) => ({
      x: () => {
        const s = tf.sigmoid(x);
        return tf.mul(dy as tf.Tensor, tf.mul(s, tf.sub(1, s)));
      },
    }),
  },
  {
    kernelName: 'Exp',
    inputsToSave: ['x'],
    gradFunc: (dy, [x]: Saved) => ({ x: () => tf.mul(dy as tf.Tensor, tf.exp(x)) }),
  },
  {
    // elu'(x) = 1 for x > 0, exp(x) otherwise. exp(min(x, 0)) keeps the unused branch finite, so
    // higher derivatives never see inf * 0.
    kernelName: 'Elu',
    inputsToSave: ['x'],
    gradFunc: (dy, [x]: Saved) => ({
      x: () => tf.mul(dy as tf.Tensor, tf.where(tf.greater(x, 0), tf.onesLike(x), tf.exp(tf.minimum(x, 0)))),
    }),
  },
  {
    kernelName: 'Selu',
    inputsToSave: ['x'],
    gradFunc: (dy, [x]: Saved) => ({
      x: () => {
        const scale = 1.0507009873554804934193349852946;
        const scaleAlpha = 1.7580993408473768599402175208123;
        const neg = tf.mul(scaleAlpha, tf.exp(tf.minimum(x, 0)));
        return tf.mul(dy as tf.Tensor, tf.where(tf.greater(x, 0), tf.fill(x.shape, scale), neg));
      },
    }),
  },
  {
    kernelName: 'Softmax',
    inputsToSave: ['logits'],
    gradFunc: (dy, [logits]: Saved, attrs: Attrs) => ({
      logits: () => {
        const dim = attrs.dim as number;
        const y = tf.softmax(logits, dim);
        const dyTimesY = tf.mul(dy as tf.Tensor, y);
        return tf.sub(dyTimesY, tf.mul(tf.sum(dyTimesY, [dim], true), y));
      },
    }),
  },
  ...(['Max', 'Min'] as const).map((kernelName): tf.GradConfig => ({
    kernelName,
    inputsToSave: ['x'],
    gradFunc: (dy, [x]: Saved, attrs: Attrs) => ({
      x: () => {
        const axes = parseAxes(kernelName === 'Max' ? attrs.reductionIndices : attrs.axis, x.rank);
        const shape = keepDimsShape(x.shape, axes);
        const y = kernelName === 'Max' ? tf.max(x, axes, true) : tf.min(x, axes, true);
        const mask = tf.cast(tf.equal(x, y), 'float32');
        return tf.mul(tf.reshape(dy as tf.Tensor, shape), mask);
      },
    }),
  })),
  {
    // d(a^b)/da = b a^(b-1); d(a^b)/db = a^b log a (taken as 0 where a <= 0, as tfjs does).
    kernelName: 'Pow',
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, [a, b]: Saved) => {
      const d = dy as tf.Tensor;
      return {
        a: () => unbroadcast(tf.mul(d, tf.mul(b, tf.pow(a, tf.sub(b, 1)))), a.shape),
        b: () => {
          const positive = tf.greater(a, 0);
          const logA = tf.where(positive, tf.log(tf.where(positive, a, tf.onesLike(a))), tf.zerosLike(a));
          return unbroadcast(tf.mul(d, tf.mul(tf.pow(a, b), logA)), b.shape);
        },
      };
    },
  },
  {
    kernelName: 'BatchMatMul',
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, [a, b]: Saved, attrs: Attrs) => {
      const d = dy as tf.Tensor;
      const tA = attrs.transposeA as boolean;
      const tB = attrs.transposeB as boolean;
      const T = transposeLast2;
      if (transposedMatMulIsFast()) {
        // Transposes as matMul flags: off the tape, so the gradient of this gradient (an HVP's
        // second backward) has no Transpose ops to differentiate and undo. On wasm the kernel
        // wrapper transposes explicitly before a plain product (src/tfjs-internals/wasm-matmul.ts).
        const flagA = (): tf.Tensor => {
          if (!tA && !tB) return tf.matMul(d, b, false, true);
          if (!tA && tB) return tf.matMul(d, b);
          if (tA && !tB) return tf.matMul(b, d, false, true);
          return tf.matMul(b, d, true, true);
        };
        const flagB = (): tf.Tensor => {
          if (!tA && !tB) return tf.matMul(a, d, true, false);
          if (!tA && tB) return tf.matMul(d, a, true, false);
          if (tA && !tB) return tf.matMul(a, d);
          return tf.matMul(d, a, true, true);
        };
        return {
          a: () => unbroadcastBatch(flagA(), a.shape),
          b: () => unbroadcastBatch(flagB(), b.shape),
        };
      }
      // wasm without the wrapper: explicit transposes and a plain matMul (XNNPACK's transposed
      // products are 10-16x slower).
      const gradA = (): tf.Tensor => {
        if (!tA && !tB) return tf.matMul(d, T(b));
        if (!tA && tB) return tf.matMul(d, b);
        if (tA && !tB) return tf.matMul(b, T(d));
        return tf.matMul(T(b), T(d));
      };
      const gradB = (): tf.Tensor => {
        if (!tA && !tB) return tf.matMul(T(a), d);
        if (!tA && tB) return tf.matMul(T(d), a);
        if (tA && !tB) return tf.matMul(a, d);
        return tf.matMul(T(d), T(a));
      };
      return {
        a: () => unbroadcastBatch(gradA(), a.shape),
        b: () => unbroadcastBatch(gradB(), b.shape),
      };
    },
  },
  ...Object.entries(ZERO_GRAD_KERNELS).map(([kernelName, inputs]): tf.GradConfig => ({
    kernelName,
    inputsToSave: inputs,
    gradFunc: (_dy, saved: Saved) =>
      Object.fromEntries(inputs.map((name, i) => [name, () => tf.zeros(saved[i].shape, 'float32')])) as GradMap,
  })),
];

/** Batch dims of a matMul broadcast: sum the gradient back over broadcast batch axes. */
function unbroadcastBatch(grad: tf.Tensor, shape: number[]): tf.Tensor {
  if (grad.rank === shape.length && grad.shape.every((d, i) => d === shape[i])) return grad;
  const batchShape = shape.slice(0, -2);
  const gradBatch = grad.shape.slice(0, -2);
  if (batchShape.length === 0 && gradBatch.length > 0) {
    return tf.sum(grad, [...Array(gradBatch.length).keys()]);
  }
  return unbroadcast(grad, shape);
}

let installed = false;
const stock = new Map<string, tf.GradConfig | undefined>();

/**
 * Install the higher-order gradient registrations (idempotent). Called on import of
 * `curvature`; exported so that code importing submodules directly can install them too.
 */
export function installHigherOrderGradients(): void {
  if (installed) return;
  for (const config of registrations) {
    stock.set(config.kernelName, tf.getGradient(config.kernelName));
    tf.registerGradient(config);
  }
  installed = true;
}

/**
 * Run `fn` with tfjs's stock gradients restored (the registry is process-global), then put
 * curvature's back. For tests and benchmarks that compare with stock tfjs.
 */
export function withStockGradients<T>(fn: () => T): T {
  installHigherOrderGradients();
  const restore = (configs: Iterable<tf.GradConfig | undefined>): void => {
    for (const c of configs) if (c) tf.registerGradient(c);
  };
  restore(stock.values());
  try {
    return fn();
  } finally {
    restore(registrations);
  }
}

/** Names of the kernels whose gradients curvature replaces (for docs and tests). */
export const REGISTERED_GRADIENT_KERNELS: readonly string[] = registrations.map((r) => r.kernelName);
