/**
 * Gauss-Newton products for a stack of Dense layers, linearised once per step.
 *
 * `ggnvpVars` (src/autodiff) rebuilds the network for every product: J v by the double-backward
 * trick (a forward pass, its backward pass and the backward pass of that), H_L, then J^T by one
 * more forward and backward pass, about 3-4 gradients per product (issue 16's 30-37 products of
 * ~3 gradients each per step). Within one HessianFree step the parameters do not change, so the
 * Jacobian does not either (Martens 2010 section 4.2; Schraudolph 2002's R-op): the layer inputs
 * a_l and the activation slopes D_l = act_l'(z_l) of the step's curvature batch are computed once
 * (one forward pass), and every product is then two passes of matrix products:
 *
 *   J v (R-op):  dz_0 = a_0 V_0 + c_0;  dz_l = a_l V_l + c_l + (D_{l-1} . dz_{l-1}) W_l
 *   H_L u:       the Hessian of the problem's loss of the outputs at z_L: closed form for the
 *                declared loss kinds (checked once against autodiff), else autodiff
 *   J^T w:       delta_L = w;  grad V_l = a_l^T delta_l,  grad c_l = sum_rows delta_l,
 *                delta_{l-1} = (delta_l W_l^T) . D_{l-1}
 *
 * (V_l, c_l: the kernel and bias parts of v; W_l the kernels.) About 4 matrix products per
 * layer against a gradient's 3, i.e. about 1.3 gradients per product, and no tape.
 *
 * Applies to a bound problem whose `model` is a stack of Dense layers with elementwise
 * activations and a linear output layer, whose trainable weights are exactly the step's variables (kernel, bias per
 * layer, in order) and whose `outputs` are the model's output (checked once per problem against
 * `problem.outputs`, relative 1e-4); anything else keeps `ggnvpVars`.
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch, Problem } from '../../src/harness/problem.js';

/** Keras activations applied elementwise (their derivative is the gradient of their sum). */
const ELEMENTWISE = new Set([
  'linear',
  'relu',
  'relu6',
  'elu',
  'selu',
  'sigmoid',
  'hardSigmoid',
  'tanh',
  'softplus',
  'softsign',
  'gelu',
  'gelu_new',
  'mish',
  'swish',
]);

export interface ActivationLike {
  apply(x: tf.Tensor): tf.Tensor;
  getClassName(): string;
}

export interface DenseLinearization {
  /** G v, v per variable in the order of the step's variables; new tensors. */
  product(vs: tf.Tensor[]): tf.Tensor[];
  dispose(): void;
}

interface DenseStack {
  kernels: tf.Tensor2D[];
  biases: tf.Tensor[];
  activations: ActivationLike[];
}

/** A model that is a stack of Dense layers whose kernels and biases are the step's variables. */
export interface DenseLayers {
  kernels: tf.Tensor2D[];
  biases: tf.Tensor[];
  /** Each layer's activation (undefined: none). */
  activations: (ActivationLike | undefined)[];
}

/**
 * The problem's model as Dense layers when its trainable weights are exactly `vars`, in order
 * (kernel, bias per layer); undefined otherwise. Shared by the linearised products and the
 * preconditioner's per-example gradients.
 */
export function denseLayers(problem: Problem, vars: tf.Variable[]): DenseLayers | undefined {
  const layers = problem.model?.layers;
  if (layers === undefined || layers.length === 0 || vars.length !== 2 * layers.length) return undefined;
  const out: DenseLayers = { kernels: [], biases: [], activations: [] };
  for (let l = 0; l < layers.length; l++) {
    const layer = layers[l]!;
    const w = layer.trainableWeights;
    if (layer.getClassName() !== 'Dense' || w.length !== 2) return undefined;
    const kernel = w[0]!.read();
    const bias = w[1]!.read();
    if (vars[2 * l] !== kernel || vars[2 * l + 1] !== bias || kernel.rank !== 2) return undefined;
    out.kernels.push(kernel as tf.Tensor2D);
    out.biases.push(bias);
    out.activations.push((layer as unknown as { activation?: ActivationLike }).activation);
  }
  return out;
}

/**
 * The Dense layers when every activation is elementwise and the last is linear (the outputs
 * are the last layer's pre-activation, the logits, as the harness's problems define them).
 */
function denseStack(problem: Problem, vars: tf.Variable[]): DenseStack | undefined {
  const d = denseLayers(problem, vars);
  if (d === undefined) return undefined;
  const activations: ActivationLike[] = [];
  for (const [l, act] of d.activations.entries()) {
    if (act === undefined || !ELEMENTWISE.has(act.getClassName())) return undefined;
    if (l + 1 === d.activations.length && act.getClassName() !== 'linear') return undefined;
    activations.push(act);
  }
  return { kernels: d.kernels, biases: d.biases, activations };
}

/** Problems whose `outputs` were checked to equal the Dense stack's forward pass. */
const checked = new WeakMap<Problem, boolean>();

/**
 * Linearise the problem's Dense stack at the current parameters on `batch` (the curvature
 * batch); undefined when the problem does not have that form.
 */
export function linearizeDense(problem: Problem, batch: Batch, vars: tf.Variable[]): DenseLinearization | undefined {
  if (problem.lossFromOutputs === undefined || problem.outputs === undefined) return undefined;
  if (checked.get(problem) === false) return undefined;
  const stack = denseStack(problem, vars);
  if (stack === undefined) return undefined;
  const L = stack.kernels.length;
  const kept = tf.tidy(() => {
    const n = batch.size;
    const inputs: tf.Tensor2D[] = [batch.x.reshape([n, -1]) as tf.Tensor2D];
    const slopes: tf.Tensor2D[] = [];
    const kernels = stack.kernels.map((k) => k.clone());
    let z: tf.Tensor2D | undefined;
    for (let l = 0; l < L; l++) {
      z = tf.add(tf.matMul(inputs[l]!, kernels[l]!), stack.biases[l]!) as tf.Tensor2D;
      const act = stack.activations[l]!;
      if (l + 1 < L) {
        inputs.push(act.apply(z) as tf.Tensor2D);
        const zl = z;
        slopes.push(tf.grad((x: tf.Tensor) => tf.sum(act.apply(x)) as tf.Scalar)(zl) as tf.Tensor2D);
      } else {
        z = act.apply(z) as tf.Tensor2D;
      }
    }
    return { inputs, slopes, kernels, out: z! };
  });
  const owned: tf.Tensor[] = [...kept.inputs, ...kept.slopes, ...kept.kernels, kept.out];
  const dispose = () => tf.dispose(owned);
  if (!checked.has(problem)) {
    const same = tf.tidy(() => {
      const ref = problem.outputs!(batch);
      return tf.util.arraysEqual(ref.shape, kept.out.shape) && close(ref, kept.out);
    });
    checked.set(problem, same);
    if (!same) {
      dispose();
      return undefined;
    }
  }
  const { inputs, slopes, kernels, out } = kept;
  const lossHvp = outputHessian(problem, batch, out);
  owned.push(...lossHvp.owned);
  return {
    product: (vs) =>
      tf.tidy(() => {
        let dz: tf.Tensor2D | undefined;
        for (let l = 0; l < L; l++) {
          let next = tf.add(tf.matMul(inputs[l]!, vs[2 * l] as tf.Tensor2D), vs[2 * l + 1]!) as tf.Tensor2D;
          if (dz !== undefined) next = tf.add(next, tf.matMul(tf.mul(slopes[l - 1]!, dz), kernels[l]!)) as tf.Tensor2D;
          dz = next;
        }
        let delta = lossHvp.apply(dz!) as tf.Tensor2D;
        const grads: tf.Tensor[] = new Array<tf.Tensor>(2 * L);
        for (let l = L - 1; l >= 0; l--) {
          grads[2 * l] = tf.matMul(inputs[l]!, delta, true, false);
          grads[2 * l + 1] = tf.sum(delta, 0);
          if (l > 0) delta = tf.mul(tf.matMul(delta, kernels[l]!, false, true), slopes[l - 1]!) as tf.Tensor2D;
        }
        return grads;
      }),
    dispose,
  };
}

/** max |a - b| <= 1e-4 (1 + max |b|). */
function close(a: tf.Tensor, b: tf.Tensor): boolean {
  return tf.tidy(() => {
    const err = tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!;
    const scale = tf.max(tf.abs(b)).dataSync()[0]!;
    return err <= 1e-4 * (1 + scale);
  });
}

/** Problems whose declared lossKind was checked to give the loss's Hessian at the outputs. */
const closedForm = new WeakMap<Problem, boolean>();

/**
 * u -> H_L u at the outputs z: in closed form for the declared loss kinds (checked once per
 * problem against autodiff of `lossFromOutputs` on a random u, relative 1e-4), else by autodiff:
 *   softmax cross-entropy (mean over rows):  (p . u - p (p^T u)) / N,   p = softmax(z)
 *   sigmoid cross-entropy (mean over all):   s(z) (1 - s(z)) . u / (N K)
 *   mean squared error (mean over all):      2 u / (N K)
 */
function outputHessian(
  problem: Problem,
  batch: Batch,
  z: tf.Tensor,
): { apply: (u: tf.Tensor) => tf.Tensor; owned: tf.Tensor[] } {
  const lossFromOutputs = problem.lossFromOutputs!.bind(problem);
  const lossGrad = tf.grad((x: tf.Tensor) => lossFromOutputs(x, batch));
  const autodiff = (u: tf.Tensor): tf.Tensor =>
    tf.grad((x: tf.Tensor) => tf.sum(tf.mul(lossGrad(x), u)) as tf.Scalar)(z);
  const kind = problem.lossKind;
  if (closedForm.get(problem) === false || z.rank !== 2) return { apply: autodiff, owned: [] };
  const [n, k] = [z.shape[0]!, z.shape[1]!];
  let closed: { apply: (u: tf.Tensor) => tf.Tensor; owned: tf.Tensor[] } | undefined;
  if (kind === 'softmax-cross-entropy') {
    const p = tf.softmax(z);
    closed = {
      apply: (u) => tf.div(tf.sub(tf.mul(p, u), tf.mul(p, tf.sum(tf.mul(p, u), -1, true))), n),
      owned: [p],
    };
  } else if (kind === 'sigmoid-cross-entropy') {
    const w = tf.tidy(() => {
      const s = tf.sigmoid(z);
      return tf.div(tf.mul(s, tf.sub(1, s)), n * k);
    });
    closed = { apply: (u) => tf.mul(w, u), owned: [w] };
  } else if (kind === 'mse') {
    closed = { apply: (u) => tf.mul(u, 2 / (n * k)), owned: [] };
  }
  if (closed === undefined) return { apply: autodiff, owned: [] };
  if (!closedForm.has(problem)) {
    const same = tf.tidy(() => {
      const u = tf.randomNormal(z.shape, 0, 1, 'float32', 7);
      return close(closed.apply(u), autodiff(u));
    });
    closedForm.set(problem, same);
    if (!same) {
      tf.dispose(closed.owned);
      return { apply: autodiff, owned: [] };
    }
  }
  return closed;
}
