/**
 * LBFGS: limited-memory BFGS with an optional strong-Wolfe line search, a port of
 * torch.optim.LBFGS (torch/optim/lbfgs.py, itself after Mark Schmidt's minFunc and the Lua
 * torch/optim lbfgs.lua / lswolfe.lua / polyinterp.lua). One `minimize(closure)` call is one
 * torch `step(closure)`: up to `maxIter` L-BFGS iterations and `maxEval` closure evaluations.
 *
 *   per step (closure f over the variables theta, flat gradient g):
 *     evaluate f, g;  stop if max|g| <= toleranceGrad
 *     repeat (at most maxIter times; nIter counts across steps):
 *       first iteration ever: d = -g, history empty, H_diag = 1
 *       else: y = g - g_prev, s = t d;  if y^T s > 1e-10: push (y, s, rho = 1 / y^T s)
 *             (dropping the oldest beyond historySize), H_diag = y^T s / y^T y;
 *             d = -H g by the two-loop recursion (Nocedal & Wright, Algorithm 7.4)
 *       t = min(1, 1 / |g|_1) * learningRate on the first iteration ever, else learningRate
 *       stop if g^T d > -toleranceChange
 *       lineSearchFn 'strong_wolfe': t from the strong-Wolfe search (c1 1e-4, c2 0.9, at most
 *         25 evaluations: bracketing with cubic extrapolation in [t + 0.01 (t - t_prev), 10 t],
 *         then zoom with cubic interpolation, safeguarded 0.1 away from the bracket ends;
 *         Nocedal & Wright Algorithms 3.5 / 3.6); theta += t d
 *       lineSearchFn null: theta += t d, then re-evaluate f, g (except on the last iteration)
 *       stop when nIter reaches maxIter, evaluations >= maxEval, max|g| <= toleranceGrad,
 *         max|t d| <= toleranceChange or |f - f_prev| < toleranceChange
 *   The closure's first value is returned (torch returns orig_loss).
 *
 * Defaults (torch 1.13 and 2.x): learningRate 1, maxIter 20, maxEval floor(maxIter * 5 / 4),
 * toleranceGrad 1e-7, toleranceChange 1e-9, historySize 100, lineSearchFn null.
 *
 * State carried across `minimize` calls (torch's state dict): d, t, the (y, s, rho) history,
 * H_diag, the previous gradient and loss, nIter and funcEvals. All of it lives in slots of the
 * '@lbfgs' state entry and in `numericState`, so `getWeights` / `setWeights` (and
 * `model.save` with the optimizer) continue the same trajectory.
 *
 * Float32: the vectors (history, directions, gradients) are tfjs float32 tensors as in torch's
 * float32 runs; scalars (rho, H_diag, the step t) are rounded to float32 where torch holds them
 * in float32 tensors. The line search runs on JS numbers.
 *
 * Differences from torch, on purpose:
 * - The non-finite guard: if any loss or gradient the step evaluates is NaN/Inf, the whole
 *   step is undone (variables and state as before the call) and counted in `skippedSteps`;
 *   torch would carry the NaN into the parameters.
 * - `iterations` (tfjs's update count, used by learning-rate schedules) counts `minimize`
 *   calls that moved the variables; `nIter` / `funcEvals` are torch's counters.
 *
 * Drop-in: `opt.minimize(() => loss)` and `model.compile({ optimizer: opt })` / `model.fit`
 * (one fit batch is one step: use full-batch fit, L-BFGS is a deterministic method). The first
 * closure call is taped as usual (its metrics are what tfjs-layers reports); later calls
 * release what they keep (src/curvature/closure.ts). Diagnostics: `lastStep`, cumulative
 * `counters` (every closure evaluation is one gradient).
 *
 * References: Nocedal & Wright, Numerical Optimization (2nd ed.), 7.2 (L-BFGS), 3.5
 * (strong-Wolfe line search, interpolation); Liu & Nocedal (1989), "On the limited memory BFGS
 * method for large scale optimization"; PyTorch torch/optim/lbfgs.py. tfjs declined an L-BFGS
 * optimizer (tensorflow/tfjs#127).
 */
import * as tf from '@tensorflow/tfjs';
import {
  BASE_OPTION_SPECS,
  CurvatureOptimizer,
  type EvaluationCounters,
  type NamedTensorLike,
} from '../src/optim/base.js';
import {
  invalidOption,
  numberFromText,
  option,
  optionDocs,
  type OptionSpec,
  type OptionsInput,
} from '../src/optim/options.js';
import { releaseKept, scalarClosure, valueAndGradients } from '../src/curvature/closure.js';
import { flatten, ParameterPoint, unflatten } from '../src/curvature/vector.js';
import { strongWolfe } from '../src/optim/strong-wolfe.js';

export { cubicInterpolate, strongWolfe } from '../src/optim/strong-wolfe.js';
export type { LinePoint, StrongWolfeOptions } from '../src/optim/strong-wolfe.js';

export type LBFGSLineSearch = 'strong_wolfe' | null;

const lineSearchOption: OptionSpec<LBFGSLineSearch> = {
  default: null,
  description: "Line search: 'strong_wolfe' or null (fixed step learningRate)",
  parse(v, name) {
    if (v === null || v === 'strong_wolfe') return v;
    // tfjs-layers' model loading converts snake_case string values in an optimizer's config
    // to camelCase (convertPythonicToTs), so a saved 'strong_wolfe' comes back as this.
    if (v === 'strongWolfe') return 'strong_wolfe';
    throw invalidOption(name, v, "must be 'strong_wolfe' or null");
  },
  type: "'strong_wolfe' | null",
  fromText: (raw) => (raw === 'null' ? null : raw),
};

const maxEvalOption: OptionSpec<number | undefined> = {
  default: undefined,
  description: 'Maximum closure evaluations per step (default floor(maxIter * 5 / 4))',
  parse(v, name) {
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
      throw invalidOption(name, v, 'must be an integer >= 1');
    }
    return v;
  },
  type: 'integer',
  fromText: (raw, name) => numberFromText(raw, name, { min: 1, integer: true }),
};

export const LBFGS_OPTIONS = {
  ...BASE_OPTION_SPECS,
  learningRate: option.learningRate(1, 'Step size (the line search starts from it)'),
  maxIter: option.number(20, 'Maximum L-BFGS iterations per step', { min: 1, integer: true }),
  maxEval: maxEvalOption,
  toleranceGrad: option.number(1e-7, 'Stop when max |gradient| <= toleranceGrad', { min: 0 }),
  toleranceChange: option.number(1e-9, 'Stop when the loss or parameters change by less', { min: 0 }),
  historySize: option.number(100, 'Number of (s, y) pairs kept', { min: 1, integer: true }),
  lineSearchFn: lineSearchOption,
};

export type LBFGSOptions = OptionsInput<typeof LBFGS_OPTIONS>;

/** What one step (one `minimize` call) did. */
export interface LBFGSStepInfo {
  /** The closure's first value (what `minimize` returns). */
  loss: number;
  /** The loss at the final point (as last evaluated). */
  newLoss: number;
  /** L-BFGS iterations in this step (updated as the step runs). */
  iterations: number;
  /** Closure evaluations in this step. */
  evaluations: number;
  /** Why the step ended. */
  reason: 'max-iter' | 'max-eval' | 'tolerance-grad' | 'tolerance-change' | 'directional-derivative' | 'non-finite';
}

// ------------------------------------------------------------------ the optimizer

const KEY = '@lbfgs';
const f32 = Math.fround;

/** Compute several scalars inside a tidy and read them with one sync. */
function readScalars(fn: () => tf.Tensor[]): number[] {
  const packed = tf.tidy(() => tf.stack(fn().map((t) => tf.reshape(t, []))));
  const v = Array.from(packed.dataSync());
  packed.dispose();
  return v;
}

/** The step's working copy of the torch state (tensors owned by the step until committed). */
interface WorkingState {
  d: tf.Tensor1D | null;
  t: number;
  oldDirs: tf.Tensor1D[];
  oldStps: tf.Tensor1D[];
  ro: number[];
  hDiag: number;
  prevFlatGrad: tf.Tensor1D | null;
  prevLoss: number;
  nIter: number;
  funcEvals: number;
}

class NonFiniteInStep extends Error {
  constructor(readonly reason: 'loss' | 'gradient') {
    super(`LBFGS: non-finite ${reason}`);
  }
}

export class LBFGS extends CurvatureOptimizer<typeof LBFGS_OPTIONS> {
  static get className(): string {
    return 'CurvatureLBFGS';
  }

  /** Diagnostics of the last `minimize` call. */
  lastStep: LBFGSStepInfo | undefined;
  /** Cumulative evaluations since construction (each closure call is one gradient). */
  readonly counters: EvaluationCounters = { lossEvals: 0, gradEvals: 0, hvpEvals: 0 };

  constructor(options: LBFGSOptions = {}) {
    super('LBFGS', LBFGS_OPTIONS, options);
  }

  /** maxEval with torch's default floor(maxIter * 5 / 4). */
  get maxEval(): number {
    return this.options.maxEval ?? Math.floor((this.options.maxIter * 5) / 4);
  }

  /** torch's state['n_iter']: L-BFGS iterations since construction (saved). */
  get nIter(): number {
    return this.numericState.nIter ?? 0;
  }

  /** torch's state['func_evals']: closure evaluations since construction (saved). */
  get funcEvals(): number {
    return this.numericState.funcEvals ?? 0;
  }

  override applyGradients(_variableGradients: tf.NamedTensorMap | NamedTensorLike[]): void {
    throw new Error(
      'LBFGS needs the loss closure (it re-evaluates the loss and gradient within a step): ' +
        'call minimize(() => loss) or model.fit, not applyGradients.',
    );
  }

  private loadState(n: number): WorkingState {
    const ns = this.numericState;
    const st = this.stateFor(KEY);
    const len = ns.historyLength ?? 0;
    const take = (slot: string): tf.Tensor1D | null => {
      const v = st.get(slot);
      if (v === undefined) return null;
      if (v.size !== n) {
        throw new Error(
          `LBFGS: the variables have ${n} parameters but the optimizer's state was built for ${v.size}; ` +
            'use one LBFGS instance per set of variables (or a fresh one).',
        );
      }
      return tf.clone(v) as tf.Tensor1D;
    };
    const oldDirs: tf.Tensor1D[] = [];
    const oldStps: tf.Tensor1D[] = [];
    for (let i = 0; i < len; i++) {
      oldDirs.push(take(`y${i}`)!);
      oldStps.push(take(`s${i}`)!);
    }
    const roT = st.get('ro');
    const ro = len > 0 && roT !== undefined ? Array.from(roT.dataSync()).slice(0, len) : [];
    return {
      d: take('d'),
      t: ns.t ?? NaN,
      oldDirs,
      oldStps,
      ro,
      hDiag: ns.hDiag ?? 1,
      prevFlatGrad: take('prevFlatGrad'),
      prevLoss: ns.prevLoss ?? NaN,
      nIter: this.nIter,
      funcEvals: this.funcEvals,
    };
  }

  private commitState(w: WorkingState): void {
    const st = this.stateFor(KEY);
    if (w.d !== null) st.set('d', w.d);
    if (w.prevFlatGrad !== null) st.set('prevFlatGrad', w.prevFlatGrad);
    for (let i = 0; i < w.oldDirs.length; i++) {
      st.set(`y${i}`, w.oldDirs[i]!);
      st.set(`s${i}`, w.oldStps[i]!);
    }
    if (w.ro.length > 0) {
      const roT = tf.tensor1d(Float32Array.from(w.ro));
      st.set('ro', roT);
      roT.dispose();
    }
    Object.assign(this.numericState, {
      t: w.t,
      hDiag: w.hDiag,
      prevLoss: w.prevLoss,
      historyLength: w.oldDirs.length,
      nIter: w.nIter,
      funcEvals: w.funcEvals,
    });
  }

  override minimize(f: () => tf.Scalar, returnCost = false, varList?: tf.Variable[]): tf.Scalar | null {
    const o = this.options;
    const loss = scalarClosure('LBFGS', f);
    // lastStep is live during the step: `nIter + lastStep.iterations` is torch's
    // state['n_iter'] as the closure sees it.
    const info: LBFGSStepInfo = { loss: NaN, newLoss: NaN, iterations: 0, evaluations: 1, reason: 'max-iter' };
    this.lastStep = info;
    // First evaluation: taped as usual, not wrapped (tfjs-layers reports its metrics).
    const { value, vars, grads } = valueAndGradients(loss, varList);
    this.counters.gradEvals++;
    const names = vars.map((v) => v.name);
    const finish = (): tf.Scalar | null => {
      if (returnCost) return value;
      value.dispose();
      return null;
    };
    if (vars.length === 0) {
      tf.dispose([value, ...grads]);
      throw new Error('LBFGS.minimize: the loss does not depend on any trainable variable');
    }
    if (o.skipNonFinite && !this.allFinite([value, ...grads])) {
      tf.dispose(grads);
      info.reason = 'non-finite';
      this.recordSkip(this.allFinite([value]) ? 'gradient' : 'loss', names);
      return finish();
    }
    const n = vars.reduce((s, v) => s + v.size, 0);
    const shapes = vars.map((v) => v.shape.slice());
    let flatGrad = flatten(grads) as tf.Tensor1D;
    tf.dispose(grads);
    const [lossValue0, gMax0] = readScalars(() => [value, tf.max(tf.abs(flatGrad))]);
    info.loss = lossValue0!;
    info.newLoss = lossValue0!;

    let w: WorkingState;
    try {
      w = this.loadState(n);
    } catch (err) {
      tf.dispose([value, flatGrad]);
      throw err;
    }
    const start = new ParameterPoint(vars);
    const owned = new Set<tf.Tensor>(); // every vector the step made; freed at the end unless committed
    const own = <T extends tf.Tensor>(t: T): T => {
      owned.add(t);
      return t;
    };
    own(flatGrad);
    for (const t of [...w.oldDirs, ...w.oldStps]) own(t);
    if (w.d) own(w.d);
    if (w.prevFlatGrad) own(w.prevFlatGrad);
    w.funcEvals += 1;

    // One closure evaluation at the current variables: loss, flat gradient, max |g| and, given a
    // direction, g^T d, with one read. max |g| of every gradient the step has is kept in gMaxOf.
    const gMaxOf = new Map<tf.Tensor, number>([[flatGrad, gMax0!]]);
    const evaluate = (dir?: tf.Tensor1D): { f: number; g: tf.Tensor1D; gtd: number } => {
      const out = releaseKept(() =>
        tf.tidy(() => {
          const r = tf.variableGrads(loss, vars);
          const g = flatten(vars.map((v) => r.grads[v.name]!));
          return { value: r.value, g };
        }),
      );
      this.counters.gradEvals++;
      own(out.g);
      const [fv, finite, gMax, gtd] = readScalars(() => [
        out.value,
        tf.sum(tf.mul(out.g, 0)),
        tf.max(tf.abs(out.g)),
        dir ? tf.dot(out.g, dir) : tf.scalar(NaN),
      ]);
      out.value.dispose();
      if (o.skipNonFinite && (!Number.isFinite(fv!) || !Number.isFinite(finite!))) {
        throw new NonFiniteInStep(Number.isFinite(fv!) ? 'gradient' : 'loss');
      }
      gMaxOf.set(out.g, gMax!);
      return { f: fv!, g: out.g, gtd: gtd! };
    };
    const addStep = (t: number, d: tf.Tensor1D): void => {
      tf.tidy(() => {
        const parts = unflatten(tf.mul(d, t) as tf.Tensor1D, shapes);
        vars.forEach((v, i) => v.assign(tf.add(v, parts[i]!)));
      });
    };

    let moved = false;
    try {
      if (gMax0! <= o.toleranceGrad) {
        info.reason = 'tolerance-grad';
        this.commitState(w);
        return finish();
      }
      const lr = this.currentLearningRate();
      let lossNum = lossValue0!;
      let currentEvals = 1;
      let nIterStep = 0;
      let { d, t } = w;
      while (nIterStep < o.maxIter) {
        nIterStep++;
        info.iterations = nIterStep;
        w.nIter++;
        if (w.nIter === 1) {
          d = own(tf.neg(flatGrad));
          w.oldDirs = [];
          w.oldStps = [];
          w.ro = [];
          w.hDiag = 1;
        } else {
          const y = own(tf.sub(flatGrad, w.prevFlatGrad!) as tf.Tensor1D);
          const s = own(tf.mul(d!, t) as tf.Tensor1D);
          const [ys, yy] = readScalars(() => [tf.dot(y, s), tf.dot(y, y)]);
          if (ys! > 1e-10) {
            if (w.oldDirs.length === o.historySize) {
              w.oldDirs.shift();
              w.oldStps.shift();
              w.ro.shift();
            }
            w.oldDirs.push(y);
            w.oldStps.push(s);
            w.ro.push(f32(1 / ys!));
            w.hDiag = f32(ys! / yy!);
          }
          d = own(this.twoLoop(flatGrad, w));
        }
        w.prevFlatGrad = flatGrad;
        w.prevLoss = lossNum;

        if (w.nIter === 1) {
          // torch: min(1., 1. / |g|_1) * lr, a float32 tensor when 1 / |g|_1 < 1
          const [gSum] = readScalars(() => [tf.sum(tf.abs(flatGrad))]);
          const inv = f32(1 / gSum!);
          t = inv < 1 ? f32(inv * lr) : lr;
        } else {
          t = lr;
        }
        const [gtd, dNorm] = readScalars(() => [tf.dot(flatGrad, d!), tf.max(tf.abs(d!))]);
        if (gtd! > -o.toleranceChange) {
          info.reason = 'directional-derivative';
          break;
        }

        let lsEvals = 0;
        let optCond = false;
        if (o.lineSearchFn === 'strong_wolfe') {
          const x = new ParameterPoint(vars);
          const dir = d!;
          try {
            const res = strongWolfe<tf.Tensor1D>(
              (tt) => {
                x.moveTo(dir, tt);
                try {
                  return evaluate(dir);
                } finally {
                  x.restore();
                }
              },
              t,
              lossNum,
              flatGrad,
              gtd!,
              dNorm!,
              { toleranceChange: o.toleranceChange },
            );
            lossNum = res.f;
            flatGrad = res.g;
            t = res.t;
            lsEvals = res.evals;
          } finally {
            x.dispose();
          }
          addStep(t, dir);
          moved = true;
          optCond = gMaxOf.get(flatGrad)! <= o.toleranceGrad;
        } else {
          addStep(t, d!);
          moved = true;
          if (nIterStep !== o.maxIter) {
            const e = evaluate();
            lossNum = e.f;
            flatGrad = e.g;
            optCond = gMaxOf.get(flatGrad)! <= o.toleranceGrad;
            lsEvals = 1;
          }
        }
        currentEvals += lsEvals;
        w.funcEvals += lsEvals;
        info.newLoss = lossNum;

        if (nIterStep === o.maxIter) {
          info.reason = 'max-iter';
          break;
        }
        if (currentEvals >= this.maxEval) {
          info.reason = 'max-eval';
          break;
        }
        if (optCond) {
          info.reason = 'tolerance-grad';
          break;
        }
        // max |t d| in float32 is fround(fround(t) * max |d|): the products of two float32 values
        // are exact in float64 and rounding is monotone.
        if (f32(f32(t) * dNorm!) <= o.toleranceChange) {
          info.reason = 'tolerance-change';
          break;
        }
        if (Math.abs(lossNum - w.prevLoss) < o.toleranceChange) {
          info.reason = 'tolerance-change';
          break;
        }
      }
      w.d = d;
      w.t = t;
      info.iterations = nIterStep;
      info.evaluations = currentEvals;
      this.commitState(w);
      if (moved) this.incrementIterations();
      return finish();
    } catch (err) {
      if (!(err instanceof NonFiniteInStep)) throw err;
      start.restore();
      info.reason = 'non-finite';
      info.newLoss = info.loss;
      this.recordSkip(err.reason, names);
      return finish();
    } finally {
      start.dispose();
      for (const t of owned) if (!t.isDisposed) t.dispose();
    }
  }

  /** d = -H g by the two-loop recursion with the scaled identity H_diag as initial H. */
  private twoLoop(g: tf.Tensor1D, w: WorkingState): tf.Tensor1D {
    return tf.tidy(() => {
      const m = w.oldDirs.length;
      const al: tf.Scalar[] = new Array<tf.Scalar>(m);
      let q = tf.neg(g) as tf.Tensor1D;
      for (let i = m - 1; i >= 0; i--) {
        al[i] = tf.mul(tf.dot(w.oldStps[i]!, q), w.ro[i]!) as tf.Scalar;
        q = tf.sub(q, tf.mul(w.oldDirs[i]!, al[i]!)) as tf.Tensor1D;
      }
      let r = tf.mul(q, w.hDiag) as tf.Tensor1D;
      for (let i = 0; i < m; i++) {
        const be = tf.mul(tf.dot(w.oldDirs[i]!, r), w.ro[i]!);
        r = tf.add(r, tf.mul(w.oldStps[i]!, tf.sub(al[i]!, be))) as tf.Tensor1D;
      }
      return r;
    });
  }
}

tf.serialization.registerClass(LBFGS);

export const lbfgsEntry = {
  name: 'lbfgs',
  className: LBFGS.className,
  description: 'L-BFGS (torch.optim.LBFGS port), optional strong-Wolfe line search; full-batch problems',
  options: optionDocs(LBFGS_OPTIONS),
  create: (options: Record<string, unknown>) => new LBFGS(options as LBFGSOptions),
};
