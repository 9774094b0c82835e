/**
 * HessianFree's choice of the update direction among CG's iterates (Martens 2010, section 4.6):
 * iterates are saved at ceil(5 * 1.3^j) and at the last iteration (src/curvature/cg.ts); walk
 * back from the last while the previous one has a lower loss f. The chosen iterate's quadratic
 * model value q(p) is CG's phi at it, so rho needs no extra product.
 */
import type * as tf from '@tensorflow/tfjs';
import type { CGResult } from '../../src/curvature/cg.js';
import { dotNumber } from '../../src/curvature/vector.js';

export interface BacktrackedIterate {
  /** The direction p (owned by the CG result, or `fallback`). */
  direction: tf.Tensor1D;
  /** f(theta + p). */
  value: number;
  /** q(p) (its sign only, for the fallback direction). */
  phi: number;
  /** CG iteration of the chosen iterate (0 for the fallback). */
  iteration: number;
  /** The preconditioned negative gradient, when no iterate was usable (caller disposes). */
  fallback?: tf.Tensor1D;
}

/**
 * `evalAt(p)` is f(theta + p). With no usable iterate (negative curvature or a zero residual
 * before CG's first step, from a cold start), the direction is the preconditioned steepest
 * descent `precondition(b)`, b = -g; the line search scales it.
 */
export function backtrackIterates(
  cg: CGResult,
  warmStarted: boolean,
  g: tf.Tensor1D,
  b: tf.Tensor1D,
  precondition: (r: tf.Tensor1D) => tf.Tensor1D,
  evalAt: (p: tf.Tensor1D) => number,
): BacktrackedIterate {
  const usable = cg.saved.filter((s) => s.iteration > 0 || warmStarted);
  if (usable.length === 0) {
    const fallback = precondition(b);
    return { direction: fallback, value: evalAt(fallback), phi: dotNumber(g, fallback), iteration: 0, fallback };
  }
  let idx = usable.length - 1;
  let direction = usable[idx]!.x;
  let value = evalAt(direction);
  while (idx > 0) {
    const prev = usable[idx - 1]!;
    const fPrev = evalAt(prev.x);
    if (!(fPrev < value) && Number.isFinite(value)) break;
    idx--;
    direction = prev.x;
    value = fPrev;
  }
  return { direction, value, phi: usable[idx]!.phi, iteration: usable[idx]!.iteration };
}
