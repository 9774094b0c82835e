/**
 * Shampoo's preconditioners as tfjs ops: the backend for devices that keep tensors off the host
 * (webgl, webgpu, tensorflow), for parameters of order > 2 everywhere, and, forced by the
 * `backend: 'tfjs'` internal option, the reference the host kernels are tested against. The
 * coefficients come from the StepPlan (./rules.ts); the roots are applied in factored form.
 */
import * as tf from '@tensorflow/tfjs';
import type { SlotState } from '../../src/optim/base.js';
import { graftBlockNorms, graftingPreconditioner } from '../../src/optim/grafting.js';
import { hostTensor, hostValues } from '../../src/optim/shampoo-kernels.js';
import { joinBlocks, splitBlocks, type Layout } from './layout.js';
import type { ShampooPreconditioner } from './preconditioner.js';
import type { StatisticSnapshot } from './roots.js';
import { emaTensor, type ShampooRules, type StepPlan } from './rules.js';

/** The Gram matrices G_(i) G_(i)^T of one block along each of its dimensions (null where `on[i]` is false). */
function modeGrams(x: tf.Tensor, on: boolean[]): (tf.Tensor | null)[] {
  const k = x.rank;
  if (k === 2) {
    // Explicit transpose: a transposed matMul is 10x slower on wasm.
    const xt = tf.transpose(x);
    return [
      on[0] ? tf.matMul(x as tf.Tensor2D, xt as tf.Tensor2D) : null,
      on[1] ? tf.matMul(xt as tf.Tensor2D, x as tf.Tensor2D) : null,
    ];
  }
  const out: (tf.Tensor | null)[] = [];
  for (let i = 0; i < k; i++) {
    if (!on[i]) {
      out.push(null);
      continue;
    }
    const perm = [i, ...x.shape.map((_, j) => j).filter((j) => j !== i)];
    const xi = tf.reshape(i === 0 ? x : tf.transpose(x, perm), [x.shape[i]!, -1]) as tf.Tensor2D;
    out.push(tf.matMul(xi, tf.transpose(xi)));
  }
  return out;
}

/**
 * Apply P_i = W_i^T W_i along every dimension i of one block in factored form (absent W_i =
 * identity): first W_i along every dimension, then W_i^T along every dimension. With
 * X = (W_1 x ... x W_k) F, the direction is D = (W_1^T x ... x W_k^T) X, so
 * <D, F> = ||X||^2 >= 0 for whatever float32 factors are stored: a descent direction by
 * construction (a rounded product P = W^T W is not even positive semidefinite when the root is
 * ill-conditioned).
 */
function applyRoots(x: tf.Tensor, roots: (tf.Tensor | undefined)[]): tf.Tensor {
  const k = x.rank;
  const shape = x.shape;
  if (k === 2) {
    // Explicit transposes: a transposed matMul is 10x slower on wasm.
    const [wl, wr] = roots as [tf.Tensor2D | undefined, tf.Tensor2D | undefined];
    let y = x as tf.Tensor2D;
    if (wl) y = tf.matMul(wl, y);
    if (wr) y = tf.matMul(y, tf.transpose(wr));
    if (wl) y = tf.matMul(tf.transpose(wl), y);
    if (wr) y = tf.matMul(y, wr);
    return y;
  }
  // Contract dimension i, then rotate it to the back; after k rotations the order is restored.
  const along = (z: tf.Tensor, transposed: boolean): tf.Tensor => {
    let y = z;
    for (let i = 0; i < k; i++) {
      let yi = tf.reshape(y, [shape[i]!, -1]) as tf.Tensor2D;
      const w = roots[i] as tf.Tensor2D | undefined;
      if (w) yi = tf.matMul(transposed ? tf.transpose(w) : w, yi);
      y = tf.transpose(yi);
    }
    return tf.reshape(y, shape);
  };
  return along(along(x, false), true);
}

/** Rescale a tensor to the norm of `graft` (DS per-block grafting). */
function graftNorm(y: tf.Tensor, graft: tf.Tensor): tf.Tensor {
  return tf.reshape(graftBlockNorms(tf.reshape(y, [1, -1]), tf.reshape(graft, [1, -1])), y.shape);
}

/** First moment and grafting accumulator, then the filtered gradient f and the grafted direction. */
function moments(state: SlotState, g: tf.Tensor, plan: StepPlan): { f: tf.Tensor; graft: () => tf.Tensor } {
  const r = plan.graft;
  if (r !== undefined) state.set('graft', graftingPreconditioner.update(state.get('graft'), g, r));
  let f = g;
  const m = plan.moment;
  if (m !== undefined) {
    const next = emaTensor(state.get('expAvg'), g, { alpha: m.c1, beta: m.b1 });
    state.set('expAvg', next);
    f = m.fdiv === 1 ? next : tf.div(next, m.fdiv);
  }
  const graft = (): tf.Tensor => {
    const a = state.get('graft');
    return r === undefined || a === undefined ? f : graftingPreconditioner.precondition(a, f, r);
  };
  return { f, graft };
}

/** Kronecker-factored statistics and roots per block, for a parameter of any order. */
export class TfjsKronecker implements ShampooPreconditioner {
  readonly diagonal = false;
  constructor(private readonly L: Layout) {}

  updateStatistics(state: SlotState, g: tf.Tensor, plan: StepPlan): void {
    const on = this.L.preconditioned;
    splitBlocks(g, this.L).forEach((block, b) =>
      modeGrams(block, on).forEach((s, i) => {
        if (s !== null) state.set(`L${b}_${i}`, emaTensor(state.get(`L${b}_${i}`), s, plan.statistics));
      }),
    );
  }

  statistics(state: SlotState): StatisticSnapshot[] {
    const on = this.L.preconditioned;
    return this.L.blocks.flatMap((sizes, b) =>
      sizes.flatMap((n, i) => (on[i] ? [{ block: b, dim: i, n, values: hostValues(state.get(`L${b}_${i}`)!) }] : [])),
    );
  }

  setRoot(state: SlotState, b: number, i: number, factor: Float32Array, n: number): void {
    state.set(`W${b}_${i}`, hostTensor(factor, [n, n]));
  }

  direction(state: SlotState, g: tf.Tensor, plan: StepPlan, shape: number[]): tf.Tensor {
    const { f, graft } = moments(state, g, plan);
    if (!plan.precondition) return graft();
    const L = this.L;
    let ys = splitBlocks(f, L).map((block, b) =>
      applyRoots(
        block,
        L.merged.map((_, i) => state.get(`W${b}_${i}`)),
      ),
    );
    if (plan.graftNorms) {
      const gs = splitBlocks(graft(), L);
      ys = ys.map((y, b) => graftNorm(y, gs[b]!));
    }
    return joinBlocks(ys, L, shape);
  }
}

/** Vectors: the diagonal statistic v, d = f / (v + eps)^{1/r} with the current statistic. */
export class TfjsDiagonal implements ShampooPreconditioner {
  readonly diagonal = true;
  constructor(private readonly rules: ShampooRules) {}

  updateStatistics(state: SlotState, g: tf.Tensor, plan: StepPlan): void {
    state.set('diag', emaTensor(state.get('diag'), tf.square(g), plan.statistics));
  }

  statistics(): StatisticSnapshot[] {
    return [];
  }

  setRoot(): void {
    throw new Error('Shampoo: a diagonal preconditioner has no roots');
  }

  direction(state: SlotState, g: tf.Tensor, plan: StepPlan, shape: number[]): tf.Tensor {
    const { f, graft } = moments(state, g, plan);
    if (!plan.precondition) return graft();
    const v = tf.mul(state.get('diag')!, plan.diagScale);
    const eps =
      this.rules.epsilon.epsilonMode === 'relative'
        ? tf.mul(tf.max(v), this.rules.epsilon.epsilon)
        : tf.scalar(this.rules.epsilon.epsilon);
    // The 1e-30 floor keeps a zero statistic (zero gradient) from giving 0 * Inf.
    const d = tf.mul(f, tf.pow(tf.add(tf.add(v, eps), 1e-30), -1 / this.rules.rootExponent(1)));
    return plan.graftNorms ? tf.reshape(graftNorm(d, graft()), shape) : d;
  }
}
