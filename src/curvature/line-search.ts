/**
 * Backtracking Armijo line search on a step length t (Nocedal & Wright, Algorithm 3.1):
 * accept the first t in t0, t0 * shrink, t0 * shrink^2, ... with
 *   f(t) <= f(0) + c1 * t * slope,     slope = g^T p < 0.
 * A non-finite f(t) counts as a failed trial. Returns t = 0 when no trial is accepted.
 */
export interface ArmijoOptions {
  /** First trial step (1 for Newton-type directions). */
  initialStep: number;
  /** Sufficient-decrease constant c1 (1e-4 Newton, 1e-2 Martens). */
  c1: number;
  /** Factor applied to t after a rejected trial (0.5 Newton, 0.8 Martens). */
  shrink: number;
  /** Maximum number of trials. */
  maxTrials: number;
}

export interface ArmijoResult {
  /** Accepted step, or 0 when every trial failed. */
  step: number;
  /** f at the accepted step (f(0) when step is 0). */
  value: number;
  /** Evaluations of f performed (excluding a known first value). */
  evaluations: number;
}

/**
 * `evaluate(t)` returns f(theta + t p). `known` may give f(initialStep) already computed
 * (HessianFree's CG backtracking evaluates it), saving one evaluation.
 */
export function armijoBacktracking(
  f0: number,
  slope: number,
  evaluate: (t: number) => number,
  options: ArmijoOptions,
  known?: { step: number; value: number },
): ArmijoResult {
  let t = options.initialStep;
  let evaluations = 0;
  for (let trial = 0; trial < options.maxTrials; trial++) {
    let ft: number;
    if (trial === 0 && known !== undefined && known.step === t) ft = known.value;
    else {
      ft = evaluate(t);
      evaluations++;
    }
    if (Number.isFinite(ft) && ft <= f0 + options.c1 * t * slope) return { step: t, value: ft, evaluations };
    t *= options.shrink;
  }
  return { step: 0, value: f0, evaluations };
}
