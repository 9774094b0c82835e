/**
 * Truncated (preconditioned) conjugate gradient for the damped quadratic model of
 * Hessian-free optimisation (Martens 2010, section 4; init2winit mf_conjgrad_solver).
 *
 * Minimises  phi(x) = 1/2 x^T A x - b^T x  (A = B + lambda I, b = -gradient), i.e. solves
 * A x = b, on flat float32 vectors with one operator product per iteration:
 *
 *   r = b - A x0, y = M^{-1} r, p = y
 *   for i = 1, 2, ..., maxIterations:
 *     q = A p;  kappa = p^T q
 *     if kappa <= 0 and stopOnNegativeCurvature: stop, keep the last iterate (Steihaug 1983),
 *       and report kappa and ||p||^2 (the caller may raise the damping past it and re-solve)
 *     alpha = r^T y / kappa;  x += alpha p;  r -= alpha q
 *     phi_i = -1/2 x^T (b + r)                       (= phi(x_i), no extra product)
 *     stop if i > k, phi_i < 0 and (phi_i - phi_{i-k}) / phi_i < k * tolerance,
 *       k = max(minProgressWindow, ceil(0.1 i))       (Martens' relative-progress rule)
 *     y = M^{-1} r;  beta = r^T y / r_old^T y_old;  p = y + beta p
 *
 * Iterates are saved at i = ceil(first * gamma^j) (5, 7, 9, 11, 15, ... for 5 and 1.3) and
 * at the last iteration, for Martens' CG backtracking. `objective` holds phi at every iterate
 * (phi_0 first): with exact arithmetic it decreases monotonically, which is the same as the
 * error decreasing in the energy norm, since phi(x) = 1/2 ||x - x*||_A^2 - 1/2 ||x*||_A^2.
 *
 * Differences from init2winit: no periodic residual refresh (one product per iteration, as
 * Martens), a Steihaug stop for indefinite A, and a stop when the residual vanishes.
 */
import * as tf from '@tensorflow/tfjs';
import { dotNumber } from './vector.js';

export interface CGOptions {
  /** Hard cap on CG iterations (products with A). */
  maxIterations: number;
  /** Martens' relative-progress tolerance (5e-4 in the paper). 0 disables the rule. */
  tolerance?: number;
  /** Minimum window k of the progress rule (10 in the paper). */
  minProgressWindow?: number;
  /** Stop at a direction of non-positive curvature (Steihaug). Default true. */
  stopOnNegativeCurvature?: boolean;
  /** Apply M^{-1} to a residual (diagonal preconditioner); identity when omitted. */
  precondition?: (r: tf.Tensor1D) => tf.Tensor1D;
  /** First save iteration and growth factor of the saved iterates (5 and 1.3). */
  saveFirst?: number;
  saveGamma?: number;
  /** Called with each iteration's phi (diagnostics, tests). */
  onIteration?: (iteration: number, phi: number) => void;
}

export type CGStop = 'progress' | 'max-iterations' | 'negative-curvature' | 'converged' | 'non-finite';

export interface SavedIterate {
  iteration: number;
  x: tf.Tensor1D;
  /** phi(x): the damped quadratic model's change at this iterate. */
  phi: number;
}

export interface CGResult {
  /** The last iterate (also the last entry of `saved`). */
  x: tf.Tensor1D;
  /** Saved iterates in increasing iteration order; the caller disposes them (`disposeCG`). */
  saved: SavedIterate[];
  /** CG iterations performed (products with A inside the loop). */
  iterations: number;
  /** Products with A in total (iterations, plus one for a non-zero start). */
  products: number;
  /** phi at x0, x1, ..., x_iterations. */
  objective: number[];
  stop: CGStop;
  /**
   * At a 'negative-curvature' stop: p^T A p <= 0 and ||p||^2 of the search direction p, so
   * that p^T A p / ||p||^2 is a Rayleigh quotient of A (an upper bound on its smallest
   * eigenvalue).
   */
  negativeCurvature?: { curvature: number; directionNormSq: number };
}

/** Release every tensor a CG result holds. */
export function disposeCG(result: CGResult): void {
  for (const s of result.saved) s.x.dispose();
  if (!result.saved.some((s) => s.x === result.x)) result.x.dispose();
}

/**
 * Solve A x = b approximately by truncated preconditioned CG from x0 (zero when omitted).
 * `apply` returns A v (a new tensor); b and x0 are not disposed.
 */
export function conjugateGradient(
  apply: (v: tf.Tensor1D) => tf.Tensor1D,
  b: tf.Tensor1D,
  x0: tf.Tensor1D | undefined,
  options: CGOptions,
): CGResult {
  const tol = options.tolerance ?? 5e-4;
  const minWindow = options.minProgressWindow ?? 10;
  const stopOnNegative = options.stopOnNegativeCurvature ?? true;
  const precondition = options.precondition ?? ((r: tf.Tensor1D) => tf.clone(r));
  const saveFirst = options.saveFirst ?? 5;
  const saveGamma = options.saveGamma ?? 1.3;

  let products = 0;
  let x: tf.Tensor1D;
  let r: tf.Tensor1D;
  if (x0 !== undefined) {
    x = tf.clone(x0);
    const ax = apply(x);
    products++;
    r = tf.tidy(() => tf.sub(b, ax));
    ax.dispose();
  } else {
    x = tf.zerosLike(b);
    r = tf.clone(b);
  }
  const phiOf = (xv: tf.Tensor1D, rv: tf.Tensor1D): number => -0.5 * (dotNumber(xv, b) + dotNumber(xv, rv));
  let y = precondition(r);
  let p = tf.clone(y);
  let ry = dotNumber(r, y);
  const objective = [x0 !== undefined ? phiOf(x, r) : 0];
  const saved: SavedIterate[] = [];
  let nextSave = saveFirst;
  let stop: CGStop = 'max-iterations';
  let negativeCurvature: CGResult['negativeCurvature'];
  let i = 0;

  if (!Number.isFinite(ry) || !Number.isFinite(objective[0]!)) {
    stop = 'non-finite';
  } else if (ry === 0) {
    stop = 'converged';
  } else {
    while (i < options.maxIterations) {
      const q = apply(p);
      products++;
      const kappa = dotNumber(p, q);
      if (!Number.isFinite(kappa)) {
        q.dispose();
        stop = 'non-finite';
        break;
      }
      if (kappa <= 0 && stopOnNegative) {
        q.dispose();
        stop = 'negative-curvature';
        negativeCurvature = { curvature: kappa, directionNormSq: dotNumber(p, p) };
        break;
      }
      const alpha = ry / kappa;
      const xNew = tf.tidy(() => tf.add(x, tf.mul(p, alpha)) as tf.Tensor1D);
      const rNew = tf.tidy(() => tf.sub(r, tf.mul(q, alpha)) as tf.Tensor1D);
      q.dispose();
      r.dispose();
      r = rNew;
      i++;
      const phi = phiOf(xNew, r);
      objective.push(phi);
      options.onIteration?.(i, phi);
      const save = i === Math.ceil(nextSave);
      if (save) {
        saved.push({ iteration: i, x: xNew, phi });
        nextSave *= saveGamma;
      }
      if (!saved.some((s) => s.x === x)) x.dispose();
      x = xNew;

      const k = Math.max(minWindow, Math.ceil(0.1 * i));
      if (tol > 0 && i > k && phi < 0 && (phi - objective[i - k]!) / phi < k * tol) {
        stop = 'progress';
        break;
      }
      y.dispose();
      y = precondition(r);
      const ryNew = dotNumber(r, y);
      if (!Number.isFinite(ryNew)) {
        stop = 'non-finite';
        break;
      }
      if (ryNew === 0) {
        stop = 'converged';
        break;
      }
      const beta = ryNew / ry;
      ry = ryNew;
      const pNew = tf.tidy(() => tf.add(y, tf.mul(p, beta)) as tf.Tensor1D);
      p.dispose();
      p = pNew;
    }
  }
  y.dispose();
  p.dispose();
  r.dispose();
  const last = saved[saved.length - 1];
  if (last === undefined || last.x !== x) {
    saved.push({ iteration: i, x, phi: objective[objective.length - 1]! });
  }
  return { x, saved, iterations: i, products, objective, stop, negativeCurvature };
}
