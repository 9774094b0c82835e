/**
 * Shared machinery of the diagonal-curvature optimizers (AdaHessian, Sophia): stochastic
 * estimates of the Hessian diagonal taken inside `minimize` from the loss closure, on the
 * project's exact Hessian-vector products (src/autodiff hvpVars).
 *
 * Estimators (per variable, shaped like it):
 *   hutchinson  D = u * (H u),  u Rademacher (+-1)                   E[D] = diag(H)
 *               (Bekas, Kokiopoulou & Saad 2007; one HVP: a second backward pass)
 *   gnb         Gauss-Newton-Bartlett (Liu et al. 2023, Sophia, Alg. 2): targets y^ are sampled
 *               from the model's own output distribution, g^ = grad of the loss of the outputs
 *               against y^, and D = S * g^ * g^ with S the number of terms the loss averages
 *               (examples for softmax cross-entropy; elements for sigmoid cross-entropy and
 *               mean squared error). E[D] = diag(G), the Gauss-Newton diagonal, since
 *               E[g^ g^^T] = J^T (H_L / S) J for these matching losses (Bartlett's identity).
 *               One forward and backward pass, no HVP. Output distributions by loss kind
 *               (src/autodiff/losses.ts): softmax cross-entropy: y^ ~ Categorical(softmax(z))
 *               per row (inverse CDF of one uniform per example); sigmoid cross-entropy:
 *               y^ ~ Bernoulli(sigmoid(z)) per element (y^ = [u < sigmoid(z)]); mean squared
 *               error: y^ ~ N(z, 1/2) per element (the density whose negative log is (z - y)^2
 *               up to a constant), from two uniforms by Box-Muller (cos branch).
 *
 * Random numbers come from a `ProbeGenerator` made per step by `probes(iteration)`: by default
 * the project's sfc32 generator (src/rng.ts) seeded by (seed, iteration), so a restored
 * optimizer (getWeights / setWeights) draws the probes the original would have drawn. Tests
 * inject generators that replay a fixture's vectors. Draw order within a step: Rademacher
 * vectors variable by variable (row-major in tfjs layout); GNB uniforms example by example
 * (softmax), element by element (sigmoid), two per element (mse).
 *
 * The closure is called first with a gradient tape (its metrics are what tfjs-layers reports),
 * then once more for the estimate on estimation steps, with what it keeps released
 * (src/curvature/closure.ts). The GNB estimator needs the network outputs of the step's
 * examples: a bound harness problem (`bindProblem`; the harness calls `setCurvatureBatch`
 * before each step) or `setCurvatureOutputs({ outputs, lossKind })` before `minimize`.
 */
import * as tf from '@tensorflow/tfjs';
import { hvpVars } from '../autodiff/index.js';
import type { LossKind } from '../autodiff/losses.js';
import { meanSquaredError, sigmoidCrossEntropy, softmaxCrossEntropy } from '../autodiff/losses.js';
import { releaseKept, scalarClosure, valueAndGradients } from '../curvature/closure.js';
import { Rng } from '../rng.js';
import {
  CurvatureOptimizer,
  type CurvatureOptionSpecs,
  type EvaluationCounters,
  type GradientEntry,
  type NamedTensorLike,
} from './base.js';
import { invalidOption, type OptionSpec } from './options.js';

/** Random numbers for one step's estimate. */
export interface ProbeGenerator {
  /** n independent +-1 values. */
  rademacher(n: number): ArrayLike<number>;
  /** Uniform in [0, 1). */
  uniform(): number;
}

/** Makes the generator of the step at `iteration` (the update count before the step). */
export type ProbeSource = (iteration: number) => ProbeGenerator;

/** The default generator: sfc32 (src/rng.ts) on stream `iteration` of `seed`. */
export class StepProbes implements ProbeGenerator {
  private readonly rng: Rng;

  constructor(seed: number, iteration: number) {
    this.rng = new Rng(seed, iteration);
  }

  rademacher(n: number): Float32Array {
    const v = new Float32Array(n);
    for (let i = 0; i < n; i += 32) {
      const bits = this.rng.nextUint32();
      for (let j = 0; j < 32 && i + j < n; j++) v[i + j] = (bits >>> j) & 1 ? 1 : -1;
    }
    return v;
  }

  uniform(): number {
    return this.rng.uniform();
  }
}

/** The `probes` option: a ProbeSource (tests, custom randomness); never serialised. */
export function probesOption(): OptionSpec<ProbeSource | undefined> {
  return {
    default: undefined,
    description:
      'Function (iteration) => { rademacher(n), uniform() } giving the random numbers of a step (default: seeded sfc32)',
    serializable: false,
    parse(v, name) {
      if (v !== undefined && typeof v !== 'function') {
        throw invalidOption(name, v, 'must be a function (iteration) => ProbeGenerator');
      }
      return v as ProbeSource | undefined;
    },
  };
}

/** Outputs of the step's examples and what the loss of them is (for the GNB estimator). */
export interface CurvatureOutputs {
  outputs: () => tf.Tensor;
  lossKind: LossKind;
}

/** The harness problem surface used here (src/harness/problem.ts; not imported: no cycle). */
interface OutputsProblem {
  outputs?(batch: BatchLike): tf.Tensor;
  readonly lossKind?: LossKind;
}
interface BatchLike {
  x: tf.Tensor;
  y: tf.Tensor;
  size: number;
}

/** Hutchinson: u * (H u) per variable, u Rademacher from `gen`. New tensors. */
export function hutchinsonDiagonal(loss: () => tf.Scalar, vars: tf.Variable[], gen: ProbeGenerator): tf.Tensor[] {
  const us = vars.map((v) => {
    const r = gen.rademacher(v.size);
    if (r.length !== v.size) {
      throw new Error(`probe generator returned ${r.length} Rademacher values for '${v.name}' of size ${v.size}`);
    }
    return tf.tensor(Float32Array.from(r), v.shape);
  });
  try {
    return tf.tidy(() => {
      const hu = hvpVars(loss, vars, us);
      return hu.map((h, i) => tf.mul(h, us[i]!));
    });
  } finally {
    tf.dispose(us);
  }
}

/**
 * Targets sampled from the output distribution of `z` (see the header), and the number of terms
 * the loss averages. `z` is read to the CPU (one sync).
 */
export function sampleTargets(z: tf.Tensor, kind: LossKind, gen: ProbeGenerator): { y: tf.Tensor; terms: number } {
  if (kind === 'softmax-cross-entropy') {
    if (z.rank < 2) throw new Error(`GNB estimator: softmax outputs must be [batch, classes], got [${z.shape}]`);
    const k = z.shape[z.rank - 1]!;
    const rows = z.size / k;
    const p = tf.tidy(() => tf.softmax(z.reshape([rows, k]))).dataSync();
    const y = new Float32Array(rows * k);
    for (let r = 0; r < rows; r++) {
      const u = gen.uniform();
      let c = 0;
      let chosen = k - 1;
      for (let j = 0; j < k; j++) {
        c += p[r * k + j]!;
        if (u < c) {
          chosen = j;
          break;
        }
      }
      y[r * k + chosen] = 1;
    }
    return { y: tf.tensor(y, z.shape), terms: rows };
  }
  if (kind === 'sigmoid-cross-entropy') {
    const p = tf.tidy(() => tf.sigmoid(z)).dataSync();
    const y = new Float32Array(z.size);
    for (let i = 0; i < y.length; i++) y[i] = gen.uniform() < p[i]! ? 1 : 0;
    return { y: tf.tensor(y, z.shape), terms: z.size };
  }
  const zs = z.dataSync();
  const y = new Float32Array(z.size);
  for (let i = 0; i < y.length; i++) {
    const u1 = 1 - gen.uniform(); // (0, 1]
    const u2 = gen.uniform();
    y[i] = zs[i]! + Math.SQRT1_2 * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
  return { y: tf.tensor(y, z.shape), terms: z.size };
}

/** The project's loss of `kind` (mean reduction, src/autodiff/losses.ts). */
export function lossOfKind(kind: LossKind, targets: tf.Tensor, z: tf.Tensor): tf.Scalar {
  if (kind === 'softmax-cross-entropy') return softmaxCrossEntropy(targets, z);
  if (kind === 'sigmoid-cross-entropy') return sigmoidCrossEntropy(targets, z);
  return meanSquaredError(targets, z);
}

/** Gauss-Newton-Bartlett: S * g^ * g^ per variable (see the header). New tensors. */
export function gnbDiagonal(fns: CurvatureOutputs, vars: tf.Variable[], gen: ProbeGenerator): tf.Tensor[] {
  const { y, terms } = tf.tidy(() => {
    const z = fns.outputs();
    return sampleTargets(z, fns.lossKind, gen);
  });
  try {
    return tf.tidy(() => {
      const { grads } = tf.variableGrads(() => lossOfKind(fns.lossKind, y, fns.outputs()), vars);
      return vars.map((v) => tf.mul(tf.square(grads[v.name]!), terms));
    });
  } finally {
    y.dispose();
  }
}

export type DiagonalEstimator = 'hutchinson' | 'gnb';

/**
 * A closure-based optimizer that takes a gradient every step and a diagonal curvature estimate
 * on the steps `estimateAt` selects, then updates each variable with `updateVariable`, where
 * `this.estimateFor(name)` is the step's estimate (undefined on other steps).
 */
export abstract class DiagonalHessianOptimizer<S extends CurvatureOptionSpecs> extends CurvatureOptimizer<S> {
  /** Cumulative evaluations since construction (the harness reads these). */
  readonly counters: EvaluationCounters = { lossEvals: 0, gradEvals: 0, hvpEvals: 0 };
  /** The estimator of the last estimation step (undefined before the first). */
  lastEstimator: DiagonalEstimator | undefined;

  private readonly ownerName: string;
  private problem: OutputsProblem | undefined;
  private pendingBatch: BatchLike | undefined;
  private pendingOutputs: CurvatureOutputs | undefined;
  private stepEstimate: Map<string, tf.Tensor> | undefined;

  protected constructor(displayName: string, specs: S, given: object | undefined) {
    super(displayName, specs, given);
    this.ownerName = displayName;
  }

  /** Whether the step at `iteration` (update count before it) takes an estimate. */
  protected abstract estimateAt(iteration: number): boolean;

  /** Which estimator this step uses, given whether outputs are available. */
  protected abstract chooseEstimator(haveOutputs: boolean): DiagonalEstimator;

  /** The step's random numbers. */
  protected abstract probeGenerator(iteration: number): ProbeGenerator;

  /** Use a harness problem's `outputs` / `lossKind` for the GNB estimator. */
  bindProblem(problem: unknown): this {
    this.problem = problem as OutputsProblem;
    return this;
  }

  /** The batch the next `minimize` closure evaluates (after bindProblem). Valid for one step. */
  setCurvatureBatch(batch: BatchLike | undefined): void {
    this.pendingBatch = batch;
  }

  /** Outputs of the next step's examples and their loss kind (GNB). Valid for one step. */
  setCurvatureOutputs(fns: CurvatureOutputs | undefined): void {
    this.pendingOutputs = fns;
  }

  /** The estimate of the current step for a variable (inside updateVariable). */
  protected estimateFor(name: string): tf.Tensor | undefined {
    return this.stepEstimate?.get(name);
  }

  override applyGradients(_variableGradients: tf.NamedTensorMap | NamedTensorLike[]): void {
    throw new Error(
      `${this.ownerName} needs the loss closure (it takes Hessian-vector products or sampled-target gradients): ` +
        'call minimize(() => loss) or model.fit, not applyGradients.',
    );
  }

  private curvatureOutputs(): CurvatureOutputs | undefined {
    if (this.pendingOutputs !== undefined) return this.pendingOutputs;
    const p = this.problem;
    const batch = this.pendingBatch;
    if (p?.outputs === undefined || p.lossKind === undefined || batch === undefined) return undefined;
    const outputs = p.outputs.bind(p);
    return { outputs: () => outputs(batch), lossKind: p.lossKind };
  }

  override minimize(f: () => tf.Scalar, returnCost = false, varList?: tf.Variable[]): tf.Scalar | null {
    const loss = scalarClosure(this.ownerName, f);
    const fns = this.curvatureOutputs();
    this.pendingOutputs = undefined;
    this.pendingBatch = undefined;
    const { value, vars, grads } = valueAndGradients(loss, varList);
    this.counters.gradEvals++;
    const names = vars.map((v) => v.name);
    let estimate: tf.Tensor[] | undefined;
    try {
      if (this.options.skipNonFinite && !this.allFinite([value, ...grads])) {
        this.recordSkip(this.allFinite([value]) ? 'gradient' : 'loss', names);
        return this.finish(value, returnCost);
      }
      const iteration = this.iterations;
      if (this.estimateAt(iteration)) {
        const kind = this.chooseEstimator(fns !== undefined);
        const gen = this.probeGenerator(iteration);
        estimate = releaseKept(() =>
          kind === 'gnb' ? gnbDiagonal(fns!, vars, gen) : hutchinsonDiagonal(loss, vars, gen),
        );
        this.lastEstimator = kind;
        if (kind === 'gnb') this.counters.gradEvals++;
        else {
          this.counters.hvpEvals++;
          this.counters.lossEvals++;
        }
        if (this.options.skipNonFinite && !this.allFinite(estimate)) {
          this.recordSkip('hessian', names);
          return this.finish(value, returnCost);
        }
        this.stepEstimate = new Map(names.map((n, i) => [n, estimate![i]!]));
      }
      const entries: GradientEntry[] = vars.map((v, i) => ({ name: v.name, variable: v, grad: grads[i]! }));
      const ctx = { iteration, learningRate: this.currentLearningRate() };
      tf.tidy(() => this.applyUpdate(entries, ctx));
      this.incrementIterations();
      return this.finish(value, returnCost);
    } finally {
      this.stepEstimate = undefined;
      tf.dispose(grads);
      if (estimate !== undefined) tf.dispose(estimate);
    }
  }

  private finish(value: tf.Scalar, returnCost: boolean): tf.Scalar | null {
    if (returnCost) return value;
    value.dispose();
    return null;
  }
}
