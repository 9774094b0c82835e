/**
 * Capturing K-FAC's per-layer statistics from the one backward pass of an ordinary loss
 * closure, without changing the model.
 *
 * K-FAC needs, for every registered dense layer, its inputs `a` and the gradients `ds` of the
 * loss with respect to its pre-activations `s = a W + b`. tfjs hides both inside the closure
 * (tfjs-layers' `fit` passes `totalLossFunction` to `optimizer.minimize`). Instead of hooking
 * layers, we read the gradient tape that `tf.variableGrads` records while the closure runs: a
 * registered layer is the matMul whose right operand is its kernel variable (plain
 * `tf.matMul(x, W)`, tfjs-layers' Dense in gradient mode, or tfjs' fused matMul with a linear
 * activation, whose kernel goes through a Reshape). Its left operand is `a`; wrapping the tape
 * node's gradient function records `ds` as the engine back-propagates. So the forward values
 * are the model's own, and the closure runs once. A registered 2-D convolution (`conv` set) is
 * the `Conv2D` node, or the fused conv2d's customGrad node, whose filter is its kernel and whose
 * output shape matches its strides and padding; `a` is then the input images [n, H, W, cin] and
 * `ds` the gradients at its output, one row [Ho*Wo*cout] per example.
 *
 * For the true Fisher, `ds` must come from targets sampled from the model's predictive
 * distribution, not the data's. The same tape serves: from the output layer's pre-activation
 * (the logits) we back-propagate sampled cotangents through the recorded nodes ourselves
 * (`backpropagate`), stopping at the first registered layer, before the engine's own backward
 * pass consumes the tape.
 *
 * This reads tfjs-core's engine state (`engine.state.activeTape`, tape nodes' `inputs`,
 * `outputs`, `gradient`), stable across tfjs 2.x-4.x; `captureGradients` throws a clear
 * error if the structure is not there.
 */
import * as tf from '@tensorflow/tfjs';
import { engineState, type TapeNode } from '../tfjs-internals/engine.js';

export { engineState, type TapeNode };
import { convAxis, type ConvPadding } from './conv.js';

/**
 * A registered layer as the capture sees it: dense (rank-2 kernel, the right operand of a
 * matMul), or with `conv` a 2-D convolution (NHWC, kernel [kh, kw, cin, cout]: tfjs' Conv2D
 * kernel, or the fused conv2d tfjs-layers uses for a linear activation).
 */
export interface DenseTarget {
  name: string;
  kernel: tf.Variable;
  bias?: tf.Variable;
  conv?: { strides: [number, number]; padding: ConvPadding };
}

/**
 * A target's pre-activation gradients as rows: dense [-1, out]; conv [n, Ho*Wo*cout] (one row
 * per example, locations and channels flattened).
 */
export function outputRows(target: DenseTarget, t: tf.Tensor): tf.Tensor2D {
  if (target.conv !== undefined) return tf.reshape(t, [t.shape[0]!, -1]) as tf.Tensor2D;
  return tf.reshape(t, [-1, target.kernel.shape[1]!]) as tf.Tensor2D;
}

/** What one use of a dense layer contributed on the tape. */
export interface Use {
  target: number;
  node: TapeNode;
  /** Activations [n, in] (kept); conv targets: the input images [n, H, W, cin]. */
  a: tf.Tensor;
  /** Whether the node's output already includes the bias (fused matMul). */
  outputHasBias: boolean;
}

/**
 * Cotangents of the per-example loss at the output pre-activations (logits [n, k]) whose outer
 * products average to the curvature wanted (one set per sample). Already scaled by 1/n like the
 * gradient of a batch-mean loss.
 */
export type CotangentSampler = (logits: tf.Tensor2D) => tf.Tensor2D[];

export interface CaptureOptions {
  /** Record the true-loss pre-activation gradients (empirical Fisher, quadratic model). */
  recordTrueGradients: boolean;
  /** When given, also back-propagate these cotangents from the output layer. */
  sampler?: CotangentSampler;
}

export interface LayerCapture {
  /** Inputs of each use, concatenated over uses [n, in] (conv: [n, H, W, cin]). */
  a: tf.Tensor;
  /** True-loss gradients at the pre-activations (scaled like the batch-mean loss), [n, out]. */
  dsTrue?: tf.Tensor2D;
  /** Sampled cotangents, one [n, out] per sample. */
  dsSampled: tf.Tensor2D[];
}

export interface CaptureResult {
  value: tf.Scalar;
  grads: tf.NamedTensorMap;
  /** Per target index; undefined when the layer did not appear on the tape. */
  layers: (LayerCapture | undefined)[];
  /** Index of the target whose pre-activation was taken as the network output. */
  outputTarget: number | undefined;
}

const ALIAS_KERNELS = new Set(['Reshape', 'Identity', 'Cast']);

/** Find the uses of the targets' kernels among the nodes recorded since `start`. */
export function findUses(tape: TapeNode[], start: number, targets: DenseTarget[]): Use[] {
  const aliasOf = new Map<number, number>(); // tensor id -> target index
  targets.forEach((t, i) => aliasOf.set(t.kernel.id, i));
  const uses: Use[] = [];
  for (let n = start; n < tape.length; n++) {
    const node = tape[n]!;
    const entries = Object.entries(node.inputs);
    if (node.kernelName !== undefined && ALIAS_KERNELS.has(node.kernelName) && entries.length === 1) {
      const src = aliasOf.get(entries[0]![1].id);
      if (src !== undefined && node.outputs.length === 1) aliasOf.set(node.outputs[0]!.id, src);
      continue;
    }
    if (node.gradient === undefined || node.outputs.length !== 1) continue;
    let bName: string | undefined;
    let aName: string | undefined;
    if (node.kernelName === 'Conv2D') {
      const use = convUse(node, 'x', 'filter', aliasOf, targets);
      if (use) uses.push(use);
      continue;
    }
    if (node.kernelName === 'BatchMatMul') [aName, bName] = ['a', 'b'];
    else if (node.inputs['0'] !== undefined && node.inputs['1'] !== undefined && node.inputs['a'] === undefined) {
      // tf.customGrad around a fused matMul (tape name 'fusedMatMul__op'): inputs (a3D, b3D, bias?).
      [aName, bName] = ['0', '1'];
    } else continue;
    const b = node.inputs[bName];
    const a = node.inputs[aName];
    if (b === undefined || a === undefined) continue;
    const target = aliasOf.get(b.id);
    if (target === undefined) continue;
    if (targets[target]!.conv !== undefined) {
      // tf.customGrad around a fused conv2d: inputs (x4D, filter, bias?).
      const use = convUse(node, aName, bName, aliasOf, targets);
      if (use) uses.push(use);
      continue;
    }
    if (targets[target]!.kernel.rank !== 2) continue;
    const [fanIn, fanOut] = targets[target]!.kernel.shape as [number, number];
    const out = node.outputs[0]!;
    // A transposed product or a kernel used in some other way is not a dense layer.
    if (a.shape[a.rank - 1] !== fanIn || out.shape[out.rank - 1] !== fanOut) continue;
    // Inputs may already be disposed (tfjs-layers computes inside inner tidies); the tensors the
    // node saved for its gradient (a first, for BatchMatMul and the fused matMul) are alive.
    const saved = node.saved?.[0];
    const aLive = a.isDisposed && saved !== undefined && saved.size === a.size ? saved : a;
    uses.push({
      target,
      node,
      a: tf.keep(tf.reshape(aLive, [-1, fanIn]) as tf.Tensor2D),
      outputHasBias: bName === '1' && node.inputs['2'] !== undefined,
    });
  }
  return uses;
}

/** A use of a conv target's kernel as the filter of an NHWC conv node, if it is one. */
function convUse(
  node: TapeNode,
  aName: string,
  bName: string,
  aliasOf: Map<number, number>,
  targets: DenseTarget[],
): Use | undefined {
  const x = node.inputs[aName];
  const w = node.inputs[bName];
  if (x === undefined || w === undefined || node.outputs.length !== 1 || node.gradient === undefined) return undefined;
  const target = aliasOf.get(w.id);
  if (target === undefined) return undefined;
  const t = targets[target]!;
  if (t.conv === undefined || x.rank !== 4) return undefined;
  const [kh, kw, cin, cout] = t.kernel.shape as [number, number, number, number];
  const out = node.outputs[0]!;
  const [n, h, wd, c] = x.shape as [number, number, number, number];
  // The geometry must be the registered one (NHWC, strides, padding); otherwise not this block.
  const ho = convAxis(h, kh, t.conv.strides[0], t.conv.padding).out;
  const wo = convAxis(wd, kw, t.conv.strides[1], t.conv.padding).out;
  if (
    c !== cin ||
    out.rank !== 4 ||
    out.shape[0] !== n ||
    out.shape[1] !== ho ||
    out.shape[2] !== wo ||
    out.shape[3] !== cout
  ) {
    return undefined;
  }
  // Inputs may already be disposed (inner tidies); the node saved x for its gradient.
  // Conv2D saves [x, filter]; the fused conv's customGrad saves [filter, x4D, y, bias?].
  const saved = node.saved?.[node.kernelName === 'Conv2D' ? 0 : 1];
  const xLive = !x.isDisposed
    ? x
    : saved !== undefined && !saved.isDisposed && saved.size === x.size
      ? saved
      : undefined;
  if (xLive === undefined) return undefined;
  return {
    target,
    node,
    a: tf.keep(tf.reshape(xLive, [n, h, wd, c])),
    outputHasBias: bName === '1' && node.inputs['2'] !== undefined,
  };
}

/**
 * Reverse-mode accumulation over recorded nodes for a cotangent seeded at `seed`, restricted to
 * tensors downstream of `from`; `onNode` sees the cotangent of each node's first output.
 * Returns the accumulated cotangents by tensor id (those of the `from` tensors included).
 */
export function backpropagate(
  tape: TapeNode[],
  start: number,
  fromIds: Set<number>,
  seedId: number,
  seed: tf.Tensor,
  onNode: (node: TapeNode, dy: tf.Tensor) => void,
  owner = 'KFAC',
): Map<number, tf.Tensor> {
  // Tensors reachable from the first layer's output: the only ones worth differentiating.
  const reach = new Set(fromIds);
  let last = start;
  for (let n = start; n < tape.length; n++) {
    const node = tape[n]!;
    if (Object.values(node.inputs).some((t) => reach.has(t.id))) {
      for (const o of node.outputs) reach.add(o.id);
    }
    if (node.outputs.some((o) => o.id === seedId)) last = n;
  }
  const acc = new Map<number, tf.Tensor>([[seedId, seed]]);
  for (let n = last; n >= start; n--) {
    const node = tape[n]!;
    const dys = node.outputs.map((o) => acc.get(o.id) ?? null);
    if (dys.every((d) => d === null)) continue;
    if (dys[0] != null) onNode(node, dys[0]);
    const wanted = Object.entries(node.inputs).filter(([, t]) => reach.has(t.id) && t.dtype === 'float32');
    if (wanted.length === 0) continue;
    if (node.gradient === undefined) {
      throw new Error(`${owner}: cannot back-propagate through '${node.kernelName}' (no gradient)`);
    }
    const grads = node.gradient(dys);
    for (const [name, t] of wanted) {
      const g = grads[name]?.();
      if (g === undefined) continue;
      const prev = acc.get(t.id);
      acc.set(t.id, prev === undefined ? g : tf.add(prev, g));
    }
  }
  return acc;
}

/**
 * Run `f` once under `tf.variableGrads`, returning its value and gradients together with the
 * activations and pre-activation gradients of every target found on the tape. The caller
 * disposes everything returned.
 */
export function captureGradients(
  f: () => tf.Scalar,
  varList: tf.Variable[] | undefined,
  targets: DenseTarget[],
  options: CaptureOptions,
): CaptureResult {
  const layers: (LayerCapture | undefined)[] = targets.map(() => undefined);
  const trueDs: tf.Tensor2D[][] = targets.map(() => []);
  const sampledDs: tf.Tensor2D[][] = targets.map(() => []);
  let uses: Use[] = [];
  let outputTarget: number | undefined;
  let deferred: Error | undefined;

  const wrapped = (): tf.Scalar => {
    const state = engineState();
    if (!Array.isArray(state.activeTape)) {
      throw new Error('KFAC: the tfjs gradient tape is not accessible (unsupported tfjs version)');
    }
    const tape = state.activeTape;
    const start = tape.length;
    const y = f();
    if (targets.length === 0) return y;
    uses = findUses(tape, start, targets);
    if (uses.length === 0) return y;

    if (options.recordTrueGradients) {
      for (const use of uses) {
        const orig = use.node.gradient!;
        const target = targets[use.target]!;
        use.node.gradient = (dys) => {
          if (dys[0] != null) trueDs[use.target]!.push(tf.keep(outputRows(target, dys[0])));
          return orig(dys);
        };
      }
    }

    if (options.sampler) {
      // The output layer: the last registered use on the tape (its pre-activation feeds the loss).
      const outUse = uses.reduce((p, u) => (u.node.id > p.node.id ? u : p));
      outputTarget = outUse.target;
      const t = targets[outUse.target]!;
      if (t.conv !== undefined) {
        // Thrown after the engine's backward pass: an exception inside tf.variableGrads would
        // leak the tensors its tape saved.
        deferred = new Error(
          `KFAC: the last registered layer before the loss is the convolution '${t.name}'; sampled and exact ` +
            "curvature need a Dense output layer (logits). Use estimation: 'empirical' with quadraticModel: 'sampled', or end the model with a Dense layer.",
        );
        return y;
      }
      const out = t.kernel.shape[1]!;
      const zOut = outUse.node.outputs[0]!;
      const logits = zOut.isDisposed
        ? (tf.tidy(() => {
            const z = tf.matMul(outUse.a, t.kernel);
            return t.bias === undefined ? z : tf.add(z, t.bias);
          }) as tf.Tensor2D)
        : (() => {
            const z = tf.reshape(zOut, [-1, out]) as tf.Tensor2D;
            return outUse.outputHasBias || t.bias === undefined ? z : (tf.add(z, t.bias) as tf.Tensor2D);
          })();
      const seeds = options.sampler(logits);
      const byNode = new Map<number, Use>(uses.map((u) => [u.node.id, u]));
      const firstUse = uses.reduce((p, u) => (u.node.id < p.node.id ? u : p));
      const fromIds = new Set(uses.filter((u) => u !== outUse).map((u) => u.node.outputs[0]!.id));
      // pieces[target][sample]: cotangents of each use, in reverse tape order.
      const pieces: tf.Tensor2D[][][] = targets.map(() => seeds.map(() => []));
      const startIndex = tape.indexOf(firstUse.node);
      seeds.forEach((seed, k) => {
        const seedTensor = tf.reshape(seed, outUse.node.outputs[0]!.shape);
        backpropagate(tape, startIndex, fromIds, outUse.node.outputs[0]!.id, seedTensor, (node, dy) => {
          const u = byNode.get(node.id);
          if (u === undefined) return;
          pieces[u.target]![k]!.push(tf.keep(outputRows(targets[u.target]!, dy)));
        });
      });
      pieces.forEach((perSample, i) => {
        sampledDs[i] = perSample
          .filter((list) => list.length > 0)
          .map((list) => {
            if (list.length === 1) return list[0]!;
            const merged = tf.keep(tf.concat(list.reverse(), 0) as tf.Tensor2D);
            list.forEach((t) => t.dispose());
            return merged;
          });
      });
    }
    return y;
  };

  let result: { value: tf.Scalar; grads: tf.NamedTensorMap };
  try {
    result = tf.variableGrads(wrapped, varList);
  } catch (err) {
    // What the capture kept survives the engine's scopes: release it before rethrowing.
    for (const u of uses) if (!u.a.isDisposed) u.a.dispose();
    for (const list of [...trueDs, ...sampledDs]) tf.dispose(list);
    throw err;
  }
  const { value, grads } = result;
  if (deferred !== undefined) {
    value.dispose();
    tf.dispose(grads);
    for (const u of uses) if (!u.a.isDisposed) u.a.dispose();
    for (const list of [...trueDs, ...sampledDs]) tf.dispose(list);
    throw deferred;
  }

  // Activations per target, stacked over uses in tape order (the order of the ds pieces).
  targets.forEach((_, i) => {
    const own = uses.filter((u) => u.target === i);
    if (own.length === 0) {
      sampledDs[i]!.forEach((t) => t.dispose());
      return;
    }
    const a =
      own.length === 1
        ? own[0]!.a
        : (tf.keep(
            tf.concat(
              own.map((u) => u.a),
              0,
            ),
          ) as tf.Tensor2D);
    if (own.length > 1) own.forEach((u) => u.a.dispose());
    // The engine back-propagates later uses first: reverse to match the activation order.
    const td = trueDs[i]!.reverse();
    const dsTrue = td.length === 0 ? undefined : td.length === 1 ? td[0]! : (tf.keep(tf.concat(td, 0)) as tf.Tensor2D);
    if (td.length > 1) td.forEach((t) => t.dispose());
    layers[i] = { a, dsTrue, dsSampled: sampledDs[i]! };
  });
  return { value, grads, layers, outputTarget };
}
