/**
 * Gauss-Newton products for a loss closure that only exists as a closure: tfjs-layers' `fit`
 * passes `optimizer.minimize(totalLossFunction, true, weights)` and nothing else, so the
 * optimizer never sees the model, its outputs, its targets or its compiled loss.
 *
 * The gradient pass of the step runs the closure once under `tf.variableGrads`. While it runs,
 * the gradient tape holds every operation from the variables to the loss, each with the tensors
 * its gradient needs (`saved`). The same mechanism K-FAC uses (src/layers/capture.ts: the Dense
 * layers are the matMuls whose right operand is a kernel variable) locates the output layer;
 * from there:
 *
 *   outputs   the output layer's pre-activation z (logits) and the model output p = act(z)
 *             (act: the 'Softmax' / 'Sigmoid' / elementwise node that consumes z, or none)
 *   targets   a batch-shaped tensor the loss reads that does not depend on the variables
 *   loss      identified by value: the Keras losses categoricalCrossentropy,
 *             sparseCategoricalCrossentropy, binaryCrossentropy and meanSquaredError are
 *             evaluated on (targets, p) and the one equal to the closure's value (relative
 *             1e-5) is the compiled loss. A custom loss function, regularizers or sample weights
 *             match none: then there is no Gauss-Newton split and the caller falls back.
 *   J         the Jacobian of the chosen output in the variables, linearised at the current
 *             parameters: the tape's own gradient functions give J^T w (reverse accumulation,
 *             `backpropagate` of capture.ts), and J v = d/dw <J^T w, v> (J^T w is linear in w,
 *             so one more reverse pass over that computation gives the forward product).
 *   H_L       the Hessian of the project's twice-differentiable loss (src/autodiff/losses.ts)
 *             at the chosen output.
 *
 *   G v = J^T H_L J v
 *
 * Which output (Schraudolph 2002, "matching loss"; Martens 2010 / Martens & Sutskever 2012):
 * softmax + (sparse) categorical cross-entropy and sigmoid + binary cross-entropy take the GGN
 * at the logits with the softmax / sigmoid cross-entropy of the logits: that loss is convex in
 * z, so G is PSD, and the split is exact for the convex part (the only curvature dropped is the
 * network's own, the second-derivative terms of z in the weights). The Keras losses clip p to
 * [1e-7, 1 - 1e-7]; the matching loss does not (the two agree except where p is clipped, where
 * the Keras loss has zero curvature). Mean squared error takes the GGN at the model output p
 * whatever the activation (H_L = 2/(N K) I, PSD). Cross-entropy after any other activation has
 * no convex split known here: the caller falls back.
 *
 * The saved tensors of the operations up to the output are copied before the engine releases
 * them (the gradient closures keep reading the same array), so products stay valid after the
 * gradient pass, until `dispose`. They linearise the network at the parameters of the gradient
 * pass, which is what the CG of one step needs even while a line search moves the variables.
 */
import * as tf from '@tensorflow/tfjs';
// The index installs the higher-order gradients the products differentiate through.
import { losses } from '../autodiff/index.js';
import { backpropagate, findUses, type DenseTarget, type Use } from './capture.js';
import { engineState, trainableVariables, untaped, type TapeNode } from '../tfjs-internals/engine.js';

/** Keras loss names recognised by value. */
export type CapturedLoss =
  'categoricalCrossentropy' | 'sparseCategoricalCrossentropy' | 'binaryCrossentropy' | 'meanSquaredError';

export interface TapeGaussNewton {
  loss: CapturedLoss;
  /** The output activation found after the last Dense layer. */
  activation: 'softmax' | 'sigmoid' | 'linear' | 'other';
  /** Where G is taken: at the logits (matching loss) or at the model output. */
  at: 'logits' | 'outputs';
  /** Examples in the batch. */
  batchSize: number;
  /** The variables of the products, in order. */
  vars: tf.Variable[];
  /**
   * A fingerprint of the batch (size, weighted sums of the targets and of the first layer's
   * inputs): equal fingerprints on consecutive steps mean the same data (full batch).
   */
  fingerprint: number[];
  /** G v, v given per variable (in the order of `vars`); new tensors. */
  product(vs: tf.Tensor[]): tf.Tensor[];
  /** Release the copied tape tensors, targets and outputs. */
  dispose(): void;
}

export interface GaussNewtonCapture {
  value: tf.Scalar;
  grads: tf.NamedTensorMap;
  ggn?: TapeGaussNewton;
  /**
   * Why there are no products: 'no-model' (no Dense layer on the tape: a plain closure) or
   * 'unsupported' (a model whose loss or output is not one of the supported pairs).
   */
  failure?: { kind: 'no-model' | 'unsupported'; message: string };
}

const ELEMENTWISE = new Set(['Tanh', 'Relu', 'Relu6', 'Elu', 'Selu', 'Softplus', 'LeakyRelu', 'Prelu', 'Exp']);
const ADD = new Set(['Add', 'AddV2', 'BiasAdd']);

class Unsupported extends Error {}

/** The Keras loss on (targets, predictions), as a number; undefined when the shapes do not fit. */
function kerasLoss(kind: CapturedLoss, t: tf.Tensor, p: tf.Tensor): number | undefined {
  const same = tf.util.arraysEqual(t.shape, p.shape);
  return tf.tidy(() => {
    let v: tf.Tensor;
    if (kind === 'categoricalCrossentropy' && same) v = tf.metrics.categoricalCrossentropy(t, p);
    else if (kind === 'binaryCrossentropy' && same) v = tf.metrics.binaryCrossentropy(t, p);
    else if (kind === 'meanSquaredError' && same) v = tf.metrics.meanSquaredError(t, p);
    else if (kind === 'sparseCategoricalCrossentropy' && p.rank === 2 && t.size === p.shape[0]) {
      const k = p.shape[1]!;
      const onehot = tf.oneHot(tf.cast(tf.floor(tf.reshape(tf.cast(t, 'float32'), [-1])), 'int32'), k).toFloat();
      v = tf.metrics.categoricalCrossentropy(onehot, tf.clipByValue(p, 1e-7, 1 - 1e-7));
    } else return undefined;
    return tf.mean(v).dataSync()[0]!;
  });
}

/**
 * Run `f` once under `tf.variableGrads` (value and gradients as usual) and, when the closure is
 * a model's loss of a supported form, return Gauss-Newton products for its batch.
 */
export function captureGaussNewton(f: () => tf.Scalar, varList: tf.Variable[] | undefined): GaussNewtonCapture {
  let ggn: TapeGaussNewton | undefined;
  let failure: GaussNewtonCapture['failure'];
  const wrapped = (): tf.Scalar => {
    const state = engineState();
    if (!Array.isArray(state.activeTape)) {
      failure = { kind: 'unsupported', message: 'the tfjs gradient tape is not accessible (unsupported tfjs version)' };
      return f();
    }
    const tape = state.activeTape;
    const start = tape.length;
    const y = f();
    const vars = varList ?? trainableVariables();
    try {
      ggn = untaped(() => linearize(tape, start, y, vars));
    } catch (err) {
      if (!(err instanceof Unsupported)) throw err;
      failure = { kind: err.message.startsWith('no Dense') ? 'no-model' : 'unsupported', message: err.message };
    }
    return y;
  };
  try {
    const { value, grads } = tf.variableGrads(wrapped, varList);
    return { value, grads, ggn, failure };
  } catch (err) {
    ggn?.dispose();
    throw err;
  }
}

function linearize(tape: TapeNode[], start: number, y: tf.Scalar, vars: tf.Variable[]): TapeGaussNewton {
  const targets: DenseTarget[] = vars.filter((v) => v.rank === 2).map((v) => ({ name: v.name, kernel: v }));
  const uses: Use[] = targets.length > 0 ? findUses(tape, start, targets) : [];
  if (uses.length === 0) throw new Unsupported('no Dense layer (matMul with a kernel variable) in the loss');
  const firstUse = uses.reduce((p, u) => (u.node.id < p.node.id ? u : p));
  const weightedSum = (t: tf.Tensor): number =>
    tf.tidy(() => tf.sum(tf.mul(tf.reshape(t.toFloat(), [-1]), tf.sin(tf.range(1, t.size + 1)))).dataSync()[0]!);
  const inputSum = weightedSum(firstUse.a);
  uses.forEach((u) => u.a.dispose());

  const nodes = tape.slice(start);
  const savedIds = new Set<number>();
  for (const node of nodes) {
    for (const t of node.saved ?? []) savedIds.add(t.id);
  }
  // Nodes that only copy a tensor for a gradient (the engine's clones) are not consumers.
  const isCopy = (node: TapeNode) => node.outputs.length === 1 && savedIds.has(node.outputs[0]!.id);
  const consumerOf = (id: number, after: number): { node: TapeNode; index: number } | undefined => {
    for (let i = after + 1; i < nodes.length; i++) {
      const node = nodes[i]!;
      if (isCopy(node)) continue;
      if (Object.values(node.inputs).some((t) => t.id === id)) return { node, index: i };
    }
    return undefined;
  };

  const outUse = uses.reduce((p, u) => (u.node.id > p.node.id ? u : p));
  const units = targets[outUse.target]!.kernel.shape[1]!;
  let zIndex = nodes.indexOf(outUse.node);
  let z = outUse.node.outputs[0]!;
  if (!outUse.outputHasBias) {
    const c = consumerOf(z.id, zIndex);
    if (c !== undefined && ADD.has(c.node.kernelName ?? '') && c.node.outputs.length === 1) {
      const other = Object.values(c.node.inputs).find((t) => t.id !== z.id);
      if (other !== undefined && other.size === units && c.node.outputs[0]!.size === z.size) {
        z = c.node.outputs[0]!;
        zIndex = c.index;
      }
    }
  }
  let activation: TapeGaussNewton['activation'] = 'linear';
  let p = z;
  let pIndex = zIndex;
  const act = consumerOf(z.id, zIndex);
  const actName = act?.node.kernelName ?? '';
  if (act !== undefined && act.node.outputs.length === 1 && Object.keys(act.node.inputs).length >= 1) {
    if (actName === 'Softmax') activation = 'softmax';
    else if (actName === 'Sigmoid') activation = 'sigmoid';
    else if (ELEMENTWISE.has(actName)) activation = 'other';
    if (activation !== 'linear') {
      p = act.node.outputs[0]!;
      pIndex = act.index;
    }
  }
  if (z.rank !== 2 || z.shape[1] !== units)
    throw new Unsupported(`the output layer's output has shape [${z.shape}], not [batch, ${units}]`);

  /** The tensor, or the engine's saved clone of it when the closure already released it. */
  const live = (t: tf.Tensor): tf.Tensor | undefined => {
    if (!t.isDisposed) return t;
    for (const node of nodes) {
      if (!isCopy(node)) continue;
      const src = Object.values(node.inputs)[0];
      const out = node.outputs[0]!;
      if (src?.id === t.id && !out.isDisposed) return out;
    }
    return undefined;
  };
  const liveCopy = (t: tf.Tensor): tf.Tensor => {
    const alive = live(t);
    if (alive === undefined) throw new Unsupported('the model output was released before the loss was computed');
    return tf.keep(tf.clone(alive));
  };
  const owned: tf.Tensor[] = [];
  const keptSaved: tf.Tensor[] = [];
  const release = () => {
    tf.dispose(owned);
    tf.dispose(keptSaved);
  };
  try {
    const pv = liveCopy(p);
    owned.push(pv);
    const n = pv.shape[0]!;
    const value = y.dataSync()[0]!;

    // Targets: batch-shaped tensors read after the model output that do not depend on the
    // variables (the batch's labels, or anything computed from them inside the closure).
    const varIds = new Set(vars.map((v) => v.id));
    const dependent = new Set(varIds);
    for (const node of nodes) {
      if (Object.values(node.inputs).some((t) => dependent.has(t.id))) node.outputs.forEach((o) => dependent.add(o.id));
    }
    const leaves = new Map<number, tf.Tensor>();
    for (let i = pIndex + 1; i < nodes.length; i++) {
      for (const t of Object.values(nodes[i]!.inputs)) {
        if (dependent.has(t.id) || t.rank === 0 || t.shape[0] !== n) continue;
        const alive = live(t);
        if (alive !== undefined) leaves.set(t.id, alive);
      }
    }
    const kinds: CapturedLoss[] = [
      'categoricalCrossentropy',
      'sparseCategoricalCrossentropy',
      'binaryCrossentropy',
      'meanSquaredError',
    ];
    const matches: { kind: CapturedLoss; t: tf.Tensor }[] = [];
    for (const t of leaves.values()) {
      for (const kind of kinds) {
        const v = kerasLoss(kind, t, pv);
        if (v !== undefined && Math.abs(v - value) <= 1e-5 * Math.max(1, Math.abs(value))) matches.push({ kind, t });
      }
    }
    // The labels and tensors derived from them inside the loss (sparse labels' one-hot
    // encoding) can both match: categorical and sparse categorical cross-entropy are then the
    // same loss, and the first tensor the loss reads (the labels) decides the name.
    const family = (k: CapturedLoss) => (k === 'sparseCategoricalCrossentropy' ? 'categoricalCrossentropy' : k);
    const distinct = new Set(matches.map((m) => family(m.kind)));
    if (distinct.size !== 1) {
      throw new Unsupported(
        matches.length === 0
          ? `the loss (${value}) is none of ${kinds.join(', ')} of the model outputs ` +
              '(a custom loss function, regularizers or sample weights)'
          : `the loss matches several of ${[...distinct].join(', ')}`,
      );
    }
    const { kind, t } = matches[0]!;

    // The loss of the chosen output and where the GGN is taken.
    let at: TapeGaussNewton['at'];
    let zEff: tf.Tensor;
    let labels: tf.Tensor;
    let lossOf: (labels: tf.Tensor, x: tf.Tensor) => tf.Scalar;
    if (kind === 'categoricalCrossentropy' || kind === 'sparseCategoricalCrossentropy') {
      if (activation !== 'softmax') {
        throw new Unsupported(`${kind} after a '${activation}' output has no convex Gauss-Newton split (use softmax)`);
      }
      at = 'logits';
      // softmax(log p) = p: the logits up to a per-row shift, which the loss ignores.
      zEff = tf.keep(tf.log(tf.maximum(pv, 1e-30)));
      labels =
        kind === 'sparseCategoricalCrossentropy'
          ? tf.keep(tf.oneHot(tf.cast(tf.floor(tf.reshape(tf.cast(t, 'float32'), [-1])), 'int32'), units).toFloat())
          : tf.keep(tf.cast(t, 'float32'));
      lossOf = losses.softmaxCrossEntropy;
    } else if (kind === 'binaryCrossentropy') {
      if (activation !== 'sigmoid') {
        throw new Unsupported(
          `binaryCrossentropy after a '${activation}' output has no convex Gauss-Newton split (use sigmoid)`,
        );
      }
      at = 'logits';
      zEff = tf.keep(
        tf.tidy(() => {
          const q = tf.clipByValue(pv, 1e-7, 1 - 1e-7);
          return tf.sub(tf.log(q), tf.log1p(tf.neg(q)));
        }),
      );
      labels = tf.keep(tf.cast(t, 'float32'));
      lossOf = losses.sigmoidCrossEntropy;
    } else {
      at = 'outputs';
      zEff = tf.keep(tf.clone(pv));
      labels = tf.keep(tf.cast(t, 'float32'));
      lossOf = losses.meanSquaredError;
    }
    owned.push(zEff, labels);
    const out = at === 'logits' ? z : p;
    const outIndex = at === 'logits' ? zIndex : pIndex;

    // Keep what the gradient functions up to the output read after the engine releases it.
    for (let i = 0; i <= outIndex; i++) {
      const node = nodes[i]!;
      const saved = node.saved;
      if (saved === undefined || saved.length === 0) continue;
      node.saved = saved.slice();
      for (let k = 0; k < saved.length; k++) {
        const copy = tf.keep(tf.clone(saved[k]!));
        keptSaved.push(copy);
        saved[k] = copy;
      }
    }

    const outId = out.id;
    const outShape = out.shape.slice();
    const fromIds = new Set(varIds);
    const vjp = (w: tf.Tensor): tf.Tensor[] => {
      const acc = backpropagate(tape, start, fromIds, outId, w, () => {}, 'HessianFree');
      return vars.map((v) => acc.get(v.id) ?? tf.zerosLike(v));
    };
    const jvp = (vs: tf.Tensor[]): tf.Tensor =>
      tf.grad((w: tf.Tensor) => tf.addN(vjp(w).map((g, i) => tf.sum(tf.mul(g, vs[i]!)))) as tf.Scalar)(
        tf.zeros(outShape),
      );
    const lossGrad = tf.grad((x: tf.Tensor) => lossOf(labels, x));
    const lossHvp = (u: tf.Tensor): tf.Tensor =>
      tf.grad((x: tf.Tensor) => tf.sum(tf.mul(lossGrad(x), u)) as tf.Scalar)(zEff);

    return {
      loss: kind,
      activation,
      at,
      batchSize: n,
      vars,
      fingerprint: [n, weightedSum(labels), inputSum],
      product: (vs) => tf.tidy(() => vjp(lossHvp(jvp(vs)))),
      dispose: release,
    };
  } catch (err) {
    release();
    throw err;
  }
}
