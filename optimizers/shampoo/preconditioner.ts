/**
 * The interface every Shampoo backend implements for one parameter layout (after Distributed
 * Shampoo's PreconditionerList: update_preconditioners / compute roots / precondition). The
 * optimizer drives it the same way on every backend (optimizers/shampoo.ts):
 *
 *   statistics on schedule (diagonal ones every step) -> roots on schedule (from a snapshot, by
 *   the pure computeRoots of ./roots.ts) -> direction (first moment, grafting preconditioner,
 *   Shampoo preconditioner, per-block grafting) -> weight decay, momentum, descent.
 *
 * State lives in the optimizer's slots (src/optim/base.ts SlotState: 'L<b>_<i>', 'W<b>_<i>',
 * 'diag', 'graft', 'expAvg'); a backend may keep host copies between steps but writes them to
 * the slots whenever `flush` is called (getWeights) and forgets them on `reset` (setWeights).
 */
import type * as tf from '@tensorflow/tfjs';
import type { MatrixService } from '../../src/async/index.js';
import type { SlotState } from '../../src/optim/base.js';
import type { StepPlan } from './rules.js';
import type { StatisticSnapshot } from './roots.js';

export interface ShampooPreconditioner {
  /** Diagonal (vector) preconditioners: statistics every step and no roots to refresh. */
  readonly diagonal: boolean;
  /** Fold the gradient into the statistics (S_i <- beta S_i + alpha G_(i) G_(i)^T, or the diagonal). */
  updateStatistics(state: SlotState, g: tf.Tensor, plan: StepPlan): void;
  /** Copies of the statistics to root, with their block and dimension (empty when diagonal). */
  statistics(state: SlotState): StatisticSnapshot[];
  /** Install a new inverse-root factor W (n x n) for block b, dimension i. */
  setRoot(state: SlotState, block: number, dim: number, factor: Float32Array, n: number): void;
  /**
   * The step's direction (before weight decay and momentum): update the first moment and the
   * grafting accumulator, then the grafted first-order direction (before the start step) or
   * the Shampoo direction, rescaled per block to the grafted norm.
   */
  direction(state: SlotState, g: tf.Tensor, plan: StepPlan, shape: number[]): tf.Tensor;
}

/** Which implementation runs the per-step work; chosen once per optimizer (see resolveBackend). */
export type ShampooBackend = 'tfjs' | 'host';

/** Internal / test hook, the constructor's second argument. */
export interface ShampooInternals {
  /**
   * 'auto' (default): the host kernels on the wasm and cpu backends (tensors in host memory),
   * tfjs ops elsewhere; 'tfjs': tfjs ops everywhere (tests compare the two).
   */
  backend?: 'auto' | 'tfjs';
  /** rootStaleness > 0: the service computing the eigendecompositions (default: one shared worker). */
  matrixService?: MatrixService;
  /** rootStaleness > 0: install each result exactly rootStaleness steps after its snapshot (reproducible). */
  deterministicRoots?: boolean;
  /**
   * Host backend: apply the roots as float32 P = W^T W, two products per block, where that is
   * safe (default true; see productFormSafe in optimizers/shampoo.ts); false: always the factors,
   * four products per block (tests and benchmarks compare the two).
   */
  rootProducts?: boolean;
  /** When given, milliseconds spent per part are added to it (benchmarks: scripts/bench/shampoo.ts). */
  profile?: ShampooProfile;
}

export interface ShampooProfile {
  /** Statistics updates (Gram products, EMA). */
  statistics: number;
  /** Root refreshes (snapshot, float64 eigendecompositions, install). */
  roots: number;
  /** Directions (first moment, grafting, preconditioning products, per-block grafting). */
  direction: number;
  /** Parameter updates timed. */
  updates: number;
}
