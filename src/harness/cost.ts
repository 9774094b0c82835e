/**
 * The cost model of the harness: every evaluation an optimizer makes, in gradient-equivalents.
 *
 *   cost = gradEvals x 1 + hvpEvals x 2.5 + lossEvals x 0.4
 *
 * - gradient (with its loss value, one forward + one backward pass): 1, the unit;
 * - curvature-vector product (Hessian-vector product by nested tapes, or Gauss-Newton product
 *   J^T H_L J v): 2.5;
 * - loss value alone (a forward pass, e.g. a line-search trial): 0.4.
 *
 * Measured on mlp-mnist 784-64-10 and 784-128-10 tanh MLPs, batch 256 (scripts/measure-eval-costs.ts
 * and BENCHMARKS.md; the table is in docs/harness.md): loss 0.34-0.45 (median 0.37), HVP
 * 1.6-2.5 (median 2.4), Gauss-Newton product 1.8-3.0 (median 2.8) gradients. The optimizers'
 * counters do not tell Hessian from Gauss-Newton products apart (both are `hvpEvals`), so both
 * weigh 2.5, the median of all curvature-product measurements rounded.
 *
 * Counter contract (src/optim/base.ts EvaluationCounters): `gradEvals` counts gradients (each
 * includes its loss value), `hvpEvals` curvature-vector products, `lossEvals` loss values
 * computed WITHOUT a gradient. Optimizers without counters are charged one gradient per step.
 */
import type { EvaluationCounters } from '../optim/base.js';

/** Weights of the cost model, in gradients. */
export const EVALUATION_COSTS = Object.freeze({ loss: 0.4, gradient: 1, curvatureProduct: 2.5 });

/** Gradient-equivalents of a set of counts under EVALUATION_COSTS. */
export function gradientEquivalents(c: EvaluationCounters): number {
  return (
    c.gradEvals * EVALUATION_COSTS.gradient +
    c.hvpEvals * EVALUATION_COSTS.curvatureProduct +
    c.lossEvals * EVALUATION_COSTS.loss
  );
}

/** `lossEvals/gradEvals/hvpEvals` as "f/g/Hv" numbers, e.g. "1/1/50" (tables). */
export function formatCounts(c: EvaluationCounters | null, digits = 3): string {
  if (c === null) return '-';
  const f = (v: number) => (Number.isInteger(v) ? String(v) : Number(v.toPrecision(digits)).toString());
  return `${f(c.lossEvals)}/${f(c.gradEvals)}/${f(c.hvpEvals)}`;
}
