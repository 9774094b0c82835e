/**
 * The Problem interface: what every optimizer and the harness may rely on.
 *
 * A problem owns its parameters (`tf.Variable[]`, created and initialised from the run seed),
 * its loss, its data (for data problems) and its test metrics. Optimizers see it through
 * `OptimizerContext.problem`; second-order optimizers read the optional structure below
 * (separate outputs and loss for Gauss-Newton products, a tfjs-layers model for K-FAC).
 *
 * Conventions
 * - `loss(batch)` is a scalar MEAN over the batch, twice differentiable with respect to
 *   `params` (it is called inside the optimizer's gradient / HVP tapes, so it must read the
 *   variables and must not call `dataSync`).
 * - Deterministic problems (quadratic, rosenbrock, ...) have no `data`; `loss()` ignores its
 *   argument. Data problems expose `data`, and the harness draws seeded mini-batches of indices
 *   and turns them into a `Batch` with `data.batch(indices)`.
 * - For network problems `loss(batch) === lossFromOutputs(outputs(batch), batch)`.
 */
import type * as tf from '@tensorflow/tfjs';
import type { LossKind } from '../autodiff/losses.js';

/** A mini-batch: inputs `x` and targets `y` (one-hot labels, or the inputs for autoencoders). */
export interface Batch {
  x: tf.Tensor;
  y: tf.Tensor;
  /** Number of examples in the batch. */
  size: number;
}

/** The training data of a data problem, addressed by example index. */
export interface ProblemData {
  /** Number of training examples. */
  numTrain: number;
  /** Number of test examples (0 when the problem has no test set). */
  numTest: number;
  /** Default mini-batch size (the harness may override it). */
  batchSize: number;
  /** Gather training examples by index into a Batch; caller disposes (inside tidy is fine). */
  batch(indices: Int32Array): Batch;
}

/** How `lossFromOutputs` maps outputs to a loss, for Gauss-Newton / Fisher curvature. */
export type { LossKind };

/** Metrics from `evaluate()`: always `trainLoss`; data problems add test metrics. */
export interface ProblemMetrics {
  /** Loss over the full training set (deterministic problems: the loss itself). */
  trainLoss: number;
  testLoss?: number;
  testAccuracy?: number;
  trainAccuracy?: number;
  [metric: string]: number | undefined;
}

export interface Problem {
  /** Registry name, e.g. 'quadratic'. */
  readonly name: string;
  /** One line: what this instance is (dimension, architecture, data). */
  readonly description: string;
  /** The options this instance was built with, after defaults (JSON-serialisable). */
  readonly options: Record<string, unknown>;
  /** The trainable variables, in a fixed order. */
  readonly params: tf.Variable[];
  /** Total number of scalar parameters. */
  readonly numParams: number;
  /** Mean loss over `batch` (data problems; omitted = full training set) or the objective. */
  loss(batch?: Batch): tf.Scalar;
  /** Present for data problems. */
  readonly data?: ProblemData;
  /** Full-dataset metrics at the current parameters (synchronous, leak-free). */
  evaluate(): ProblemMetrics;
  /** Known optimal training-loss value, when known (e.g. 0 for Rosenbrock). */
  readonly optimum?: number;
  /** A default target training loss for "steps / seconds to target". */
  readonly target?: number;

  // --- Network problems (logreg-iris, softmax-mnist, mlp-mnist, autoencoder-mnist) ---
  /** Network outputs (logits or reconstructions before the loss) for a batch. */
  outputs?(batch: Batch): tf.Tensor;
  /** The loss as a function of the outputs; `loss(b) = lossFromOutputs(outputs(b), b)`. */
  lossFromOutputs?(outputs: tf.Tensor, batch: Batch): tf.Scalar;
  /** What `lossFromOutputs` is, so curvature code can use its closed-form Hessian. */
  readonly lossKind?: LossKind;
  /** tfjs-layers model built from Dense layers whose weights ARE `params` (same variables). */
  readonly model?: tf.LayersModel;

  /** Release variables, data tensors and the model. */
  dispose(): void;
}

/** A network problem: all the optional structure is present. */
export interface NetworkProblem extends Problem {
  readonly data: ProblemData;
  outputs(batch: Batch): tf.Tensor;
  lossFromOutputs(outputs: tf.Tensor, batch: Batch): tf.Scalar;
  readonly lossKind: LossKind;
  readonly model: tf.LayersModel;
}

export function isNetworkProblem(p: Problem): p is NetworkProblem {
  return (
    p.data !== undefined &&
    typeof p.outputs === 'function' &&
    typeof p.lossFromOutputs === 'function' &&
    p.lossKind !== undefined &&
    p.model !== undefined
  );
}

/** Options every problem factory accepts besides its own. */
export interface ProblemBaseOptions {
  /** Seed of the parameter initialisation (the harness passes the run seed). */
  seed?: number;
}

/** A registry entry: a name, documented options with defaults, and a factory. */
export interface ProblemEntry {
  name: string;
  description: string;
  /**
   * Options with defaults, for `curvature list` and docs; `type` and `fromText` (the value read
   * from `--problem-option name=value` by the option's type) when the schema declares them.
   */
  options: { name: string; default: unknown; description: string; type?: string; fromText?(raw: string): unknown }[];
  create(options?: Record<string, unknown>): Problem;
}
