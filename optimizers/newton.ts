/**
 * Newton: damped Newton's method with an explicit Hessian, for small problems.
 *
 *   per step (closure f, variables theta, n = number of parameters <= maxParams):
 *     g = grad f(theta);  H = [H e_1, ..., H e_n]   (n Hessian-vector products, symmetrised)
 *     solve in float64:   (H + lambda I) d = -g     by Cholesky; if H + lambda I is not
 *        positive definite, eigenvalue modification: H = Q diag(mu) Q^T,
 *        mu_i -> max(|mu_i|, eigenFloor * max|mu|)   (saddle-free; N&W 3.4), then + lambda
 *     Armijo backtracking: t = learningRate, t *= 0.5 until f(theta + t d) <= f + c1 t g^T d
 *     rho = (f(theta + t d) - f) / (t g^T d + t^2/2 d^T H d)    (the undamped Taylor model)
 *     lambda: rho < 1/4 -> lambda * dampingIncrease; rho > 3/4 -> lambda * dampingDecrease
 *     no acceptable t: variables unchanged, lambda * dampingIncrease
 *
 * Defaults: learningRate 1, damping 1e-3, dampingIncrease 2, dampingDecrease 1/3,
 * minDamping 1e-12, maxDamping 1e12, eigenFloor 1e-8, c1 1e-4, maxLineSearch 30,
 * maxParams 1000. With lambda shrinking by 1/3 after every good step the iteration becomes
 * pure Newton near a strong minimum, so convergence is quadratic (to float32 accuracy of f
 * and g: tfjs computes them in float32; the Hessian is solved in float64).
 *
 * Above maxParams the constructor-independent guard in `minimize` throws before any
 * Hessian-sized allocation, naming HessianFree (matrix-free CG on the same products).
 *
 * References: Nocedal & Wright, Numerical Optimization (2nd ed.), ch. 3 (line search,
 * Hessian modification) and 10.3 (Levenberg-Marquardt); Dauphin et al. 2014 (|H| for
 * saddles); PyTorch torch/optim/lbfgs.py for the closure-style step.
 *
 * Drop-in: `opt.minimize(() => loss)` and `model.compile({ optimizer: opt })` / `model.fit`.
 * The closure is called once with a gradient tape (its metrics are what tfjs-layers reports),
 * then again for the Hessian products and the line search, with what it keeps released.
 * Diagnostics: `lastStep` and cumulative `counters` (loss / gradient / HVP evaluations).
 * Float64 linear algebra: src/linalg (Cholesky, eigenvalue-modified solve).
 */
import * as tf from '@tensorflow/tfjs';
import { hvpVars } from '../src/autodiff/index.js';
import {
  addDiagonal,
  cholesky,
  choleskySolveInPlace,
  frobeniusNorm,
  mat64,
  matvec,
  solveModified,
  type Mat64,
} from '../src/linalg/index.js';
import {
  BASE_OPTION_SPECS,
  CurvatureOptimizer,
  type EvaluationCounters,
  type NamedTensorLike,
  type SkipEvent,
} from '../src/optim/base.js';
import { option, optionDocs, type OptionsInput } from '../src/optim/options.js';
import { lossValue, releaseKept, scalarClosure, valueAndGradients } from '../src/curvature/closure.js';
import { adaptDamping, reductionRatio } from '../src/curvature/damping.js';
import { armijoBacktracking } from '../src/curvature/line-search.js';
import { flatten, ParameterPoint, unflatten } from '../src/curvature/vector.js';

export const NEWTON_OPTIONS = {
  ...BASE_OPTION_SPECS,
  learningRate: option.learningRate(1, 'First trial step of the Armijo line search'),
  damping: option.number(1e-3, 'Initial Levenberg-Marquardt damping lambda', { min: 0 }),
  dampingIncrease: option.number(2, 'Factor on lambda after a poor step (rho < 1/4)', { min: 1 }),
  dampingDecrease: option.number(1 / 3, 'Factor on lambda after a good step (rho > 3/4)', { min: 0, max: 1 }),
  minDamping: option.number(1e-12, 'Lower bound of lambda', { min: 0 }),
  maxDamping: option.number(1e12, 'Upper bound of lambda', { min: 0 }),
  eigenFloor: option.number(1e-8, 'Indefinite H: eigenvalue floor relative to max |eigenvalue|', { min: 0 }),
  c1: option.number(1e-4, 'Armijo sufficient-decrease constant', {
    min: 0,
    max: 1,
    minExclusive: true,
    maxExclusive: true,
  }),
  maxLineSearch: option.number(30, 'Maximum Armijo trials (halving the step)', { min: 1, integer: true }),
  maxParams: option.number(1000, 'Largest parameter count for the explicit Hessian', { min: 1, integer: true }),
};

export type NewtonOptions = OptionsInput<typeof NEWTON_OPTIONS>;

/** What one step did (read `opt.lastStep` after `minimize`). */
export interface NewtonStepInfo {
  accepted: boolean;
  loss: number;
  newLoss: number;
  damping: number;
  rho: number;
  stepSize: number;
  /** Whether H + lambda I was indefinite and the eigenvalue modification was used. */
  modified: boolean;
  lossEvals: number;
  gradEvals: number;
  hvpEvals: number;
}

/**
 * Solve (H + lambda I) d = -g in float64: Cholesky when H + lambda I is positive definite,
 * else the saddle-free eigenvalue modification of H + lambda I (|mu_i| floored at
 * max(lambda, eigenFloor * ||H||_F)), src/linalg's solveModified 'eig-abs'.
 */
export function dampedNewtonDirection(
  H: Mat64,
  g: Float64Array,
  lambda: number,
  eigenFloor: number,
): { d: Float64Array; modified: boolean } {
  const n = g.length;
  const damped = addDiagonal(H, lambda);
  const rhs = Float64Array.from(g, (v) => -v);
  let L: Mat64 | null = null;
  try {
    L = cholesky(damped, { maxTries: 1 }).L;
  } catch {
    L = null;
  }
  if (L !== null) {
    choleskySolveInPlace(L, rhs, 1);
    return { d: rhs, modified: false };
  }
  const floor = Math.max(lambda, eigenFloor * Math.max(frobeniusNorm(H), 1e-30));
  const { x } = solveModified(damped, rhs, { strategy: 'eig-abs', delta: floor });
  if (x.length !== n) throw new Error('Newton: internal error, solve returned the wrong size');
  return { d: x, modified: true };
}

export class Newton extends CurvatureOptimizer<typeof NEWTON_OPTIONS> {
  static get className(): string {
    return 'CurvatureNewton';
  }

  /** Diagnostics of the last `minimize` call. */
  lastStep: NewtonStepInfo | undefined;
  /** Cumulative evaluations since construction (the harness reads these). */
  readonly counters: EvaluationCounters = { lossEvals: 0, gradEvals: 0, hvpEvals: 0 };

  constructor(options: NewtonOptions = {}) {
    super('Newton', NEWTON_OPTIONS, options);
    this.numericState.damping = this.options.damping;
  }

  /** The current Levenberg-Marquardt damping lambda. */
  get damping(): number {
    return this.numericState.damping!;
  }

  override applyGradients(_variableGradients: tf.NamedTensorMap | NamedTensorLike[]): void {
    throw new Error(
      'Newton needs the loss closure (it takes Hessian-vector products and a line search): ' +
        'call minimize(() => loss) or model.fit, not applyGradients.',
    );
  }

  protected override onNonFinite(_event: SkipEvent): void {
    this.numericState.damping = Math.min(
      this.options.maxDamping,
      Math.max(this.damping, this.options.minDamping, 1e-8) * 10,
    );
  }

  private guardSize(vars: tf.Variable[] | undefined): void {
    if (vars === undefined) return;
    const n = vars.reduce((s, v) => s + v.size, 0);
    if (n > this.options.maxParams) {
      throw new Error(
        `Newton: ${n} parameters is over maxParams = ${this.options.maxParams}; the explicit ` +
          `Hessian would need ${n} Hessian-vector products and an ${n} x ${n} float64 matrix per step. ` +
          'Use HessianFree (matrix-free conjugate gradient on Hessian- or Gauss-Newton-vector ' +
          'products) for problems this size, or raise maxParams.',
      );
    }
  }

  override minimize(f: () => tf.Scalar, returnCost = false, varList?: tf.Variable[]): tf.Scalar | null {
    const o = this.options;
    this.guardSize(varList);
    const loss = scalarClosure('Newton', f);
    const { value, vars, grads } = valueAndGradients(loss, varList);
    this.counters.gradEvals++;
    const step: NewtonStepInfo = {
      accepted: false,
      loss: NaN,
      newLoss: NaN,
      damping: this.damping,
      rho: NaN,
      stepSize: 0,
      modified: false,
      lossEvals: 0,
      gradEvals: 1,
      hvpEvals: 0,
    };
    this.lastStep = step;
    try {
      this.guardSize(vars);
      const names = vars.map((v) => v.name);
      if (o.skipNonFinite && !this.allFinite([value, ...grads])) {
        this.recordSkip(this.allFinite([value]) ? 'gradient' : 'loss', names);
        step.damping = this.damping;
        return this.finish(value, returnCost);
      }
      const f0 = value.dataSync()[0]!;
      step.loss = f0;
      const gFlat = flatten(grads);
      const g = Float64Array.from(gFlat.dataSync());
      gFlat.dispose();
      const H = this.hessian(loss, vars, g.length, step);
      if (!H.data.every(Number.isFinite)) {
        if (o.skipNonFinite) this.recordSkip('hessian', names);
        step.damping = this.damping;
        return this.finish(value, returnCost);
      }
      const lambda = this.damping;
      const { d, modified } = dampedNewtonDirection(H, g, lambda, o.eigenFloor);
      step.modified = modified;
      let slope = 0;
      for (let i = 0; i < g.length; i++) slope += g[i]! * d[i]!;
      const Hd = matvec(H, d);
      let curvature = 0;
      for (let i = 0; i < d.length; i++) curvature += d[i]! * Hd[i]!;

      const point = new ParameterPoint(vars);
      const dT = tf.tensor1d(Float32Array.from(d));
      try {
        const search = armijoBacktracking(
          f0,
          slope,
          (t) => {
            point.moveTo(dT, t);
            step.lossEvals++;
            return lossValue(loss);
          },
          { initialStep: this.currentLearningRate(), c1: o.c1, shrink: 0.5, maxTrials: o.maxLineSearch },
        );
        if (search.step > 0) {
          point.moveTo(dT, search.step);
          const t = search.step;
          step.rho = reductionRatio(search.value - f0, t * slope + 0.5 * t * t * curvature);
          this.numericState.damping = adaptDamping(lambda, step.rho, this.dampingRule());
          step.accepted = true;
          step.stepSize = t;
          step.newLoss = search.value;
          this.incrementIterations();
        } else {
          point.restore();
          step.rho = -Infinity;
          this.numericState.damping = adaptDamping(lambda, -Infinity, this.dampingRule());
          step.newLoss = f0;
        }
      } finally {
        point.dispose();
        dT.dispose();
      }
      step.damping = this.damping;
      return this.finish(value, returnCost);
    } finally {
      tf.dispose(grads);
      this.counters.lossEvals += step.lossEvals;
      this.counters.hvpEvals += step.hvpEvals;
    }
  }

  private dampingRule() {
    const o = this.options;
    return {
      increase: o.dampingIncrease,
      decrease: o.dampingDecrease,
      minDamping: o.minDamping,
      maxDamping: o.maxDamping,
    };
  }

  /** H column by column from n HVPs with the unit vectors, symmetrised, in float64. */
  private hessian(loss: () => tf.Scalar, vars: tf.Variable[], n: number, step: NewtonStepInfo): Mat64 {
    const shapes = vars.map((v) => v.shape.slice());
    const H = mat64(n, n);
    const h = H.data;
    for (let j = 0; j < n; j++) {
      const col = releaseKept(() =>
        tf.tidy(() => {
          const unit = tf.buffer([n], 'float32');
          unit.set(1, j);
          const e = unit.toTensor() as tf.Tensor1D;
          return flatten(hvpVars(loss, vars, unflatten(e, shapes)));
        }),
      );
      const data = col.dataSync();
      col.dispose();
      for (let i = 0; i < n; i++) h[i * n + j] = data[i]!;
      step.hvpEvals++;
    }
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const s = 0.5 * (h[i * n + j]! + h[j * n + i]!);
        h[i * n + j] = s;
        h[j * n + i] = s;
      }
    }
    return H;
  }

  private finish(value: tf.Scalar, returnCost: boolean): tf.Scalar | null {
    if (returnCost) return value;
    value.dispose();
    return null;
  }
}

tf.serialization.registerClass(Newton);

export const newtonEntry = {
  name: 'newton',
  className: Newton.className,
  description: 'Damped Newton with an explicit Hessian from HVPs (small problems), Armijo line search',
  options: optionDocs(NEWTON_OPTIONS),
  create: (options: Record<string, unknown>, context?: { problem?: unknown }) => {
    const opt = new Newton(options as NewtonOptions);
    const numParams = (context?.problem as { numParams?: number } | undefined)?.numParams;
    if (numParams !== undefined && numParams > opt.options.maxParams) {
      throw new Error(
        `Newton: the problem has ${numParams} parameters, over maxParams = ${opt.options.maxParams}. ` +
          'Use HessianFree (hessian-free) for problems this size, or raise maxParams.',
      );
    }
    return opt;
  },
};
