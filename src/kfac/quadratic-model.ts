/**
 * K-FAC's quadratic model of the loss along the step (Martens & Grosse 2015 sec. 6.4 and 7;
 * kfac-jax optimizer.py `_compute_quad_change_for_damping`, `_solve_quad_model`):
 *
 *   m(u) = g.u + 1/2 u^T (F + (lambda + wd) I) u,   u = alpha Delta + mu delta
 *
 * with F the Gauss-Newton/Fisher matrix of this batch, its quadratic forms taken from the
 * captured cotangents without the Kronecker approximation: u^T F u = n sum_{i,k} (sum_l
 * ã_il^T U_l ds_il^k)^2 over the cotangent sets k (exact: the columns of the output
 * curvature's root; sampled: the mean over the target samples), plus the diagonal curvature of
 * fallback variables.
 */
import * as tf from '@tensorflow/tfjs';
import type { KroneckerFactoredBlock } from './blocks.js';
import { splitCotangents, type ActiveBlock, type CotangentPlan } from './estimator.js';

/** Upper bound of the quadratic model's momentum (kfac-jax leaves it free; clipping avoids
 * the momentum amplifying a bad previous step). */
export const MAX_MOMENTUM = 0.99;

export type VectorMap = Map<string, tf.Tensor>;

/** sum over the named variables of a . b (a scalar tensor). */
export function dot(names: readonly string[], a: VectorMap, b: VectorMap): tf.Tensor {
  return tf.addN(names.map((n) => (a.get(n) && b.get(n) ? tf.sum(tf.mul(a.get(n)!, b.get(n)!)) : tf.scalar(0))));
}

export class QuadraticModel {
  /** The quadratic model's cotangent sets per active block, stacked [sets, n, out] once. */
  private readonly stacks = new Map<KroneckerFactoredBlock, tf.Tensor3D>();

  constructor(
    private readonly active: readonly ActiveBlock[],
    private readonly plan: CotangentPlan,
    private readonly batch: number,
    /** Diagonal curvature of the fallback variables. */
    private readonly diagonal: Map<string, tf.Tensor>,
    /** Examples of the batch the Kronecker blocks' curvature is taken over (the first rows). */
    private readonly rows: number = batch,
  ) {}

  /** Whether the Kronecker blocks' curvature is over a sub-batch. */
  private get sub(): boolean {
    return this.rows < this.batch;
  }

  /** Whether every active block has cotangents for the model (else the step sizes are fixed). */
  get available(): boolean {
    return (
      this.active.length > 0 &&
      this.active.every(({ capture }) => capture.dsTrue !== undefined || capture.dsSampled.length > 0)
    );
  }

  private stack({ block, capture }: ActiveBlock): tf.Tensor3D | undefined {
    if (!this.stacks.has(block)) {
      const ds = splitCotangents(capture, this.plan).quad;
      if (ds.length === 0) return undefined;
      const stack = (ds.length === 1 ? tf.expandDims(ds[0]!, 0) : tf.stack(ds)) as tf.Tensor3D;
      this.stacks.set(block, this.sub ? tf.slice(stack, [0, 0, 0], [-1, this.rows, -1]) : stack);
    }
    return this.stacks.get(block);
  }

  /** The Gram matrix u_j^T F u_k over the vectors, row-major as a [m * m] tensor. */
  curvatureGram(vecs: readonly VectorMap[]): tf.Tensor {
    const m = vecs.length;
    const proj: (tf.Tensor | undefined)[] = []; // [vector] -> projections [sets, n], summed over blocks
    let sets = 0;
    for (const ab of this.active) {
      const ds = this.stack(ab);
      if (ds === undefined) continue;
      sets = Math.max(sets, ds.shape[0]);
      const a = this.sub ? tf.slice(ab.capture.a, 0, this.rows) : ab.capture.a;
      const aHom = ab.block.layer.homogeneous(a as tf.Tensor2D);
      vecs.forEach((vec, j) => {
        const pr = ab.block.projections(aHom, vec, ds);
        const cur = proj[j];
        proj[j] =
          cur === undefined || cur.shape[0] !== pr.shape[0] || cur.shape[1] !== pr.shape[1] ? pr : tf.add(cur, pr);
      });
    }
    // n sum_{i, k} proj^2 over the batch; over its first m rows: (n^2 / m) sum.
    let scale = this.plan.quadExact ? this.batch : this.batch / Math.max(sets, 1);
    if (this.sub) scale *= this.batch / this.rows;
    const rows: tf.Tensor[] = [];
    for (let j = 0; j < m; j++) {
      for (let q = 0; q < m; q++) {
        const pj = proj[j];
        const pq = proj[q];
        let acc: tf.Tensor = pj && pq ? tf.sum(tf.mul(pj, pq)) : tf.scalar(0);
        acc = tf.mul(acc, scale);
        for (const [name, d] of this.diagonal) {
          const a = vecs[j]!.get(name);
          const b = vecs[q]!.get(name);
          if (a && b) acc = tf.add(acc, tf.sum(tf.mul(tf.mul(a, b), d)));
        }
        rows.push(acc);
      }
    }
    return tf.stack(rows);
  }
}

/** The products the step sizes need, read back from the device in one transfer. */
export interface ModelProducts {
  /** [Delta.F.Delta, Delta.F.delta, delta.F.Delta, delta.F.delta] (or just the first). */
  F: number[];
  gd: number;
  dd: number;
  /** With a previous step: g.delta, Delta.delta, delta.delta. */
  gp?: number;
  dp?: number;
  pp?: number;
}

/**
 * The minimiser (alpha, mu) of m(alpha Delta + mu delta) (alpha only without a previous step
 * delta), mu clipped to [0, MAX_MOMENTUM] with the best alpha for the clipped mu, and the
 * model's change at it WITHOUT lambda (m0, for the damping's reduction ratio). `reg` = lambda + wd.
 */
export function solveQuadraticModel(
  p: ModelProducts,
  reg: number,
  wd: number,
): { alpha: number; mu: number; modelChange: number } {
  let alpha: number;
  let mu: number;
  let modelChange: number;
  const { gd, dd } = p;
  if (p.gp === undefined) {
    const f11 = p.F[0]!;
    const q11 = f11 + reg * dd;
    alpha = q11 > 0 ? -gd / q11 : 0;
    mu = 0;
    if (!Number.isFinite(alpha)) alpha = 0;
    modelChange = alpha * gd + 0.5 * alpha * alpha * (f11 + wd * dd);
  } else {
    const [f11, f12, , f22] = p.F as [number, number, number, number];
    const [gp, dp, pp] = [p.gp, p.dp!, p.pp!];
    const a11 = f11 + reg * dd;
    const a12 = f12 + reg * dp;
    const a22 = f22 + reg * pp;
    const det = a11 * a22 - a12 * a12;
    mu = det > 1e-12 * a11 * a22 ? -(-a12 * gd + a11 * gp) / det : 0;
    // Momentum outside [0, maxMomentum] means the model distrusts the previous step:
    // clip it and take the best learning rate for the clipped momentum.
    mu = Math.min(Math.max(Number.isFinite(mu) ? mu : 0, 0), MAX_MOMENTUM);
    alpha = a11 > 0 ? -(gd + mu * a12) / a11 : 0;
    if (!Number.isFinite(alpha)) [alpha, mu] = [0, 0];
    const fuu = alpha * alpha * f11 + 2 * alpha * mu * f12 + mu * mu * f22;
    const uu = alpha * alpha * dd + 2 * alpha * mu * dp + mu * mu * pp;
    modelChange = alpha * gd + mu * gp + 0.5 * (fuu + wd * uu);
  }
  if (!Number.isFinite(alpha) || !Number.isFinite(mu)) [alpha, mu] = [0, 0];
  return { alpha, mu, modelChange };
}
