/**
 * Influence functions (Koh & Liang, "Understanding Black-box Predictions via Influence
 * Functions", ICML 2017; kohpangwei/influence-release).
 *
 * Upweighting training point z by eps moves the minimiser theta* of the training loss
 * L(theta) = (1/n) sum_i l(z_i, theta) (+ regulariser) by d theta / d eps = -H^{-1} grad l(z),
 * H the Hessian of L at theta*. The influence on a test loss is
 *     I_up,loss(z, z_test) = -grad L_test^T H^{-1} grad l(z)
 * and removing z (eps = -1/n) changes the test loss by about -I_up,loss / n (`removalEffect`).
 * We solve s_test = (H + damping I)^{-1} grad L_test once, then each training point costs one
 * gradient: I_up,loss(z_i) = -s_test . grad l(z_i).
 *
 * Solvers:
 *  - 'cg' (default): conjugate gradient on (H + damping I) x = grad L_test with curvature-vector
 *    products, in float64; stops at ||r|| <= tol ||b|| or maxIter, or at the first direction of
 *    non-positive curvature (H indefinite away from a minimum: raise `damping`).
 *  - 'lissa' (Agarwal, Bullins & Hazan 2017, as Koh & Liang use it): the Neumann-series
 *    recursion x <- v + x - (H_b + damping I) x / scale over `depth` steps with H_b the curvature
 *    of a batch drawn at random from `batches`, averaged over `repeats`; returns x / scale.
 *    Converges when scale > lambda_max(H) + damping (default scale: 1.5 x the top eigenvalue,
 *    estimated by 20 Lanczos steps).
 * Solver status (like scipy.sparse.linalg.cg's `info`): `solve.info` is 0 when the solve
 * converged, the number of iterations done when it stopped without converging (maxIter, or a
 * LiSSA residual above `tol`), and -1 when CG met non-positive curvature (its x is then the last
 * iterate, often far from the solution). A solve that did not converge is reported once per call
 * with `console.warn` (unless `warn: false`) and in `solve.warning`; callers (the CLI's
 * `influence` command) show it, because the influence values are then unreliable.
 *
 * The point gradients come from `pointLoss` (default `f`): as in Koh & Liang's code, pass the
 * loss WITHOUT the regulariser when the regulariser is added to `f`, since removing a point
 * removes its data term only.
 */
import * as tf from '@tensorflow/tfjs';
import { valueAndGradVars } from '../autodiff/index.js';
import { CurvatureOperator, CurvatureSourceOptions, LossFn, curvatureOperator } from './operator.js';
import { axpy, dot, norm } from '../linalg/vector64.js';
import { hessianTopEigenvalues } from './eigenvalues.js';
import { ProbeRng } from './random.js';

export interface InfluenceOptions<B = never, P = B> extends CurvatureSourceOptions<B> {
  /** The test loss whose change we attribute (a closure over the variables). */
  testLoss: () => tf.Scalar;
  /** The training points to score, as inputs of `pointLoss` (e.g. one-example batches). */
  points: readonly P[];
  /** Loss of one training point (default: `f`); leave the regulariser out. */
  pointLoss?: (point: P) => tf.Scalar;
  /** Training-set size n for `removalEffect` (default: sum of `batch.size` over batches). */
  numTrain?: number;
  /** Damping added to the curvature (default 0). */
  damping?: number;
  /** 'cg' (default) or 'lissa'. */
  solver?: 'cg' | 'lissa';
  /** CG: maximum iterations (default 2 x dim, at most 500). */
  maxIter?: number;
  /** CG: relative residual tolerance (default 1e-6). */
  tol?: number;
  /** LiSSA: recursion depth (default 1000), repeats (default 1), scale (default from lambda_max). */
  lissa?: { depth?: number; repeats?: number; scale?: number };
  /** Seed of LiSSA's batch sampling and of the lambda_max estimate (default 0). */
  seed?: number;
  /** console.warn when the solve did not converge (default true); `solve.warning` is set either way. */
  warn?: boolean;
}

/** Why the solve stopped: converged, hit its iteration budget, or met non-positive curvature. */
export type InfluenceSolveStatus = 'converged' | 'max-iterations' | 'negative-curvature';

export interface InfluenceSolve {
  solver: 'cg' | 'lissa';
  iterations: number;
  /** ||(H + damping I) x - grad L_test|| / ||grad L_test||. */
  relativeResidual: number;
  converged: boolean;
  negativeCurvature: boolean;
  status: InfluenceSolveStatus;
  /**
   * scipy.sparse.linalg.cg's convention: 0 converged; > 0 not converged after that many
   * iterations; -1 non-positive curvature met (breakdown).
   */
  info: number;
  /** Set when the solve did not converge: what happened and what to try (also console.warn'ed). */
  warning?: string;
}

export interface InfluenceResult {
  /** I_up,loss(z_i, z_test) per point: d(test loss)/d(eps) when point i is upweighted by eps. */
  influence: Float64Array;
  /** Predicted change of the test loss when point i is removed: -influence / n. */
  removalEffect: Float64Array;
  /** s_test = (H + damping I)^{-1} grad L_test, shaped like vars (caller disposes). */
  sTest: tf.Tensor[];
  /** Solver report; check `solve.info` / `solve.status` (influence values are unreliable unless 0 / 'converged'). */
  solve: InfluenceSolve;
  matvecs: number;
}

function flatGrad(loss: () => tf.Scalar, vars: tf.Variable[]): Float64Array {
  const flat = tf.tidy(() => {
    const { value, grads } = valueAndGradVars(loss, vars);
    value.dispose();
    return tf.concat(grads.map((g) => tf.reshape(g, [-1])));
  });
  const out = Float64Array.from(flat.dataSync());
  flat.dispose();
  return out;
}

/** (C + damping I) v. */
function dampedApply(op: CurvatureOperator, v: Float64Array, damping: number): Float64Array {
  const out = op.apply(v);
  if (damping !== 0) axpy(damping, v, out);
  return out;
}

/** Conjugate gradient on (C + damping I) x = b from x = 0, float64. */
export function dampedConjugateGradient(
  op: CurvatureOperator,
  b: Float64Array,
  damping: number,
  maxIter: number,
  tol: number,
): { x: Float64Array; iterations: number; relativeResidual: number; converged: boolean; negativeCurvature: boolean } {
  const x = new Float64Array(b.length);
  const r = Float64Array.from(b);
  const p = Float64Array.from(b);
  const bNorm = norm(b);
  if (bNorm === 0) return { x, iterations: 0, relativeResidual: 0, converged: true, negativeCurvature: false };
  let rr = dot(r, r);
  let it = 0;
  while (it < maxIter && Math.sqrt(rr) > tol * bNorm) {
    const ap = dampedApply(op, p, damping);
    const pap = dot(p, ap);
    if (!(pap > 0)) {
      // rr tracks the recursive residual b - A x of the current iterate x.
      return { x, iterations: it, relativeResidual: Math.sqrt(rr) / bNorm, converged: false, negativeCurvature: true };
    }
    const alpha = rr / pap;
    axpy(alpha, p, x);
    axpy(-alpha, ap, r);
    const rrNext = dot(r, r);
    const beta = rrNext / rr;
    for (let i = 0; i < p.length; i++) p[i] = r[i] + beta * p[i];
    rr = rrNext;
    it++;
  }
  const relativeResidual = Math.sqrt(rr) / bNorm;
  return { x, iterations: it, relativeResidual, converged: relativeResidual <= tol, negativeCurvature: false };
}

/** The solve report with scipy-style info code and, unless converged, a warning. */
function solveReport(
  solver: 'cg' | 'lissa',
  iterations: number,
  relativeResidual: number,
  converged: boolean,
  negativeCurvature: boolean,
  tol: number,
  damping: number,
): InfluenceSolve {
  const status: InfluenceSolveStatus = converged
    ? 'converged'
    : negativeCurvature
      ? 'negative-curvature'
      : 'max-iterations';
  const info = converged ? 0 : negativeCurvature ? -1 : Math.max(1, iterations);
  const solve: InfluenceSolve = { solver, iterations, relativeResidual, converged, negativeCurvature, status, info };
  if (!converged) {
    const r = relativeResidual.toPrecision(3);
    solve.warning =
      status === 'negative-curvature'
        ? `influence: CG met non-positive curvature after ${iterations} iteration(s) (relative residual ${r}, ` +
          `damping ${damping}): the curvature is not positive definite here (not at a minimum?), so s_test and ` +
          'the influence values are unreliable. Raise `damping` (above minus the smallest eigenvalue), use ' +
          "Gauss-Newton curvature (curvature: 'ggn'), or train closer to a minimum."
        : `influence: ${solver === 'cg' ? 'CG' : 'LiSSA'} did not converge: relative residual ${r} > tol ${tol.toExponential(0)} after ` +
          `${iterations} iteration(s) (damping ${damping}), so the influence values are unreliable. ` +
          (solver === 'cg'
            ? 'Raise `maxIter` or `damping`.'
            : 'Raise `lissa.depth`, check `lissa.scale`, or use the CG solver.');
  }
  return solve;
}

function lissa<B>(
  f: LossFn<B> | (() => tf.Scalar),
  vars: readonly tf.Variable[],
  options: InfluenceOptions<B, unknown>,
  full: CurvatureOperator,
  v: Float64Array,
  damping: number,
): { x: Float64Array; iterations: number; relativeResidual: number; operators: CurvatureOperator[] } {
  const depth = options.lissa?.depth ?? 1000;
  const repeats = options.lissa?.repeats ?? 1;
  if (!Number.isInteger(depth) || depth < 1) throw new Error(`lissa.depth must be a positive integer, got ${depth}.`);
  if (!Number.isInteger(repeats) || repeats < 1)
    throw new Error(`lissa.repeats must be a positive integer, got ${repeats}.`);
  let scaleFactor = options.lissa?.scale;
  if (scaleFactor === undefined) {
    const top = hessianTopEigenvalues(full, vars, { k: 1, maxIter: 20, tol: 1e-3, seed: options.seed ?? 0 });
    scaleFactor = 1.5 * (Math.abs(top.eigenvalues[0]) + damping);
  }
  if (!(scaleFactor > 0)) throw new Error(`lissa.scale must be positive, got ${scaleFactor}.`);
  const operators =
    options.batches === undefined
      ? [full]
      : options.batches.map((b) => curvatureOperator(f, vars, { ...options, batches: [b], batchWeights: undefined }));
  const rng = new ProbeRng((options.seed ?? 0) + 1);
  const estimate = new Float64Array(v.length);
  for (let rep = 0; rep < repeats; rep++) {
    const cur = Float64Array.from(v);
    for (let j = 0; j < depth; j++) {
      const op = operators[operators.length === 1 ? 0 : rng.int(operators.length)];
      const hc = dampedApply(op, cur, damping);
      for (let i = 0; i < cur.length; i++) cur[i] = v[i] + cur[i] - hc[i] / scaleFactor;
    }
    axpy(1 / (scaleFactor * repeats), cur, estimate);
  }
  // Residual on the full (averaged) operator: one extra product, reported for honesty.
  const res = dampedApply(full, estimate, damping);
  axpy(-1, v, res);
  return {
    x: estimate,
    iterations: depth * repeats,
    relativeResidual: norm(res) / Math.max(norm(v), 1e-300),
    operators,
  };
}

/**
 * Influence of each of `options.points` on `options.testLoss`, for the model trained on the
 * loss `f` (Hessian over `options.batches`, or `f()`), at the current `vars` (which should be a
 * minimiser of the training loss).
 */
export function influence<B = never, P = B>(
  f: LossFn<B> | (() => tf.Scalar),
  vars: readonly tf.Variable[],
  options: InfluenceOptions<B, P>,
): InfluenceResult {
  if (typeof options?.testLoss !== 'function') throw new Error('influence: options.testLoss must be a function.');
  if (!Array.isArray(options.points)) throw new Error('influence: options.points must be an array of training points.');
  const damping = options.damping ?? 0;
  if (!(damping >= 0)) throw new Error(`damping must be >= 0, got ${damping}.`);
  const solver = options.solver ?? 'cg';
  if (solver !== 'cg' && solver !== 'lissa')
    throw new Error(`solver must be 'cg' or 'lissa', got '${String(solver)}'.`);
  const vlist = vars as tf.Variable[];
  const op = curvatureOperator(f, vars, options);
  let n = options.numTrain;
  if (n === undefined) {
    const sizes = (options.batches ?? []).map((b) =>
      b !== null && typeof b === 'object' ? (b as { size?: unknown }).size : undefined,
    );
    n =
      sizes.length > 0 && sizes.every((s) => typeof s === 'number')
        ? (sizes as number[]).reduce((a, b) => a + b, 0)
        : Number.NaN;
  }
  const gTest = flatGrad(options.testLoss, vlist);
  let x: Float64Array;
  let solve: InfluenceSolve;
  let matvecs: number;
  if (solver === 'cg') {
    const maxIter = options.maxIter ?? Math.min(2 * op.dim, 500);
    const tol = options.tol ?? 1e-6;
    const r = dampedConjugateGradient(op, gTest, damping, maxIter, tol);
    x = r.x;
    solve = solveReport(solver, r.iterations, r.relativeResidual, r.converged, r.negativeCurvature, tol, damping);
    matvecs = op.matvecs;
  } else {
    const r = lissa(f, vars, options as InfluenceOptions<B, unknown>, op, gTest, damping);
    x = r.x;
    const tol = options.tol ?? 1e-2;
    solve = solveReport(solver, r.iterations, r.relativeResidual, r.relativeResidual <= tol, false, tol, damping);
    matvecs = op.matvecs + r.operators.reduce((a, o) => a + (o === op ? 0 : o.matvecs), 0);
  }
  if (solve.warning !== undefined && options.warn !== false) console.warn(solve.warning);
  const pointLoss = options.pointLoss ?? (f as unknown as (p: P) => tf.Scalar);
  const values = new Float64Array(options.points.length);
  const removal = new Float64Array(options.points.length);
  options.points.forEach((point, i) => {
    const g = flatGrad(() => pointLoss(point), vlist);
    values[i] = -dot(x, g);
    removal[i] = -values[i] / n;
  });
  return { influence: values, removalEffect: removal, sTest: op.toTensors(x), solve, matvecs };
}
