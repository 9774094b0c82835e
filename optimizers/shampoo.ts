/**
 * Shampoo (Gupta, Koren & Singer 2018) with the features of Distributed Shampoo
 * (Shi et al. 2023, facebookresearch/optimizers; Anil et al. 2020, scalable_shampoo):
 * Kronecker-factored AdaGrad/EMA statistics per tensor dimension, inverse p-th roots in
 * float64, blocking, merging of small dimensions, grafting, momentum and weight decay.
 *
 *   for each parameter p with gradient g, at its t-th update (t = 1, 2, ...):
 *     if weightDecay and not decoupledWeightDecay:  g = g + weightDecay * p          (L2)
 *     reshape g to the merged shape (mergeDims), cut it into blocks of <= maxPreconditionerDim
 *     per block G of order k, per dimension i (G_(i) = mode-i unfolding), at steps
 *     t = 1, 1 + s, 1 + 2s, ... (s = statisticsComputeSteps, default 1 = every step):
 *       S_i = beta2 < 1 ? beta2 S_i + (1 - beta2) G_(i) G_(i)^T : S_i + G_(i) G_(i)^T
 *     parameters with one dimension > 1 (biases) keep the diagonal v = EMA/sum of g^2 instead
 *     grafting accumulator a updated with g (src/optim/grafting.ts)
 *     if t == start or (t > start and t % preconditionFrequency == 0):
 *       P_i = (S_i / c2 + eps I)^{-1/r}    c2 = 1 - beta2^u (biasCorrection, beta2 < 1) else 1,
 *                                          u = statistics updates so far (= t when s = 1)
 *                                          r = rootExponent or 2k; eps = epsilon * lambda_max(S_i / c2)
 *                                          ('relative', default) or epsilon ('absolute')
 *       kept as its factor W_i = f(Lambda)^(1/2) V^T, P_i = W_i^T W_i (float64 eigendecomposition,
 *        f(lambda) = (max(lambda, 0) + eps)^(-1/r); or coupled Newton for (S_i / c2 + eps I)^{-1/(2r)});
 *        an all-zero S_i keeps the previous W_i; a failed or non-finite root keeps the previous
 *        W_i, or the identity, and is counted in `failedInverseRoots`
 *     m = beta1 m + (1 - beta1) g;   f = beta1 > 0 ? m / (1 - beta1^t) : g     (bias-corrected)
 *     if t < start:  d = graft(f)                       (first-order steps; 'none': d = f)
 *     else:          d_b = P_1 x_1 ... x_k P_k applied to the block f_b (1-D: f / (v + eps)^{1/r},
 *                    eps relative to max(v) or absolute), computed in factored form
 *                    X = W_1 x_1 ... x_k W_k f_b, d_b = W_1^T x_1 ... x_k W_k^T X, so that
 *                    <d_b, f_b> = ||X||^2 >= 0: a descent direction by construction (up to
 *                    float32 rounding of ~u sqrt(n) prod_i cond(W_i), far below 1 at a relative eps)
 *                    grafting: d_b = d_b * ||graft(f)_b|| / (||d_b|| + 1e-16)   per block
 *     if decoupledWeightDecay:  d = d + weightDecay * p
 *     if momentum:  buf = momentum * buf + d (buf_1 = d);  d = nesterov ? d + momentum * buf : buf
 *     p = p - lr_t * d
 *
 * Defaults and where they differ from Distributed Shampoo (DS, distributed_shampoo.py):
 *   learningRate 1e-2, beta1 0.9, beta2 1 (AdaGrad sum), rootExponent 0 (= 2k), momentum 0,
 *   nesterov false, weightDecay 0, decoupledWeightDecay true, biasCorrection true, mergeDims
 *   true, startPreconditioningStep -1 (= preconditionFrequency), inverseRootMethod 'eigen'
 *                                                                    -- all as DS.
 *   epsilon 1e-5 'relative' (DS: 1e-12 absolute; scalable_shampoo: matrix_epsilon 1e-6 times
 *     lambda_max, relative_matrix_epsilon=True). The rule: the statistics are float32, so every
 *     eigenvalue carries round-off of order u * lambda_max (u = 2^-24 ~ 6e-8; measured
 *     3e-8 to 4e-8 lambda_max in the null space of 200- and 256-dim float32 sums), and the root's
 *     weight (lambda + eps)^(-1/r) on a direction is only defined to (noise / eps) / r. eps has to
 *     sit far above that noise: eps = 1e-5 lambda_max (~170 u) bounds it by ~3e-3 / r per
 *     direction (measured <= 4e-4 relative on whole updates against a float64 reference,
 *     test/shampoo-fixtures.test.ts), while keeping a dynamic range of 1e5 in the statistic
 *     (root factors up to 316x for r = 2, 18x for r = 4). An absolute 1e-12 is below the float32
 *     resolution of any statistic with lambda_max > ~1e-5 and gives roots whose large part is
 *     float32 noise; 1e-6 relative (scalable_shampoo, whose roots are float32 too) leaves
 *     ~3e-3 errors; 1e-4 is accurate to ~3e-5 but damps more (Kronecker least squares, 200
 *     steps: 10500x vs 28600x loss reduction, Adam 1170x; docs/shampoo.md).
 *   preconditionFrequency 10 (DS 1): roots are computed in float64 JavaScript on the CPU,
 *     ~100x slower than DS's GPU eigh, so they are amortised by default.
 *   maxPreconditionerDim 256 (DS 1024): a 1024 eigendecomposition takes seconds here.
 *   grafting 'adam' (DS none; 'adagrad' before issue 13): without grafting the step size has no
 *     first-order scale to borrow and a learning rate does not transfer from other optimizers;
 *     DS's own examples all graft, its README from Adam (0.999 / 1e-8). Adam rather than AdaGrad
 *     because AdaGrad's summed second moment freezes the step norm at the scale of the early
 *     gradients: on the Kronecker least-squares problem of issue 13 (docs/shampoo.md) Shampoo
 *     with AdaGrad grafting beat tuned Adam at 200 steps (3430x vs 1170x) but fell behind at 500
 *     (4130x vs 6680x); with Adam grafting 28600x and 44600x. graftingEpsilon/graftingBeta2
 *     default per method as DS's grafting configs (AdaGrad 1e-10; RMSProp 0.99/1e-8; Adam
 *     0.999/1e-8).
 *   Vector parameters (one dimension > 1) are preconditioned diagonally, with the current
 *     statistics at every step (DS gives vectors a full L); a matrix merged into one
 *     dimension keeps a full preconditioner (root 2), as in DS.
 *   statisticsComputeSteps 1 (DS has none; scalable_shampoo's statistics_compute_steps): > 1
 *     subsamples the gradients the statistics see, to cut the per-step Gram products.
 *   There is no beta3 and no dampening; Adam grafting is always bias-corrected.
 *
 * Cost on the wasm and cpu backends: the per-step work of every 2-D (merged) parameter -- the
 * blocks' Gram products with the statistics EMA fused in (upper triangles only), the grafting
 * accumulator and first moment, W_L^T (W_L f_b W_R^T) W_R and per-block grafting -- runs in a float32
 * WebAssembly SIMD module (src/optim/shampoo-kernels.ts, src/optim/wasm/shampoo.c) on one host
 * copy of the gradient, at the SIMD peak of the machine (~20 GFLOP/s single-threaded), instead
 * of ~50 tfjs kernels per parameter. Those slots stay on the host between steps and are written
 * to their state variables by getWeights / setWeights (so saving and restoring is unchanged).
 * Vector parameters' whole update runs in one JavaScript loop on the same host slots.
 * Inverse roots: float64 eigendecomposition (src/linalg eighRows), stored as the float32 factor
 * W = f(Lambda)^(1/2) V^T and applied as W^T (W f) on both paths: a float32 product P = W^T W
 * rounds the eps-dominated part of the root (up to eps^(-1/r)) into noise that swamps P f and
 * can make P indefinite, so that the step goes uphill (issue 13). The kernel path and the
 * tfjs-ops path (used on other backends and forced by `shampooTesting.deviceBlocking`) do the
 * same arithmetic up to float32 summation order; tested against each other and, at the
 * defaults, against a float64 numpy reference (scripts/reference/shampoo_reference.py).
 *
 * State slots: 'L<b>_<i>' and 'W<b>_<i>' (block b's statistic and the factor of its current
 * inverse root along dimension i, P = W^T W; W is absent, i.e. the identity, until its first
 * successful root; before issue 13 the slot was 'P<b>_<i>' holding P, which a restored old
 * checkpoint leaves unused until the next root refresh), 'diag'
 * (vector statistics), 'graft' (grafting accumulator), 'expAvg' (beta1), 'momentumBuffer'. All are carried by getWeights/setWeights, so a restored optimizer
 * continues identically; `failedInverseRoots` is saved too.
 */
import * as tf from '@tensorflow/tfjs';
import {
  CurvatureOptimizer,
  BASE_OPTION_SPECS,
  type NamedTensorLike,
  type SlotState,
  type StepContext,
} from '../src/optim/base.js';
import { option, optionDocs, invalidOption, type OptionsInput } from '../src/optim/options.js';
import { addL2WeightDecay, descend, ema, momentumDirection } from '../src/optim/transforms.js';
import {
  GRAFTING_TYPES,
  defaultGraftingBeta2,
  defaultGraftingEpsilon,
  graftBlockNorms,
  graftingDirection,
  graftingHasState,
  updateGraftingState,
  type GraftingConfig,
  type GraftingType,
} from '../src/optim/grafting.js';
import { eighRows, inverseRoot, mergeSmallDims, splitDim, type Mat64 } from '../src/linalg/index.js';
import { eighWasmFast, wasm as linalgWasm } from '../src/linalg/kernels.js';
import {
  allocBuffer,
  bufferView,
  hostTensor,
  hostValues,
  releaseBuffer,
  shampooKernels,
  type BlockGrid2d,
  type HostBuffer,
  type RootPair,
  type ShampooKernels,
} from '../src/optim/shampoo-kernels.js';

export type ShampooRootMethod = 'eigen' | 'coupled-newton';

export const SHAMPOO_OPTIONS = {
  ...BASE_OPTION_SPECS,
  learningRate: option.learningRate(1e-2, 'Step size: a number >= 0 or a schedule of the step'),
  beta1: option.decay(0.9, 'EMA of the gradient that is preconditioned (DS betas[0]); 0 = raw gradient'),
  beta2: option.number(1, 'Statistics decay: 1 = AdaGrad sum, < 1 = exponential average', {
    min: 0,
    max: 1,
    minExclusive: true,
  }),
  epsilon: option.number(
    1e-5,
    'Added to the statistics before the inverse root: epsilon * lambda_max (relative, default) or epsilon (absolute)',
    { min: 0 },
  ),
  epsilonMode: option.choice<'absolute' | 'relative'>(
    'relative',
    ['absolute', 'relative'],
    "'relative' to the statistic's largest eigenvalue (default), or 'absolute'",
  ),
  rootExponent: option.number(0, 'Inverse root r in S^{-1/r}; 0 = 2 * order of the (merged) block', {
    min: 0,
    integer: true,
  }),
  inverseRootMethod: option.choice<ShampooRootMethod>(
    'eigen',
    ['eigen', 'coupled-newton'],
    'Float64 inverse roots by eigendecomposition or coupled Newton',
  ),
  preconditionFrequency: option.number(10, 'Recompute inverse roots every this many steps', { min: 1, integer: true }),
  statisticsComputeSteps: option.number(
    1,
    'Update the statistics every this many steps (scalable_shampoo statistics_compute_steps); 1 = every step',
    {
      min: 1,
      integer: true,
    },
  ),
  startPreconditioningStep: option.number(
    -1,
    'First Shampoo step (grafted first-order steps before it); -1 = preconditionFrequency',
    {
      min: -1,
      integer: true,
    },
  ),
  maxPreconditionerDim: option.number(256, 'Largest preconditioner side; larger dimensions are blocked', {
    min: 1,
    integer: true,
  }),
  mergeDims: option.boolean(true, 'Merge adjacent small dimensions while their product <= maxPreconditionerDim'),
  grafting: option.choice<GraftingType>('adam', GRAFTING_TYPES, 'Per-block step norm from this first-order method'),
  graftingEpsilon: option.optionalNumber('Grafting epsilon (default 1e-10 adagrad, else 1e-8)', { min: 0 }),
  graftingBeta2: option.optionalNumber('Grafting second-moment decay (default 0.99 rmsprop, 0.999 adam)', {
    min: 0,
    max: 1,
    maxExclusive: true,
  }),
  momentum: option.decay(0, 'Momentum on the preconditioned direction (DS momentum)'),
  nesterov: option.boolean(false, 'Nesterov momentum (needs momentum > 0)'),
  weightDecay: option.number(0, 'Weight decay coefficient', { min: 0 }),
  decoupledWeightDecay: option.boolean(
    true,
    'Add weightDecay * p to the direction (AdamW) instead of to the gradient (L2)',
  ),
  biasCorrection: option.boolean(true, 'Bias-correct the beta1 EMA and the beta2 < 1 statistics'),
};

export type ShampooOptions = OptionsInput<typeof SHAMPOO_OPTIONS>;

/** How a parameter is cut into blocks (Distributed Shampoo's merge and block). */
interface Layout {
  /** Shape after merging (order k). */
  merged: number[];
  /** Block sizes along each merged dimension (each <= maxPreconditionerDim). */
  splits: number[][];
  /** Every block's size, row-major over the block grid. */
  blocks: number[][];
  /** Start offset of every block along each merged dimension (parallel to `splits`). */
  offsets: number[][];
  diagonal: boolean;
  empty: boolean;
}

function makeLayout(shape: readonly number[], maxDim: number, merge: boolean): Layout {
  const size = shape.reduce((a, b) => a * b, 1);
  const squeezed = shape.filter((d) => d !== 1);
  const merged = size === 0 ? [0] : merge ? mergeSmallDims(shape, maxDim) : squeezed.length ? squeezed : [1];
  const splits = merged.map((d) => splitDim(d, maxDim));
  let blocks: number[][] = [[]];
  for (const sizes of splits) blocks = blocks.flatMap((b) => sizes.map((s) => [...b, s]));
  const offsets = splits.map((sizes) => sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0)));
  return {
    merged,
    splits,
    blocks,
    offsets,
    // Biases and other vectors (one dimension > 1) are diagonal; a small matrix merged into
    // one dimension (e.g. [6, 5] -> [30]) keeps a full preconditioner, as in DS.
    diagonal: squeezed.length <= 1,
    empty: size === 0,
  };
}

/**
 * The blocks of `x` (reshaped to the merged shape), row-major. Separate 2-D matMuls per block
 * are used rather than one batched matMul: on wasm the batched kernel is ~6x slower.
 */
function splitBlocks(x: tf.Tensor, L: Layout): tf.Tensor[] {
  let parts = [tf.reshape(x, L.merged)];
  L.splits.forEach((sizes, axis) => {
    if (sizes.length > 1) parts = parts.flatMap((p) => tf.split(p, sizes, axis));
  });
  return parts;
}

function joinBlocks(blocks: tf.Tensor[], L: Layout, shape: readonly number[]): tf.Tensor {
  let parts = blocks;
  for (let axis = L.splits.length - 1; axis >= 0; axis--) {
    const n = L.splits[axis]!.length;
    if (n === 1) continue;
    const next: tf.Tensor[] = [];
    for (let i = 0; i < parts.length; i += n) next.push(tf.concat(parts.slice(i, i + n), axis));
    parts = next;
  }
  return tf.reshape(parts[0]!, shape as number[]);
}

/** Test hook: force the tfjs-ops path (tf.split blocks, tf.matMul products) on every backend. */
export const shampooTesting = { deviceBlocking: false };

/**
 * Whether a 2-D parameter's per-step work runs in the float32 WebAssembly kernels
 * (src/optim/shampoo-kernels.ts) on host copies: on the wasm and cpu backends tensors live in
 * JavaScript/WebAssembly memory, so reading a gradient is one copy, while the same work as
 * tfjs ops is ~50 kernels per parameter with tens of microseconds of overhead each (and wasm's
 * slice/split copy the whole source per piece). Other backends (webgl, tensorflow) keep the
 * data on the device and use tfjs ops.
 */
function hostKernels(L: Layout): ShampooKernels | null {
  if (shampooTesting.deviceBlocking || L.merged.length !== 2 || L.diagonal) return null;
  return hostMemoryKernels();
}

/** The kernels when the backend keeps tensors in host memory (wasm, cpu), else null. */
function hostMemoryKernels(): ShampooKernels | null {
  const b = tf.getBackend();
  return b === 'wasm' || b === 'cpu' ? shampooKernels() : null;
}

/**
 * Vector parameters (biases) on the wasm and cpu backends: their whole update (diagonal
 * statistic, grafting accumulator, first moment, direction, grafting) in a JavaScript loop on
 * the host slots; as tfjs ops it is ~30 kernels on a few hundred numbers, all call overhead.
 */
function hostDiagonal(): boolean {
  return !shampooTesting.deviceBlocking && hostMemoryKernels() !== null;
}

function grid2d(L: Layout): BlockGrid2d {
  return {
    m: L.merged[0]!,
    n: L.merged[1]!,
    rows: L.splits[0]!,
    rowOffsets: L.offsets[0]!,
    cols: L.splits[1]!,
    colOffsets: L.offsets[1]!,
  };
}

/** The Gram matrices G_(i) G_(i)^T of one block along each of its dimensions. */
function modeGrams(x: tf.Tensor): tf.Tensor[] {
  const k = x.rank;
  if (k === 2) {
    // Explicit transpose: a transposed matMul is 10x slower on wasm.
    const xt = tf.transpose(x);
    return [tf.matMul(x as tf.Tensor2D, xt as tf.Tensor2D), tf.matMul(xt as tf.Tensor2D, x as tf.Tensor2D)];
  }
  const out: tf.Tensor[] = [];
  for (let i = 0; i < k; i++) {
    const perm = [i, ...x.shape.map((_, j) => j).filter((j) => j !== i)];
    const xi = tf.reshape(i === 0 ? x : tf.transpose(x, perm), [x.shape[i]!, -1]) as tf.Tensor2D;
    out.push(tf.matMul(xi, tf.transpose(xi)));
  }
  return out;
}

/**
 * Apply P_i = W_i^T W_i along every dimension i of one block in factored form (absent W_i =
 * identity): first W_i along every dimension, then W_i^T along every dimension. With
 * X = (W_1 x ... x W_k) F, the direction is D = (W_1^T x ... x W_k^T) X, so
 * <D, F> = ||X||^2 >= 0 for whatever float32 factors are stored: a descent direction by
 * construction (a rounded product P = W^T W is not even positive semidefinite when the root is
 * ill-conditioned).
 */
function applyRoots(x: tf.Tensor, roots: (tf.Tensor | undefined)[]): tf.Tensor {
  const k = x.rank;
  const shape = x.shape;
  if (k === 2) {
    // Explicit transposes: a transposed matMul is 10x slower on wasm.
    const [wl, wr] = roots as [tf.Tensor2D | undefined, tf.Tensor2D | undefined];
    let y = x as tf.Tensor2D;
    if (wl) y = tf.matMul(wl, y);
    if (wr) y = tf.matMul(y, tf.transpose(wr));
    if (wl) y = tf.matMul(tf.transpose(wl), y);
    if (wr) y = tf.matMul(y, wr);
    return y;
  }
  // Contract dimension i, then rotate it to the back; after k rotations the order is restored.
  const along = (z: tf.Tensor, transposed: boolean): tf.Tensor => {
    let y = z;
    for (let i = 0; i < k; i++) {
      let yi = tf.reshape(y, [shape[i]!, -1]) as tf.Tensor2D;
      const w = roots[i] as tf.Tensor2D | undefined;
      if (w) yi = tf.matMul(transposed ? tf.transpose(w) : w, yi);
      y = tf.transpose(yi);
    }
    return tf.reshape(y, shape);
  };
  return along(along(x, false), true);
}

/** Rescale each block to the norm of the grafted direction's block (DS per-block grafting). */
function graftEach(blocks: tf.Tensor[], graft: tf.Tensor[]): tf.Tensor[] {
  return blocks.map((y, b) =>
    tf.reshape(graftBlockNorms(tf.reshape(y, [1, -1]), tf.reshape(graft[b]!, [1, -1])), y.shape),
  );
}

type HostSlots = Map<SlotState, Map<string, { buf: HostBuffer }>>;

function releaseHostSlots(slots: HostSlots): void {
  for (const m of slots.values()) for (const rec of m.values()) releaseBuffer(rec.buf);
  slots.clear();
}

/** Releases the kernel buffers of an optimizer that was never disposed. */
const hostSlotRegistry = new FinalizationRegistry<HostSlots>(releaseHostSlots);

export class Shampoo extends CurvatureOptimizer<typeof SHAMPOO_OPTIONS> {
  static get className(): string {
    return 'CurvatureShampoo';
  }

  private readonly layouts = new Map<string, Layout>();
  private readonly graftingConfig: GraftingConfig;
  /**
   * Slots the WebAssembly kernels use in place, in persistent buffers of the module's memory:
   * statistics, grafting accumulator and first moment (updated every step) and the roots
   * (copies of the P slots). Writing the per-step ones back to tfjs every step costs more than
   * updating them, so a `dirty` slot is written to its state variable only by getWeights /
   * setWeights and whenever the tfjs-ops path needs it (flushHostSlots). Slots are created at
   * their first update, so the slot order in getWeights is unchanged. Buffers are released by
   * setWeights, dispose, or when the optimizer is garbage-collected.
   */
  private readonly hostSlots = new Map<SlotState, Map<string, { buf: HostBuffer; shape: number[]; dirty: boolean }>>();

  constructor(options: ShampooOptions = {}) {
    super('Shampoo', SHAMPOO_OPTIONS, options);
    const o = this.options;
    if (o.nesterov && o.momentum <= 0) {
      throw invalidOption('nesterov', true, `Nesterov momentum requires momentum > 0; got momentum ${o.momentum}`);
    }
    if (o.startPreconditioningStep === 0) {
      throw invalidOption('startPreconditioningStep', 0, 'must be >= 1, or -1 for preconditionFrequency');
    }
    this.graftingConfig = {
      type: o.grafting,
      beta2: o.graftingBeta2 ?? defaultGraftingBeta2(o.grafting),
      epsilon: o.graftingEpsilon ?? defaultGraftingEpsilon(o.grafting),
    };
    this.numericState.failedInverseRoots = 0;
    this.numericState.inverseRoots = 0;
    hostSlotRegistry.register(this, this.hostSlots);
  }

  /** Inverse roots that failed or were non-finite (the previous root was kept). Saved with the state. */
  get failedInverseRoots(): number {
    return this.numericState.failedInverseRoots ?? 0;
  }

  /** Inverse roots computed so far (successful or not). */
  get inverseRootCount(): number {
    return this.numericState.inverseRoots ?? 0;
  }

  override async getWeights(): Promise<NamedTensorLike[]> {
    this.flushHostSlots();
    return super.getWeights();
  }

  override async setWeights(weights: NamedTensorLike[]): Promise<void> {
    this.flushHostSlots();
    await super.setWeights(weights);
    releaseHostSlots(this.hostSlots); // the state was replaced
  }

  override dispose(): void {
    releaseHostSlots(this.hostSlots);
    super.dispose();
  }

  /** Write the dirty host slots of one state entry, or of all, to their variables; `drop`: release them. */
  private flushHostSlots(only?: SlotState, drop = false): void {
    for (const [state, slots] of this.hostSlots) {
      if (only !== undefined && state !== only) continue;
      tf.tidy(() => {
        for (const [slot, rec] of slots) {
          if (rec.dirty) state.set(slot, hostTensor(bufferView(rec.buf).slice(), rec.shape));
          rec.dirty = false;
          if (drop) releaseBuffer(rec.buf);
        }
      });
      if (drop) this.hostSlots.delete(state);
    }
  }

  /** A slot's persistent buffer (updated in place by the kernels), or undefined before its first value. */
  private hostSlot(state: SlotState, slot: string): HostBuffer | undefined {
    let slots = this.hostSlots.get(state);
    const rec = slots?.get(slot);
    if (rec !== undefined) return rec.buf;
    const t = state.get(slot);
    if (t === undefined) return undefined;
    const buf = allocBuffer(t.size);
    bufferView(buf).set(hostValues(t));
    if (slots === undefined) this.hostSlots.set(state, (slots = new Map()));
    slots.set(slot, { buf, shape: t.shape, dirty: false });
    return buf;
  }

  /**
   * `buf` (from hostSlot, updated in place, or new) holds the slot's new value. A new slot is
   * created at once; `sync`: the variable is written now (else it is marked dirty).
   */
  private commitHostSlot(state: SlotState, slot: string, buf: HostBuffer, shape: number[], sync = false): void {
    let slots = this.hostSlots.get(state);
    if (slots === undefined) this.hostSlots.set(state, (slots = new Map()));
    const prev = slots.get(slot);
    if (prev !== undefined && prev.buf !== buf) releaseBuffer(prev.buf);
    const write = sync || !state.has(slot);
    if (write) state.set(slot, hostTensor(bufferView(buf).slice(), shape));
    slots.set(slot, { buf, shape, dirty: !write });
  }

  /** The step at which Shampoo directions start (before it: grafted first-order steps). */
  get startStep(): number {
    const s = this.options.startPreconditioningStep;
    return s === -1 ? this.options.preconditionFrequency : s;
  }

  private layoutFor(shape: readonly number[]): Layout {
    const key = shape.join('x');
    let L = this.layouts.get(key);
    if (L === undefined) {
      L = makeLayout(shape, this.options.maxPreconditionerDim, this.options.mergeDims);
      this.layouts.set(key, L);
    }
    return L;
  }

  private rootExponentFor(order: number): number {
    return this.options.rootExponent > 0 ? this.options.rootExponent : 2 * order;
  }

  /** beta2 S + (1 - beta2) x, or S + x for beta2 = 1; `scaled`: x already carries (1 - beta2). */
  private accumulate(prev: tf.Tensor | undefined, x: tf.Tensor, scaled = false): tf.Tensor {
    const b2 = this.options.beta2;
    if (b2 === 1) return prev === undefined ? x : tf.add(prev, x);
    const xs = scaled ? x : tf.mul(x, 1 - b2);
    return prev === undefined ? xs : tf.add(tf.mul(prev, b2), xs);
  }

  /** Statistics updates made up to and including step t (steps 1, 1 + k, 1 + 2k, ...). */
  private statisticsUpdates(t: number): number {
    return Math.floor((t - 1) / this.options.statisticsComputeSteps) + 1;
  }

  /** Bias correction of the matrix statistics at step t (their EMA has statisticsUpdates(t) terms). */
  private statScale(t: number): number {
    const b2 = this.options.beta2;
    return this.options.biasCorrection && b2 < 1 ? 1 / (1 - b2 ** this.statisticsUpdates(t)) : 1;
  }

  /** Bias correction of the diagonal (vector) statistics, updated every step. */
  private diagScale(t: number): number {
    const b2 = this.options.beta2;
    return this.options.biasCorrection && b2 < 1 ? 1 / (1 - b2 ** t) : 1;
  }

  protected override updateVariable(
    param: tf.Variable,
    grad: tf.Tensor,
    state: SlotState,
    ctx: StepContext,
  ): tf.Tensor {
    const o = this.options;
    const L = this.layoutFor(param.shape);
    if (L.empty) return tf.clone(param);
    const t = state.step + 1;
    const start = this.startStep;
    const g = o.decoupledWeightDecay ? grad : addL2WeightDecay(grad, param, o.weightDecay);
    const K = hostKernels(L);
    if (K !== null)
      return descend(
        param,
        this.finishDirection(this.hostDirection(param, g, state, L, t, K), param, state),
        ctx.learningRate,
      );
    if (L.diagonal && hostDiagonal()) {
      return descend(
        param,
        this.finishDirection(this.hostDiagonalDirection(param, g, state, t), param, state),
        ctx.learningRate,
      );
    }
    // The tfjs-ops path reads the state variables: write back (and drop) any host slots.
    if (this.hostSlots.has(state)) this.flushHostSlots(state, true);

    // Statistics (every step) and, on schedule, their inverse roots.
    if (L.diagonal) {
      state.set('diag', this.accumulate(state.get('diag'), tf.square(g)));
    } else {
      if ((t - 1) % o.statisticsComputeSteps === 0) this.updateStatistics(state, L, g, null);
      if (t === start || (t > start && t % o.preconditionFrequency === 0)) this.refreshRoots(state, L, t);
    }
    const gc = this.graftingConfig;
    if (graftingHasState(gc.type)) state.set('graft', updateGraftingState(state.get('graft'), g, gc));

    // First moment: the filtered gradient that both Shampoo and the grafted method precondition.
    let f = g;
    if (o.beta1 > 0) {
      const m = ema(state.get('expAvg') ?? tf.zerosLike(g), g, o.beta1);
      state.set('expAvg', m);
      f = o.biasCorrection ? tf.div(m, 1 - o.beta1 ** t) : m;
    }
    const graft = (): tf.Tensor => graftingDirection(state.get('graft'), f, t, gc);

    let d: tf.Tensor;
    if (t < start) {
      d = graft();
    } else if (L.diagonal) {
      const v = tf.mul(state.get('diag')!, this.diagScale(t));
      const eps = o.epsilonMode === 'relative' ? tf.mul(tf.max(v), o.epsilon) : tf.scalar(o.epsilon);
      // The 1e-30 floor keeps a zero statistic (zero gradient) from giving 0 * Inf.
      d = tf.mul(f, tf.pow(tf.add(tf.add(v, eps), 1e-30), -1 / this.rootExponentFor(1)));
      if (gc.type !== 'none')
        d = tf.reshape(graftBlockNorms(tf.reshape(d, [1, -1]), tf.reshape(graft(), [1, -1])), param.shape);
    } else {
      let ys = splitBlocks(f, L).map((block, b) =>
        applyRoots(
          block,
          L.merged.map((_, i) => state.get(`W${b}_${i}`)),
        ),
      );
      if (gc.type !== 'none') ys = graftEach(ys, splitBlocks(graft(), L));
      d = joinBlocks(ys, L, param.shape);
    }

    return descend(param, this.finishDirection(d, param, state), ctx.learningRate);
  }

  /** Decoupled weight decay, then momentum / Nesterov. */
  private finishDirection(direction: tf.Tensor, param: tf.Tensor, state: SlotState): tf.Tensor {
    const o = this.options;
    let d = direction;
    if (o.decoupledWeightDecay) d = addL2WeightDecay(d, param, o.weightDecay);
    if (o.momentum > 0) {
      const { buffer, direction: next } = momentumDirection(state.get('momentumBuffer'), d, {
        momentum: o.momentum,
        dampening: 0,
        nesterov: o.nesterov,
      });
      state.set('momentumBuffer', buffer);
      d = next;
    }
    return d;
  }

  /**
   * The direction of a 2-D parameter on the wasm / cpu backends, all in the WebAssembly
   * kernels on one host copy of the gradient: statistics, roots on schedule, the grafting
   * accumulator and first moment (host-resident slots), and P_L f_b P_R with per-block
   * grafting. The same steps, in the same order and float32 arithmetic, as the tfjs-ops path.
   */
  private hostDirection(
    param: tf.Tensor,
    g: tf.Tensor,
    state: SlotState,
    L: Layout,
    t: number,
    K: ShampooKernels,
  ): tf.Tensor {
    const o = this.options;
    const gc = this.graftingConfig;
    const start = this.startStep;
    const gv = g.dataSync() as Float32Array;
    if ((t - 1) % o.statisticsComputeSteps === 0) this.updateStatistics(state, L, gv, K);
    if (t === start || (t > start && t % o.preconditionFrequency === 0)) this.refreshRoots(state, L, t);
    const ema = gc.type === 'rmsprop' || gc.type === 'adam';
    const roots =
      t < start
        ? undefined
        : L.blocks.map((_, b) => [this.hostSlot(state, `W${b}_0`), this.hostSlot(state, `W${b}_1`)] as RootPair);
    const r = K.direction(
      gv,
      graftingHasState(gc.type)
        ? {
            buf: this.hostSlot(state, 'graft'),
            ka: ema ? gc.beta2 : 1,
            kg: ema ? 1 - gc.beta2 : 1,
            adiv: gc.type === 'adam' ? 1 - gc.beta2 ** t : 1,
            eps: gc.epsilon,
          }
        : undefined,
      o.beta1 > 0
        ? {
            buf: this.hostSlot(state, 'expAvg'),
            b1: o.beta1,
            c1: 1 - o.beta1,
            fdiv: o.biasCorrection ? 1 - o.beta1 ** t : 1,
          }
        : undefined,
      grid2d(L),
      roots, // before the start step: the grafted first-order direction
      gc.type !== 'none',
      // The wasm backend copies a new tensor's values at once; the cpu backend keeps the array.
      tf.getBackend() !== 'wasm',
    );
    const shape = param.shape as number[];
    if (r.a !== undefined) this.commitHostSlot(state, 'graft', r.a, shape);
    if (r.m !== undefined) this.commitHostSlot(state, 'expAvg', r.m, shape);
    return tf.tensor(r.d, shape);
  }

  /**
   * The direction of a vector parameter on the host: the same formulas as the tfjs-ops path
   * (diag statistic, src/optim/grafting.ts, the beta1 EMA), evaluated in float64 on the float32
   * slots (results agree to float32 rounding; tested against the tfjs path).
   */
  private hostDiagonalDirection(param: tf.Tensor, g: tf.Tensor, state: SlotState, t: number): tf.Tensor {
    const o = this.options;
    const gc = this.graftingConfig;
    const gv = g.dataSync() as Float32Array;
    const n = gv.length;
    const shape = param.shape as number[];
    const b2 = o.beta2;
    const hasAcc = graftingHasState(gc.type);
    const slot = (name: string, use: boolean): HostBuffer | undefined =>
      use ? (this.hostSlot(state, name) ?? allocBuffer(n)) : undefined;
    // All buffers before any view (an allocation may grow the memory and detach views).
    const vb = slot('diag', true)!;
    const ab = slot('graft', hasAcc);
    const mb = slot('expAvg', o.beta1 > 0);
    const v = bufferView(vb);
    const a = ab === undefined ? undefined : bufferView(ab);
    const m = mb === undefined ? undefined : bufferView(mb);
    const ema = gc.type === 'rmsprop' || gc.type === 'adam';
    const adiv = gc.type === 'adam' ? 1 - gc.beta2 ** t : 1;
    const fdiv = o.beta1 > 0 && o.biasCorrection ? 1 - o.beta1 ** t : 1;
    const f = new Float64Array(n);
    const gr = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const gi = gv[i]!;
      const sq = gi * gi;
      v[i] = b2 === 1 ? v[i]! + sq : b2 * v[i]! + (1 - b2) * sq; // zeros before the first update
      let fi = gi;
      if (m !== undefined) {
        m[i] = o.beta1 * m[i]! + (1 - o.beta1) * gi;
        fi = m[i]! / fdiv;
      }
      f[i] = fi;
      if (a !== undefined) {
        a[i] = ema ? gc.beta2 * a[i]! + (1 - gc.beta2) * sq : a[i]! + sq;
        gr[i] = fi / (Math.sqrt(a[i]! / adiv) + gc.epsilon);
      } else {
        gr[i] = fi;
      }
    }
    this.commitHostSlot(state, 'diag', vb, shape);
    if (ab !== undefined) this.commitHostSlot(state, 'graft', ab, shape);
    if (mb !== undefined) this.commitHostSlot(state, 'expAvg', mb, shape);
    const d = new Float32Array(n);
    if (t < this.startStep) {
      d.set(gr);
      return tf.tensor(d, shape);
    }
    const scale = this.diagScale(t);
    let vmax = -Infinity;
    for (let i = 0; i < n; i++) vmax = Math.max(vmax, Math.fround(v[i]! * scale));
    const eps = o.epsilonMode === 'relative' ? vmax * o.epsilon : o.epsilon;
    const power = -1 / this.rootExponentFor(1);
    let dn = 0;
    let gn = 0;
    const dd = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      // The 1e-30 floor keeps a zero statistic (zero gradient) from giving 0 * Inf.
      dd[i] = f[i]! * (Math.fround(v[i]! * scale) + eps + 1e-30) ** power;
      dn += dd[i]! * dd[i]!;
      gn += gr[i]! * gr[i]!;
    }
    const s = gc.type === 'none' ? 1 : Math.sqrt(gn) / (Math.sqrt(dn) + 1e-16);
    for (let i = 0; i < n; i++) d[i] = dd[i]! * s;
    return tf.tensor(d, shape);
  }

  /** S_i <- beta2 S_i + (1 - beta2) G_(i) G_(i)^T (or the sum) for every block and dimension. */
  private updateStatistics(state: SlotState, L: Layout, g: tf.Tensor | Float32Array, K: ShampooKernels | null): void {
    const b2 = this.options.beta2;
    if (K !== null && g instanceof Float32Array) {
      // Gram products with the EMA fused in (beta S + alpha G G^T), one WebAssembly call.
      const prev = L.blocks.map((_, b) => {
        const sl = this.hostSlot(state, `L${b}_0`);
        const sr = this.hostSlot(state, `L${b}_1`);
        return sl === undefined || sr === undefined ? undefined : ([sl, sr] as [HostBuffer, HostBuffer]);
      });
      const stats = K.statistics(g, grid2d(L), prev, b2 === 1 ? 1 : 1 - b2, b2 === 1 ? 1 : b2);
      stats.forEach(([sl, sr], b) => {
        const [h, w] = L.blocks[b]!;
        this.commitHostSlot(state, `L${b}_0`, sl, [h!, h!]);
        this.commitHostSlot(state, `L${b}_1`, sr, [w!, w!]);
      });
      return;
    }
    splitBlocks(g as tf.Tensor, L).forEach((block, b) =>
      modeGrams(block).forEach((s, i) => state.set(`L${b}_${i}`, this.accumulate(state.get(`L${b}_${i}`), s))),
    );
  }

  /** Recompute every block's inverse-root factors in float64; failures keep the previous one. */
  private refreshRoots(state: SlotState, L: Layout, t: number): void {
    const o = this.options;
    const r = this.rootExponentFor(L.merged.length);
    const scale = this.statScale(t);
    const fast = hostMemoryKernels() !== null;
    L.blocks.forEach((sizes, b) => {
      sizes.forEach((n, i) => {
        const stat = this.hostSlots.has(state)
          ? bufferView(this.hostSlot(state, `L${b}_${i}`)!)
          : hostValues(state.get(`L${b}_${i}`)!);
        let root: Float32Array | null = null;
        let zero = true;
        try {
          const a = new Float64Array(n * n);
          for (let p = 0; p < n; p++) {
            // float32 Gram products are symmetric only up to rounding.
            for (let q = 0; q < n; q++) a[p * n + q] = 0.5 * scale * (stat[p * n + q]! + stat[q * n + p]!);
          }
          for (let k = 0; k < a.length && zero; k++) zero = a[k] === 0;
          if (!zero) {
            root =
              o.inverseRootMethod === 'eigen'
                ? eigenRootFactor(a, n, r, o.epsilon, o.epsilonMode, fast)
                : newtonRootFactor(a, n, r, o.epsilon, o.epsilonMode);
            if (!allFinite(root)) root = null;
          }
        } catch {
          root = null;
          zero = false;
        }
        // An all-zero statistic (no gradient seen along this block yet) has no root: the
        // previous factor (or the identity) stays, and it is not counted as a failure.
        if (zero) return;
        this.numericState.inverseRoots = this.inverseRootCount + 1;
        if (root !== null) {
          const slot = `W${b}_${i}`;
          if (this.hostSlots.has(state)) {
            // Kernel path: the factor's persistent buffer, and the variable written now.
            const buf = this.hostSlots.get(state)!.get(slot)?.buf ?? allocBuffer(n * n);
            bufferView(buf).set(root);
            this.commitHostSlot(state, slot, buf, [n, n], true);
          } else {
            state.set(slot, hostTensor(root, [n, n]));
          }
        } else this.numericState.failedInverseRoots = this.failedInverseRoots + 1;
        // On failure the previous W (or, before the first success, the identity) stays.
      });
    });
  }
}

/**
 * The factor W = f(Lambda)^(1/2) V^T (float32, n x n, row k = sqrt(f_k) v_k^T) of the inverse
 * root (A + eps I)^{-1/r} = W^T W, f(lambda) = (lambda + eps)^(-1/r), for a symmetric PSD A
 * (float64, n x n) from its float64 eigendecomposition. Shampoo stores and applies W, never the
 * product (see applyRoots). Rules as src/linalg inverseRoot 'eigh': eigenvalues in
 * [-1e-6 max|lambda|, 0) are round-off and clamped to 0, a more negative one or a non-positive
 * lambda + eps throws (the caller counts a failed root). eps = epsilon ('absolute') or
 * epsilon * lambda_max ('relative').
 */
function eigenRootFactor(
  a: Float64Array,
  n: number,
  r: number,
  epsilon: number,
  mode: 'absolute' | 'relative',
  fast: boolean,
): Float32Array {
  // The float64 WebAssembly eigendecomposition directly (eigenvalues unsorted, eigenvectors as
  // rows), skipping eighRows's input validation, power-of-two scaling and sorting: the input is
  // symmetric by construction, checked finite here, and float32-derived, so |a_ij| is far inside
  // eighRows's scaling range [2^-400, 2^400] (or 0); the order of W's rows does not matter.
  const lw = fast ? linalgWasm() : null;
  let values: Float64Array;
  let vt: Float64Array;
  if (lw !== null) {
    for (let k = 0; k < a.length; k++) if (!Number.isFinite(a[k]!)) throw new Error('Shampoo: non-finite statistic');
    ({ d: values, vt } = eighWasmFast(lw, a, n)); // throws if QL does not converge
  } else {
    ({
      values,
      vt: { data: vt },
    } = eighRows({ rows: n, cols: n, data: a }));
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (let k = 0; k < n; k++) {
    if (!Number.isFinite(values[k]!)) throw new Error('Shampoo: non-finite eigenvalue');
    lo = Math.min(lo, values[k]!);
    hi = Math.max(hi, values[k]!);
  }
  const top = Math.max(Math.abs(lo), Math.abs(hi));
  if (lo < -1e-6 * top) throw new Error('Shampoo: statistic is not positive semidefinite');
  const eps = mode === 'relative' ? epsilon * Math.max(0, hi) : epsilon;
  const w = new Float32Array(n * n);
  for (let k = 0; k < n; k++) {
    const l = Math.max(values[k]!, 0) + eps;
    if (!(l > 0)) throw new Error('Shampoo: singular statistic; pass epsilon > 0');
    const s = l ** (-1 / (2 * r));
    if (!Number.isFinite(s)) throw new Error('Shampoo: non-finite inverse root');
    for (let j = 0; j < n; j++) w[k * n + j] = s * vt[k * n + j]!;
  }
  return w;
}

/** True when every entry is finite (a plain loop: `every(Number.isFinite)` is ~10x slower). */
function allFinite(x: Float32Array): boolean {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!)) return false;
  return true;
}

/**
 * The symmetric factor W = (A + eps I)^{-1/(2r)} (so W^T W = (A + eps I)^{-1/r}) by float64
 * coupled Newton (src/linalg inverseRoot 'newton'), in float32.
 */
function newtonRootFactor(
  a: Float64Array,
  n: number,
  r: number,
  epsilon: number,
  mode: 'absolute' | 'relative',
): Float32Array {
  const res = inverseRoot({ rows: n, cols: n, data: a } as Mat64, 2 * r, {
    method: 'newton',
    epsilon,
    epsilonMode: mode,
  });
  if (!Number.isFinite(res.error)) throw new Error('Shampoo: non-finite inverse root');
  return Float32Array.from(res.root.data);
}

tf.serialization.registerClass(Shampoo);

export const shampooEntry = {
  name: 'shampoo',
  className: Shampoo.className,
  description: 'Shampoo with Distributed Shampoo features: blocking, merged dims, grafting, float64 inverse roots',
  options: optionDocs(SHAMPOO_OPTIONS),
  create: (options: Record<string, unknown>) => new Shampoo(options as ShampooOptions),
};
