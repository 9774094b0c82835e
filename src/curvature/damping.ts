/**
 * Levenberg-Marquardt damping adapted by the reduction ratio (Nocedal & Wright ch. 4 and 10;
 * Martens 2010 section 4.1):
 *
 *   rho = (f(theta + p) - f(theta)) / (m(p) - m(0))     actual over predicted change
 *   rho < lowRatio  (1/4): lambda *= increase            the model was too optimistic
 *   rho > highRatio (3/4): lambda *= decrease            the model is trustworthy
 *
 * lambda stays in [minDamping, maxDamping]. Newton uses 2 and 1/3 (fast return to pure Newton
 * for quadratic convergence); HessianFree uses Martens' 3/2 and 2/3.
 */
export interface DampingRule {
  increase: number;
  decrease: number;
  lowRatio?: number;
  highRatio?: number;
  minDamping?: number;
  maxDamping?: number;
}

/** rho = actual / predicted; NaN predicted or actual gives -Infinity (treated as a bad step). */
export function reductionRatio(actualChange: number, predictedChange: number): number {
  if (!Number.isFinite(actualChange) || !Number.isFinite(predictedChange)) return -Infinity;
  if (predictedChange === 0) return actualChange <= 0 ? 1 : -Infinity;
  return actualChange / predictedChange;
}

/** The damping after a step with reduction ratio rho. */
export function adaptDamping(lambda: number, rho: number, rule: DampingRule): number {
  const low = rule.lowRatio ?? 0.25;
  const high = rule.highRatio ?? 0.75;
  const min = rule.minDamping ?? 0;
  const max = rule.maxDamping ?? Infinity;
  let next = lambda;
  if (!(rho >= low)) next = Math.max(lambda, min > 0 ? min : 1e-12) * rule.increase;
  else if (rho > high) next = lambda * rule.decrease;
  return Math.min(max, Math.max(min, next));
}
