/**
 * Curvature as a linear operator over a parameter list.
 *
 * Every diagnostic in src/curvature (eigenvalues, trace, diagonal, spectral density, influence)
 * touches curvature only through `CurvatureOperator.apply`: one Hessian- or Gauss-Newton-vector
 * product, on one batch or averaged over a list of batches. The matrix is never materialised
 * (ARCHITECTURE.md, Principles).
 *
 * Vectors on the algorithm side are flat float64 arrays (the concatenation of the flattened
 * parameters, in `vars` order): the products run in float32 in tfjs, but dot products,
 * normalisation and the re-orthogonalisation of Lanczos bases are done in float64, where they
 * stay accurate for hundreds of steps.
 *
 * Dataset averaging: with `batches`, the operator is sum_b w_b C_b with weights proportional to
 * `batch.size` when the batches carry a numeric `size` (so that mean-per-batch losses average to
 * the mean over the dataset), otherwise equal, or `batchWeights` when given (normalised to sum 1).
 */
import * as tf from '@tensorflow/tfjs';
import { hvpVars, ggnvpVars } from '../autodiff/index.js';

export type CurvatureKind = 'hessian' | 'ggn';

/**
 * Loss closure: with `batches`, called once per batch as `f(batch)`; without, called as `f()`
 * (a closure over its own data). Must read the variables, return a scalar, and not call dataSync.
 */
export type LossFn<B = never> = (batch: B) => tf.Scalar;

/** Which curvature matrix, and over what data. Shared by every diagnostic. */
export interface CurvatureSourceOptions<B = never> {
  /** 'hessian' (default) or 'ggn' (Gauss-Newton J^T H_L J; needs `outputs` and `lossFromOutputs`). */
  curvature?: CurvatureKind;
  /** GGN: the network outputs (logits, reconstructions) for a batch. */
  outputs?: (batch: B) => tf.Tensor;
  /** GGN: the loss as a function of the outputs; `f(b) = lossFromOutputs(outputs(b), b)`. */
  lossFromOutputs?: (z: tf.Tensor, batch: B) => tf.Scalar;
  /** Average the curvature over these batches (default: one call `f()` without a batch). */
  batches?: readonly B[];
  /** Weights of `batches` (normalised to sum 1); default by `batch.size`, else equal. */
  batchWeights?: readonly number[];
}

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return `an array of length ${x.length}`;
  return typeof x;
}

/** Curvature C (Hessian or GGN) as a symmetric linear operator on flat float64 vectors. */
export class CurvatureOperator {
  /** Shapes of the variables, in order. */
  readonly shapes: number[][];
  /** Sizes of the variables, in order. */
  readonly sizes: number[];
  /** Total number of scalar parameters (the operator is dim x dim). */
  readonly dim: number;
  /** Operator applications so far (an application over k batches counts once). */
  matvecs = 0;
  /** Per-batch Hessian/GGN-vector products so far (the real cost). */
  batchProducts = 0;

  constructor(
    readonly vars: readonly tf.Variable[],
    private readonly products: (vs: tf.Tensor[]) => tf.Tensor[],
    private readonly productsPerApply: number,
    readonly kind: CurvatureKind,
  ) {
    this.shapes = vars.map((v) => v.shape.slice());
    this.sizes = vars.map((v) => v.size);
    this.dim = this.sizes.reduce((a, b) => a + b, 0);
  }

  /** C v for v given as tensors shaped like vars (caller disposes the result). */
  applyTensors(vs: tf.Tensor[]): tf.Tensor[] {
    if (vs.length !== this.vars.length) {
      throw new Error(`CurvatureOperator: expected ${this.vars.length} tensors, got ${vs.length}.`);
    }
    this.matvecs++;
    this.batchProducts += this.productsPerApply;
    return this.products(vs);
  }

  /** C v on a flat float64 vector of length dim. */
  apply(v: Float64Array): Float64Array {
    if (v.length !== this.dim) throw new Error(`CurvatureOperator: vector length ${v.length}, expected ${this.dim}.`);
    const flat = tf.tidy(() => {
      const out = this.applyTensors(this.toTensors(v));
      return tf.concat(out.map((t) => tf.reshape(t, [-1])));
    });
    const data = flat.dataSync();
    flat.dispose();
    return Float64Array.from(data);
  }

  /** Split a flat vector into float32 tensors shaped like vars (caller disposes). */
  toTensors(v: Float64Array): tf.Tensor[] {
    const out: tf.Tensor[] = [];
    let off = 0;
    for (let i = 0; i < this.shapes.length; i++) {
      out.push(tf.tensor(Float32Array.from(v.subarray(off, off + this.sizes[i])), this.shapes[i], 'float32'));
      off += this.sizes[i];
    }
    return out;
  }

  /** Concatenate tensors shaped like vars into a flat float64 vector. */
  fromTensors(ts: readonly tf.Tensor[]): Float64Array {
    const out = new Float64Array(this.dim);
    let off = 0;
    ts.forEach((t, i) => {
      out.set(t.dataSync(), off);
      off += this.sizes[i];
    });
    return out;
  }
}

function batchWeightsOf<B>(batches: readonly B[], given: readonly number[] | undefined): number[] {
  let w: number[];
  if (given !== undefined) {
    if (given.length !== batches.length) {
      throw new Error(`batchWeights has length ${given.length} but there are ${batches.length} batches.`);
    }
    w = given.slice();
  } else {
    const sizes = batches.map((b) =>
      b !== null && typeof b === 'object' ? (b as { size?: unknown }).size : undefined,
    );
    w = sizes.every((s) => typeof s === 'number' && s > 0) ? (sizes as number[]) : batches.map(() => 1);
  }
  const total = w.reduce((a, b) => a + b, 0);
  if (!(total > 0) || w.some((x) => !Number.isFinite(x) || x < 0)) {
    throw new Error(`batchWeights must be finite, non-negative and not all zero, got [${w.join(', ')}].`);
  }
  return w.map((x) => x / total);
}

/**
 * The curvature operator of loss `f` in `vars`: the Hessian (default) or the Gauss-Newton
 * matrix, on one batch (`f()`) or averaged over `options.batches`.
 */
export function curvatureOperator<B = never>(
  f: LossFn<B> | (() => tf.Scalar),
  vars: readonly tf.Variable[],
  options: CurvatureSourceOptions<B> = {},
): CurvatureOperator {
  if (typeof f !== 'function') throw new TypeError(`curvatureOperator: f must be a function, got ${describe(f)}.`);
  if (!Array.isArray(vars) || vars.length === 0 || !vars.every((v) => v instanceof tf.Variable)) {
    throw new TypeError(`curvatureOperator: vars must be a non-empty array of tf.Variable, got ${describe(vars)}.`);
  }
  const kind = options.curvature ?? 'hessian';
  if (kind !== 'hessian' && kind !== 'ggn') {
    throw new Error(`curvature must be 'hessian' or 'ggn', got '${String(kind)}'.`);
  }
  if (kind === 'ggn' && (typeof options.outputs !== 'function' || typeof options.lossFromOutputs !== 'function')) {
    throw new Error("curvature 'ggn' needs options.outputs and options.lossFromOutputs (functions).");
  }
  const vlist = vars as tf.Variable[];
  const loss = f as (batch?: B) => tf.Scalar;
  const one = (batch: B | undefined, vs: tf.Tensor[]): tf.Tensor[] => {
    if (kind === 'hessian') return hvpVars(() => loss(batch), vlist, vs);
    const outputs = options.outputs as (b?: B) => tf.Tensor;
    const lossOf = options.lossFromOutputs as (z: tf.Tensor, b?: B) => tf.Scalar;
    return ggnvpVars(
      () => outputs(batch),
      (z) => lossOf(z, batch),
      vlist,
      vs,
    );
  };
  const batches = options.batches;
  if (batches === undefined) {
    return new CurvatureOperator(vars, (vs) => tf.tidy(() => one(undefined, vs)), 1, kind);
  }
  if (!Array.isArray(batches) || batches.length === 0) {
    throw new Error(`options.batches must be a non-empty array, got ${describe(batches)}.`);
  }
  const weights = batchWeightsOf(batches, options.batchWeights);
  const products = (vs: tf.Tensor[]): tf.Tensor[] => {
    let acc: tf.Tensor[] | null = null;
    for (let b = 0; b < batches.length; b++) {
      const next: tf.Tensor[] = tf.tidy(() => {
        const p = one(batches[b], vs).map((t) => tf.mul(t, weights[b]));
        return acc === null ? p : p.map((t, i) => tf.add(t, (acc as tf.Tensor[])[i]));
      });
      if (acc !== null) tf.dispose(acc);
      acc = next;
    }
    return acc as tf.Tensor[];
  };
  return new CurvatureOperator(vars, products, batches.length, kind);
}

/** Diagnostics accept either a loss (plus source options) or a ready operator. */
export function resolveOperator<B>(
  f: LossFn<B> | (() => tf.Scalar) | CurvatureOperator,
  vars: readonly tf.Variable[],
  options: CurvatureSourceOptions<B>,
): CurvatureOperator {
  return f instanceof CurvatureOperator ? f : curvatureOperator(f, vars, options);
}
