/**
 * K-FAC curvature blocks (kfac-jax _src/curvature_blocks: `KroneckerFactored`, `Dense`,
 * `Conv2DTwoKroneckerFactored`): one per Dense or Conv2D layer, owning its state
 *
 *   factors A, G          EMA of the layer's input and output-gradient statistics
 *   inverse cache         (A + pi sqrt(lambda) I)^-1, (G + sqrt(lambda)/pi I)^-1, explicit or
 *                         low-rank plus tail (factorRank; src/layers/lowrank.ts)
 *
 * with kfac-jax's three operations: `updateCurvatureEstimate` (new statistics into the EMA),
 * `updateCache` (refresh the damped inverses) and `multiplyMatpower` (apply the damped inverse,
 * power -1, to a gradient). The layer geometry (how inputs become statistics, the gradient
 * matrix layout [dW; db], the quadratic model's projections) lives in src/layers/dense.ts and
 * src/layers/conv.ts.
 *
 * The state lives in the optimizer's slots ('@kfac/<layer>': A, G, Ainv, Ginv, or for a
 * low-rank factor X: XU, XUt, Xcoef, Xtail, Xbasis; step = statistics updates), so that
 * getWeights/setWeights and tf.loadLayersModel save and restore it.
 */
import * as tf from '@tensorflow/tfjs';
import type { SlotState } from '../optim/base.js';
import { ema } from '../optim/transforms.js';
import { ConvBlock } from '../layers/conv.js';
import { DenseBlock, isLowRank, splitDamping, type AppliedInverse, type FactorInverse } from '../layers/dense.js';
import { useLowRank } from '../layers/lowrank.js';

/** A K-FAC layer geometry: a dense layer or a 2-D convolution (KFC, src/layers/conv.ts). */
export type KroneckerBlock = DenseBlock | ConvBlock;

/** The state key of a layer's curvature block. */
export function blockStateKey(layerName: string): string {
  return `@kfac/${layerName}`;
}

/**
 * A factor's eigendecomposition M = V diag(values) V^T, float64 (src/async's `EighOutput`:
 * vectors as columns, row-major n x n), e.g. computed off the main thread on a snapshot.
 */
export interface FactorEigen {
  n: number;
  values: Float64Array;
  vectors: Float64Array;
}

/** A symmetric factor as float64 row-major data (src/async's `SymmetricMatrix64`). */
export interface FactorSnapshot {
  n: number;
  data: Float64Array;
}

/**
 * The pi-adjusted damping split of DenseBlock.factoredDamping from eigenvalues (the traces of
 * the decomposed factors): amounts added to A's and G's eigenvalues.
 */
export function eigenDamping(A: FactorEigen, G: FactorEigen, lambda: number): { dampA: number; dampG: number } {
  const trace = (e: FactorEigen) => e.values.reduce((s, v) => s + v, 0) / e.n;
  return splitDamping(trace(A), trace(G), lambda);
}

/**
 * (M + d I)^-1 = V diag(1 / (max(s, 0) + d)) V^T from an eigendecomposition (round-off negative
 * eigenvalues of the PSD factor clamped to 0): a new damping costs one product, no
 * refactorisation (kfac-jax's eigendecomposition cache).
 */
export function inverseFromEigen(e: FactorEigen, damp: number): tf.Tensor2D {
  return tf.tidy(() => {
    const V = tf.tensor2d(Float32Array.from(e.vectors), [e.n, e.n]);
    const w = tf.tensor1d(Float32Array.from(e.values, (v) => 1 / (Math.max(v, 0) + damp)));
    return tf.matMul(tf.mul(V, w), V, false, true) as tf.Tensor2D;
  });
}

/** The damped factor inverses of a block, as the preconditioner applies them. */
export interface BlockInverses {
  Ainv: AppliedInverse;
  Ginv: AppliedInverse;
}

export class KroneckerFactoredBlock {
  constructor(
    readonly layer: KroneckerBlock,
    /** The block's slot state (looked up on each use: setWeights may replace it). */
    private readonly slots: () => SlotState,
  ) {}

  get name(): string {
    return this.layer.name;
  }

  /** Whether the block has statistics (its first update happened, or was restored). */
  get hasEstimate(): boolean {
    return this.slots().has('A');
  }

  /** The EMA factors, or undefined before the first update. */
  factors(): { A: tf.Tensor2D; G: tf.Tensor2D } | undefined {
    const s = this.slots();
    const A = s.get('A');
    const G = s.get('G');
    return A && G ? { A: A as tf.Tensor2D, G: G as tf.Tensor2D } : undefined;
  }

  /**
   * Fold this batch's statistics into the factors: A <- EMA(ã^T ã / n), G <- EMA(n ds^T ds)
   * (conv: over examples and locations), EMA weight min(1 - 1/t, decay) on the old value
   * (t = update count). `average`: the ds sets are independent samples (not the columns of the
   * output curvature's root). `rows`: use only the batch's first rows examples.
   */
  updateCurvatureEstimate(a: tf.Tensor, ds: tf.Tensor2D[], decay: number, average: boolean, rows?: number): void {
    const st = this.slots();
    const t = st.step + 1;
    const w = Math.min(1 - 1 / t, decay);
    // On the first `rows` examples only (statsBatchSize): A over them; ds (scaled 1/n) times n^2/m.
    const n = a.shape[0]!;
    const m = rows === undefined ? n : Math.min(n, Math.max(1, rows));
    const sub = (x: tf.Tensor) => (m === n ? x : tf.slice(x, 0, m));
    // Dense: inputs [n, in]; conv: images [n, H, W, cin] (the cast only satisfies the union).
    const A = this.layer.factorA(sub(a) as tf.Tensor2D);
    const G = this.layer.factorG(
      m === n ? ds : ds.map((d) => sub(d) as tf.Tensor2D),
      m === n ? n : (n * n) / m,
      average,
    );
    st.set('A', st.has('A') ? ema(st.get('A')!, A, w) : A);
    st.set('G', st.has('G') ? ema(st.get('G')!, G, w) : G);
    st.step = t;
  }

  /**
   * The damped inverses: the cached ones, refreshed first when `refresh` is set or the cache
   * lacks the wanted form (explicit, or low-rank plus tail for a factor larger than 2 `rank`,
   * warm-started at the previous refresh's Ritz vectors). With `eigen` (eigendecompositions of
   * the factors computed elsewhere, e.g. by src/async's matrix service on `factorSnapshot()`),
   * explicit inverses are built from them instead. Undefined before the first statistics.
   */
  updateCache(
    lambda: number,
    refresh: boolean,
    rank: number,
    seed: number,
    eigen?: { A: FactorEigen; G: FactorEigen },
  ): BlockInverses | undefined {
    const st = this.slots();
    if (!st.has('A')) return undefined;
    const lowA = useLowRank(this.layer.inDim, rank);
    const lowG = useLowRank(this.layer.outDim, rank);
    const Ainv = loadInverse(st, 'A', lowA);
    const Ginv = loadInverse(st, 'G', lowG);
    if (!refresh && Ainv && Ginv) return { Ainv, Ginv };
    if (eigen !== undefined && !lowA && !lowG) {
      // Precomputed eigendecompositions (of a snapshot of the factors): damp and invert.
      const { dampA, dampG } = eigenDamping(eigen.A, eigen.G, lambda);
      const inv = { Ainv: inverseFromEigen(eigen.A, dampA), Ginv: inverseFromEigen(eigen.G, dampG) };
      storeInverse(st, 'A', inv.Ainv);
      storeInverse(st, 'G', inv.Ginv);
      return inv;
    }
    const basis = (p: 'A' | 'G', low: boolean) => (low ? (st.get(`${p}basis`) as tf.Tensor2D | undefined) : undefined);
    const bA = basis('A', lowA);
    const bG = basis('G', lowG);
    const fresh = DenseBlock.dampedInverses(st.get('A') as tf.Tensor2D, st.get('G') as tf.Tensor2D, lambda, {
      rank,
      ...(bA ? { basisA: bA } : {}),
      ...(bG ? { basisG: bG } : {}),
      seed,
    });
    storeInverse(st, 'A', fresh.Ainv);
    storeInverse(st, 'G', fresh.Ginv);
    return { Ainv: fresh.Ainv, Ginv: fresh.Ginv };
  }

  /** The factors as float64 snapshots (for an eigendecomposition elsewhere), if any. */
  factorSnapshot(): { A: FactorSnapshot; G: FactorSnapshot } | undefined {
    const f = this.factors();
    if (!f) return undefined;
    const snap = (M: tf.Tensor2D) => ({ n: M.shape[0], data: Float64Array.from(M.dataSync()) });
    return { A: snap(f.A), G: snap(f.G) };
  }

  /**
   * The damped inverse (power -1) times the negated gradient, per variable: -Ainv [gW; gb] Ginv
   * (the descent direction). Without inverses (no statistics yet): -g.
   */
  multiplyMatpower(grad: Map<string, tf.Tensor>, inv: BlockInverses | undefined): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    const { kernel, bias } = this.layer;
    if (!inv) {
      this.layer.variables.forEach((v) => out.set(v.name, tf.neg(grad.get(v.name) ?? tf.zerosLike(v))));
      return out;
    }
    const gm = this.layer.toMatrix(
      grad.get(kernel.name) ?? tf.zerosLike(kernel),
      bias ? grad.get(bias.name) : undefined,
    );
    const p = this.layer.fromMatrix(tf.neg(DenseBlock.precondition(gm, inv.Ainv, inv.Ginv)));
    out.set(kernel.name, p.kernel);
    if (bias && p.bias) out.set(bias.name, p.bias);
    return out;
  }

  /**
   * Per-example projections of the cotangent sets ds [sets, n, out] on a direction vec (per
   * variable; missing parts are zero): [sets, n], with V^T F V = n sum u^2 (F of this block's
   * cotangents). `aHom` is the layer input as `homogeneous` returns it.
   */
  projections(aHom: tf.Tensor, vec: Map<string, tf.Tensor>, ds: tf.Tensor3D): tf.Tensor2D {
    const { kernel, bias } = this.layer;
    const vm = this.layer.toMatrix(vec.get(kernel.name) ?? tf.zerosLike(kernel), bias ? vec.get(bias.name) : undefined);
    // One ã V product (conv: conv(x, V) + v_b) per vector, shared by the cotangent sets.
    return this.layer.projectionStack(aHom as tf.Tensor2D, vm, ds);
  }
}

/** Save a factor inverse in a block's slots: 'Ainv', or 'AU', 'AUt', 'Acoef', 'Atail', 'Abasis'. */
function storeInverse(st: SlotState, p: 'A' | 'G', inv: FactorInverse): void {
  if (!isLowRank(inv)) {
    st.set(`${p}inv`, inv);
    return;
  }
  st.set(`${p}U`, inv.U);
  st.set(`${p}Ut`, inv.Ut);
  st.set(`${p}coef`, inv.coef);
  st.set(`${p}tail`, inv.tail);
  st.set(`${p}basis`, inv.basis);
}

/** The stored inverse of the wanted form, as the preconditioner applies it, if any. */
function loadInverse(st: SlotState, p: 'A' | 'G', lowRank: boolean): AppliedInverse | undefined {
  if (!lowRank) return st.get(`${p}inv`) as tf.Tensor2D | undefined;
  const [U, Ut, coef, tail] = ['U', 'Ut', 'coef', 'tail'].map((x) => st.get(`${p}${x}`));
  if (!U || !Ut || !coef || !tail || !st.has(`${p}basis`)) return undefined;
  return { U: U as tf.Tensor2D, Ut: Ut as tf.Tensor2D, coef: coef as tf.Tensor1D, tail: tail as tf.Scalar };
}
