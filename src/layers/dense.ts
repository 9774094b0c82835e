/**
 * The K-FAC curvature block of a dense layer s = a W + b (Martens & Grosse 2015; kfac-jax's
 * `KroneckerFactored` dense block): the Fisher block of vec([W; b]) is approximated by A (x) G with
 *
 *   A = E[ã ã^T]   over layer inputs with a homogeneous 1 appended for the bias (ã = [a, 1]),
 *   G = E[g g^T]   over per-example gradients g of the loss at the pre-activations s.
 *
 * Gradients are handled as the matrix [dW; db] of shape [in (+1), out], whose row-major vec
 * matches A (x) G: (A (x) G) vec(V) = vec(A V G). Multiplying by the damped inverse is then
 * (A + pi sqrt(lambda) I)^-1 V (G + sqrt(lambda)/pi I)^-1 (factored Tikhonov damping with the
 * pi adjustment, pi^2 = (tr A / dim A) / (tr G / dim G)).
 *
 * A block knows its factors and how to invert and multiply; the optimizer owns damping, step
 * sizes and state (kfac-jax's separation).
 */
import * as tf from '@tensorflow/tfjs';
import { addToDiagonal, spdInverse } from './inverse.js';
import {
  applyLeft,
  applyRight,
  lowRankDampedInverse,
  useLowRank,
  type LowRankFactors,
  type LowRankInverse,
} from './lowrank.js';

/**
 * The damped inverse of one factor: an explicit matrix, or the low-rank-plus-tail form
 * (src/layers/lowrank.ts) when K-FAC's `factorRank` applies to the factor's size.
 */
export type FactorInverse = tf.Tensor2D | LowRankInverse;

/** An inverse as the preconditioner applies it (the low-rank basis is only for refreshes). */
export type AppliedInverse = tf.Tensor2D | LowRankFactors;

export function isLowRank<T extends LowRankFactors>(inv: tf.Tensor2D | T): inv is T {
  return !(inv instanceof tf.Tensor);
}

/** Options of `DenseBlock.dampedInverses` for the low-rank form. */
export interface InverseOptions {
  /** Rank of the low-rank form (0: explicit inverses). Applies to factors larger than 2 rank. */
  rank?: number;
  /** Previous Ritz bases (warm starts). */
  basisA?: tf.Tensor2D;
  basisG?: tf.Tensor2D;
  /** Seed of a cold start. */
  seed?: number;
}

export interface DenseBlockSpec {
  /** Name used in state keys and warnings (e.g. the tfjs-layers layer name). */
  name: string;
  /** Kernel variable [in, out] used as the right operand of a matMul. */
  kernel: tf.Variable;
  /** Bias variable [out], if the layer has one. */
  bias?: tf.Variable;
}

/**
 * Martens & Grosse's pi-adjusted split of damping lambda between two Kronecker factors, from their
 * mean traces (tr A / dim A, tr G / dim G): pi = sqrt(traceA / traceG) (1 when either is not
 * positive), A gets pi sqrt(lambda) and G sqrt(lambda) / pi. The one rule behind
 * DenseBlock.factoredDamping (tensor traces), K-FAC's eigenvalue cache and its worker snapshots.
 */
export function splitDamping(
  traceA: number,
  traceG: number,
  lambda: number,
): { dampA: number; dampG: number; pi: number } {
  let pi = traceA > 0 && traceG > 0 ? Math.sqrt(traceA / traceG) : 1;
  if (!Number.isFinite(pi) || pi <= 0) pi = 1;
  const s = Math.sqrt(lambda);
  return { dampA: pi * s, dampG: s / pi, pi };
}

export class DenseBlock {
  readonly name: string;
  readonly kernel: tf.Variable;
  readonly bias: tf.Variable | undefined;
  /** Size of A: inputs, plus one for the bias. */
  readonly inDim: number;
  /** Size of G: outputs. */
  readonly outDim: number;

  constructor(spec: DenseBlockSpec) {
    if (spec.kernel.rank !== 2) {
      throw new Error(`KFAC: dense layer '${spec.name}' needs a rank-2 kernel, got shape [${spec.kernel.shape}]`);
    }
    const [fanIn, fanOut] = spec.kernel.shape as [number, number];
    if (spec.bias !== undefined && (spec.bias.rank !== 1 || spec.bias.shape[0] !== fanOut)) {
      throw new Error(`KFAC: bias of '${spec.name}' must have shape [${fanOut}], got [${spec.bias.shape}]`);
    }
    this.name = spec.name;
    this.kernel = spec.kernel;
    this.bias = spec.bias;
    this.inDim = fanIn + (spec.bias ? 1 : 0);
    this.outDim = fanOut;
  }

  get variables(): tf.Variable[] {
    return this.bias ? [this.kernel, this.bias] : [this.kernel];
  }

  /** Inputs with the homogeneous column when the layer has a bias: [n, inDim]. */
  homogeneous(a: tf.Tensor2D): tf.Tensor2D {
    return this.bias ? (tf.concat([a, tf.ones([a.shape[0], 1])], 1) as tf.Tensor2D) : a;
  }

  /** A from a batch of inputs: ã^T ã / n. */
  factorA(a: tf.Tensor2D): tf.Tensor2D {
    const ah = this.homogeneous(a);
    return tf.div(tf.matMul(tf.transpose(ah), ah), ah.shape[0]) as tf.Tensor2D;
  }

  /**
   * G from pre-activation gradients of a batch-mean loss (rows scaled by 1/batch):
   * batch * sum_k ds_k^T ds_k, divided by the number of sets when they are independent samples
   * (`average`), not when they are the columns of a square root of the output Fisher.
   */
  factorG(ds: tf.Tensor2D[], batch: number, average = true): tf.Tensor2D {
    let g: tf.Tensor = tf.zeros([this.outDim, this.outDim]);
    for (const d of ds) g = tf.add(g, tf.matMul(tf.transpose(d), d));
    return tf.mul(g, average ? batch / ds.length : batch) as tf.Tensor2D;
  }

  /** The gradient as the matrix [dW; db] ([inDim, outDim]). */
  toMatrix(kernelPart: tf.Tensor, biasPart: tf.Tensor | undefined): tf.Tensor2D {
    if (!this.bias) return kernelPart as tf.Tensor2D;
    const b = biasPart ?? tf.zeros([this.outDim]);
    return tf.concat([kernelPart as tf.Tensor2D, tf.reshape(b, [1, this.outDim])], 0) as tf.Tensor2D;
  }

  /** Split [dW; db] back into kernel- and bias-shaped tensors. */
  fromMatrix(m: tf.Tensor2D): { kernel: tf.Tensor2D; bias?: tf.Tensor1D } {
    if (!this.bias) return { kernel: m };
    const fanIn = this.inDim - 1;
    return {
      kernel: tf.slice(m, [0, 0], [fanIn, this.outDim]),
      bias: tf.reshape(tf.slice(m, [fanIn, 0], [1, this.outDim]), [this.outDim]) as tf.Tensor1D,
    };
  }

  /**
   * The pi-adjusted split of damping lambda between the factors: returns the amounts added to
   * A's and G's diagonals. Reads the traces (one sync).
   */
  static factoredDamping(A: tf.Tensor2D, G: tf.Tensor2D, lambda: number): { dampA: number; dampG: number; pi: number } {
    const [ta, tg] = tf.tidy(() => [tf.sum(tf.mul(A, tf.eye(A.shape[0]))), tf.sum(tf.mul(G, tf.eye(G.shape[0])))]);
    const traceA = ta!.dataSync()[0]! / A.shape[0];
    const traceG = tg!.dataSync()[0]! / G.shape[0];
    ta!.dispose();
    tg!.dispose();
    return splitDamping(traceA, traceG, lambda);
  }

  /**
   * Inverses of the damped factors (caller owns them): explicit, or low-rank plus tail for a
   * factor larger than 2 `rank` (then `basisA`/`basisG` warm-start the subspace iteration).
   */
  static dampedInverses(
    A: tf.Tensor2D,
    G: tf.Tensor2D,
    lambda: number,
    o: InverseOptions = {},
  ): { Ainv: FactorInverse; Ginv: FactorInverse } {
    const { dampA, dampG } = DenseBlock.factoredDamping(A, G, lambda);
    const rank = o.rank ?? 0;
    const one = (M: tf.Tensor2D, damp: number, basis: tf.Tensor2D | undefined, seed: number): FactorInverse => {
      if (useLowRank(M.shape[0], rank)) {
        return lowRankDampedInverse(M, damp, rank, { ...(basis ? { basis } : {}), seed });
      }
      const Md = addToDiagonal(M, damp);
      try {
        return spdInverse(Md);
      } finally {
        Md.dispose();
      }
    };
    const seed = o.seed ?? 1;
    const Ainv = one(A, dampA, o.basisA, seed);
    try {
      return { Ainv, Ginv: one(G, dampG, o.basisG, seed + 1) };
    } catch (err) {
      DenseBlock.disposeInverse(Ainv);
      throw err;
    }
  }

  /** Dispose an inverse returned by `dampedInverses`. */
  static disposeInverse(inv: FactorInverse): void {
    if (isLowRank(inv)) tf.dispose([inv.U, inv.Ut, inv.coef, inv.tail, inv.basis]);
    else inv.dispose();
  }

  /** Multiply a gradient matrix by the damped inverse: Ainv V Ginv. */
  static precondition(v: tf.Tensor2D, Ainv: AppliedInverse, Ginv: AppliedInverse): tf.Tensor2D {
    return tf.tidy(() => {
      const left: tf.Tensor2D = isLowRank(Ainv) ? applyLeft(Ainv, v) : tf.matMul(Ainv, v);
      return isLowRank(Ginv) ? applyRight(Ginv, left) : (tf.matMul(left, Ginv) as tf.Tensor2D);
    });
  }

  /**
   * Per-example projections of the curvature cotangents on a direction V: u_i = ã_i^T V ds_i
   * ([n]). With ds scaled by 1/batch, V^T F V = batch * sum_i u_i^2 (summed over layers first).
   */
  projections(aHom: tf.Tensor2D, v: tf.Tensor2D, ds: tf.Tensor2D): tf.Tensor1D {
    return tf.sum(tf.mul(tf.matMul(aHom, v), ds), 1) as tf.Tensor1D;
  }

  /**
   * `projections` for cotangent sets stacked as [sets, n, outDim]: [sets, n], with one product
   * ã V for all of them (the quadratic model's exact curvature has one set per output unit).
   */
  projectionStack(aHom: tf.Tensor2D, v: tf.Tensor2D, ds: tf.Tensor3D): tf.Tensor2D {
    return tf.tidy(() => tf.sum(tf.mul(ds, tf.expandDims(tf.matMul(aHom, v), 0)), 2) as tf.Tensor2D);
  }

  /** `projections` for several cotangent sets, sharing the product ã V (n x inDim x outDim). */
  projectionSets(aHom: tf.Tensor2D, v: tf.Tensor2D, ds: readonly tf.Tensor2D[]): tf.Tensor1D[] {
    const av = tf.matMul(aHom, v);
    return ds.map((d) => tf.sum(tf.mul(av, d), 1) as tf.Tensor1D);
  }
}
