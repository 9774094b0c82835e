/**
 * HessianFree's curvature products and the damped CG solve of one step.
 *
 * Products B v: the Hessian ('hessian', any closure, `hvpVars`) or the Gauss-Newton matrix
 * J^T H_L J ('ggn'), from curvature functions (given with `setCurvatureFunctions`, or a bound
 * problem's `outputs` / `lossFromOutputs` on the first ceil(curvatureFraction * batch) examples
 * of the step's batch) or from the gradient pass's tape (src/layers/gauss-newton-capture.ts).
 *
 * Gauss-Newton products need the network outputs and the loss as a function of them, for the
 * same examples as the loss closure:
 * - `setCurvatureFunctions` (any model), or `setCurvatureBatch(batch)` after
 *   `bindProblem(problem)` (harness problems; the registry's `create(options, { problem })` binds);
 * - otherwise (model.fit, or a closure of Dense layers) they are captured from the gradient
 *   pass's tape (src/layers/gauss-newton-capture.ts, on K-FAC's capture of
 *   src/layers/capture.ts): the output layer is the last matMul with a kernel variable, the
 *   targets a leaf tensor the loss reads, and the compiled loss is identified by value among
 *   categoricalCrossentropy, sparseCategoricalCrossentropy, binaryCrossentropy and
 *   meanSquaredError (tfjs passes the optimizer only the closure, never the model or
 *   model.loss). Softmax + (sparse) categorical cross-entropy and sigmoid + binary
 *   cross-entropy take the GGN at the logits with the matching loss (Schraudolph 2002;
 *   Martens & Sutskever 2012): softmax / sigmoid cross-entropy of the logits is convex, so G is
 *   PSD and exact for the convex part of the composition. Mean squared error takes it at the
 *   model output. Anything else (a loss function of your own, regularizers, sample weights,
 *   cross-entropy after another activation) falls back to Hessian products with one
 *   console warning (curvature 'ggn' throws instead, naming the reason).
 *
 * Negative curvature (Hessian mode; the GGN is PSD): Martens' paper uses only the GGN, and a
 * Steihaug stop (Steihaug 1983) keeps a truncated solution of an indefinite model, which on
 * mini-batch Hessians was the issue-13 failure (lambda never raised, steps that overfit the
 * batch). 'raise-damping' answers as Levenberg-Marquardt / More & Sorensen (1983; Nocedal &
 * Wright 4.3) do: the detected direction d has Rayleigh quotient
 * mu = kappa / ||d||^2 - lambda <= -lambda of B, so B + lambda' I with
 * lambda' = 1.5 (lambda - kappa / ||d||^2) = 1.5 |mu| is positive along d with margin
 * 0.5 |mu| ||d||^2; CG restarts on it and lambda' is kept for the next step.
 */
import * as tf from '@tensorflow/tfjs';
import { ggnvpVars, hvpVars } from '../../src/autodiff/index.js';
import { conjugateGradient, disposeCG, type CGResult } from '../../src/curvature/cg.js';
import { releaseKept, valueAndGradients } from '../../src/curvature/closure.js';
import { flatten, splitFlat } from '../../src/curvature/vector.js';
import {
  captureGaussNewton,
  type GaussNewtonCapture,
  type TapeGaussNewton,
} from '../../src/layers/gauss-newton-capture.js';
import type { Batch, Problem } from '../../src/harness/problem.js';
import type { DenseLinearization } from './dense-ggn.js';
import type { CurvatureFunctions, HessianFreeCurvature, HessianFreeNegativeCurvature } from './options.js';

/**
 * The curvature functions of a step: the given ones, else a bound problem's on the first
 * ceil(fraction * batch) examples of the step's batch (none without a batch).
 */
export function curvatureFunctionsFor(
  given: CurvatureFunctions | undefined,
  problem: Problem | undefined,
  batch: Batch | undefined,
  fraction: number,
): { fns: CurvatureFunctions | undefined; release: () => void; batch?: Batch } {
  const p = problem;
  if (given !== undefined) return { fns: given, release: () => {} };
  if (p?.outputs === undefined || p.lossFromOutputs === undefined) return { fns: undefined, release: () => {} };
  if (batch === undefined) return { fns: undefined, release: () => {} };
  let sub = batch;
  let owned: tf.Tensor[] = [];
  if (fraction < 1) {
    const m = Math.max(1, Math.ceil(fraction * batch.size));
    const x = batch.x.slice(0, m);
    const y = batch.y.slice(0, m);
    owned = [x, y];
    sub = { x, y, size: m };
  }
  const outputs = p.outputs.bind(p);
  const lossFromOutputs = p.lossFromOutputs.bind(p);
  return {
    fns: { outputs: () => outputs(sub), lossFromOutputs: (z) => lossFromOutputs(z, sub) },
    release: () => tf.dispose(owned),
    batch: sub,
  };
}

/**
 * The step's gradient pass. Without given functions (and unless curvature is 'hessian') it
 * captures Gauss-Newton products from the tape (model.fit: src/layers/gauss-newton-capture.ts).
 * Throws for curvature 'ggn' without products; `warnOnce()` says whether to warn about an
 * unsupported model. The caller disposes value and grads (and `tape`).
 */
export function gradientPass(
  loss: () => tf.Scalar,
  varList: tf.Variable[] | undefined,
  fns: CurvatureFunctions | undefined,
  curvature: HessianFreeCurvature,
  warnOnce: () => boolean,
): {
  value: tf.Scalar;
  vars: tf.Variable[];
  grads: tf.Tensor[];
  tape: TapeGaussNewton | undefined;
  mode: 'ggn' | 'hessian';
} {
  let capture: GaussNewtonCapture | undefined;
  const { value, vars, grads } =
    fns === undefined && curvature !== 'hessian'
      ? valueAndGradients(loss, varList, (g, vl) => (capture = captureGaussNewton(g, vl)))
      : valueAndGradients(loss, varList);
  const tape = capture?.ggn;
  if (curvature === 'ggn' && fns === undefined && tape === undefined) {
    tf.dispose([value, ...grads]);
    throw new Error(
      "HessianFree: curvature 'ggn' needs the network outputs of this step's examples: call " +
        'setCurvatureFunctions({ outputs, lossFromOutputs }) (or bindProblem + setCurvatureBatch) ' +
        "before minimize, train a model of Dense layers with a supported loss, or use curvature 'hessian' / 'auto'" +
        (capture?.failure ? ` (here: ${capture.failure.message}).` : '.'),
    );
  }
  if (capture?.failure?.kind === 'unsupported' && warnOnce()) {
    console.warn(
      `HessianFree: no Gauss-Newton products for this model (${capture.failure.message}); using Hessian products.`,
    );
  }
  const mode = curvature !== 'hessian' && (fns !== undefined || tape !== undefined) ? 'ggn' : 'hessian';
  return { value, vars, grads, tape, mode };
}

/** G v from the captured tape, for the variables of this step (others read as zero). */
export function tapeProduct(ggn: TapeGaussNewton, vars: tf.Variable[]): (vs: tf.Tensor[]) => tf.Tensor[] {
  const index = new Map(vars.map((v, i) => [v.id, i]));
  return (vs) => {
    const full = ggn.vars.map((v) => {
      const i = index.get(v.id);
      return i === undefined ? tf.zerosLike(v) : vs[i]!;
    });
    const out = ggn.product(full);
    const byId = new Map(ggn.vars.map((v, i) => [v.id, out[i]!]));
    return vars.map((v) => byId.get(v.id) ?? tf.zerosLike(v));
  };
}

/** Where a step's products come from. */
export interface ProductSource {
  mode: 'ggn' | 'hessian';
  loss: () => tf.Scalar;
  vars: tf.Variable[];
  fns: CurvatureFunctions | undefined;
  tape: TapeGaussNewton | undefined;
  /** Products of a Dense stack linearised for this step (./dense-ggn.ts). */
  dense?: DenseLinearization;
}

/**
 * v -> (B + lambda() I) v on flat vectors; `onProduct` counts. lambda is read at each call
 * (raise-damping changes it between CG runs).
 */
export function dampedProduct(
  src: ProductSource,
  lambda: () => number,
  onProduct: () => void,
): (v: tf.Tensor1D) => tf.Tensor1D {
  const shapes = src.vars.map((v) => v.shape.slice());
  const fromTape = src.tape !== undefined ? tapeProduct(src.tape, src.vars) : undefined;
  return (v) => {
    onProduct();
    const l = lambda();
    return releaseKept(() =>
      tf.tidy(() => {
        // splitFlat: tf.split's slices were ~40% of a product on wasm (src/curvature/vector.ts).
        const vs = splitFlat(v, shapes);
        const bv =
          src.mode === 'hessian'
            ? hvpVars(src.loss, src.vars, vs)
            : src.dense !== undefined
              ? src.dense.product(vs)
              : fromTape !== undefined
                ? fromTape(vs)
                : ggnvpVars(src.fns!.outputs, src.fns!.lossFromOutputs, src.vars, vs);
        return tf.add(flatten(bv), tf.mul(v, l)) as tf.Tensor1D;
      }),
    );
  };
}

export interface DampedSolveOptions {
  maxIterations: number;
  tolerance: number;
  precondition: (r: tf.Tensor1D) => tf.Tensor1D;
  negativeCurvature: HessianFreeNegativeCurvature;
  maxDampingRaises: number;
  dampingIncrease: number;
  minDamping: number;
  maxDamping: number;
}

/**
 * CG on (B + lambda I) p = b from x0, re-solved with a raised lambda at negative curvature
 * ('raise-damping'). Returns the last CG result, the damping it used, the raises and the CG
 * iterations of all runs.
 */
export function dampedSolve(
  product: (lambda: () => number) => (v: tf.Tensor1D) => tf.Tensor1D,
  b: tf.Tensor1D,
  x0: tf.Tensor1D | undefined,
  lambda0: number,
  o: DampedSolveOptions,
): { cg: CGResult; lambda: number; raises: number; iterations: number } {
  let lambda = lambda0;
  const apply = product(() => lambda);
  const solve = () =>
    conjugateGradient(apply, b, x0, {
      maxIterations: o.maxIterations,
      tolerance: o.tolerance,
      stopOnNegativeCurvature: true,
      precondition: o.precondition,
    });
  let cg = solve();
  let iterations = cg.iterations;
  let raises = 0;
  // Negative curvature: p^T (B + lambda I) p = kappa <= 0 along CG's direction p, i.e. B has
  // the Rayleigh quotient mu = kappa / ||p||^2 - lambda <= -lambda there. Raise lambda past
  // -mu (times dampingIncrease, so that B + lambda I is positive along p by a margin) and
  // re-solve: the Levenberg-Marquardt answer to an indefinite model (Nocedal & Wright 4.3,
  // More & Sorensen 1983), instead of stepping along a truncated solution of it.
  while (
    cg.stop === 'negative-curvature' &&
    o.negativeCurvature === 'raise-damping' &&
    raises < o.maxDampingRaises &&
    cg.negativeCurvature !== undefined &&
    cg.negativeCurvature.directionNormSq > 0 &&
    lambda < o.maxDamping
  ) {
    const { curvature, directionNormSq } = cg.negativeCurvature;
    const past = lambda - curvature / directionNormSq; // -mu >= lambda
    lambda = Math.min(o.maxDamping, Math.max(lambda, past, o.minDamping) * o.dampingIncrease);
    raises++;
    disposeCG(cg);
    cg = solve();
    iterations += cg.iterations;
  }
  return { cg, lambda, raises, iterations };
}
