/**
 * The cost model of the harness: every evaluation an optimizer makes, in gradient-equivalents.
 *
 *   cost = gradEvals x 1 + hvpEvals x 2 + lossEvals x 1/2
 *
 * - gradient (with its loss value, one forward + one backward pass): 1, the unit;
 * - curvature-vector product (Hessian-vector product by forward-over-reverse / nested tapes, or
 *   Gauss-Newton product J^T H_L J v): 2;
 * - loss value alone (a forward pass, e.g. a line-search trial): 1/2.
 *
 * Measured on mlp-mnist 784-64-10 and 784-128-10 tanh, batch 256 (scripts/measure-eval-costs.ts,
 * medians): loss 0.34-0.45, HVP 1.6-2.4, Gauss-Newton product 1.8-3.0 gradients (wasm and cpu
 * backends; the numbers are in docs/harness.md). Theory (Griewank & Walther 2008; Pearlmutter
 * 1994) bounds a gradient by a small multiple of the function and an HVP by about two gradients.
 * The optimizers' counters do not tell Hessian from Gauss-Newton products apart (both are
 * `hvpEvals`), so both weigh 2.
 *
 * Counter contract (src/optim/base.ts EvaluationCounters): `gradEvals` counts gradients (each
 * includes its loss value), `hvpEvals` curvature-vector products, `lossEvals` loss values
 * computed WITHOUT a gradient. Optimizers without counters are charged one gradient per step.
 */
import type { EvaluationCounters } from '../optim/base.js';

/** Weights of the cost model, in gradients. */
export const EVALUATION_COSTS = Object.freeze({ loss: 0.5, gradient: 1, curvatureProduct: 2 });

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
