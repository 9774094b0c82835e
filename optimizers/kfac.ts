/**
 * K-FAC: Kronecker-factored approximate curvature (Martens & Grosse 2015), a drop-in
 * `tf.Optimizer` for tfjs-layers models and for plain-tf models with registered layers: a
 * Kronecker block per Dense layer and per Conv2D layer (KFC, Grosse & Martens 2016:
 * src/layers/conv.ts, ã = patches with a 1, statistics over examples and output locations,
 * kfac-jax's Conv2DTwoKroneckerFactored scaling).
 *
 *   per step k, on the mini-batch the loss closure sees (one forward, one backward):
 *     capture a_l (layer inputs) and ds_l (pre-activation gradients) from the gradient tape;
 *       ds_l from targets sampled from the model ('fisher'), the data ('empirical'), or every
 *       output direction ('exact': sqrt of the output Fisher, for small outputs)
 *     every statsUpdatePeriod steps:  A_l <- EMA(ã^T ã / n),  G_l <- EMA(n ds^T ds)
 *       (conv: A_l <- EMA(sum_{i,t} p_it p_it^T / (n L)) over the patches p of the L output
 *       locations, G_l <- EMA(n sum_{i,t} ds_it ds_it^T), i.e. kfac-jax's G times L)
 *       with EMA weight min(1 - 1/t, statsDecay) on the old value (t = update count)
 *     every inverseUpdatePeriod steps: pi_l^2 = (tr A_l / dim A_l) / (tr G_l / dim G_l),
 *       Ainv_l = (A_l + pi_l sqrt(lambda) I)^-1,  Ginv_l = (G_l + sqrt(lambda) / pi_l I)^-1
 *     g = grad + weightDecay * theta;      Delta_l = -Ainv_l [gW; gb]_l Ginv_l
 *     adaptive:  (alpha, mu) = argmin of the quadratic model
 *                  m(alpha, mu) = g.u + 1/2 u^T (F + lambda I + wd I) u,  u = alpha Delta + mu delta
 *                with F = J^T H_L J the exact Gauss-Newton matrix (= Fisher for these losses) of
 *                this batch (quadraticModel 'exact'; J: Jacobian of the logits, H_L: the loss's
 *                Hessian in the logits): the d columns c_k of a root of H_L (sum_k c_k c_k^T =
 *                H_L per example) are back-propagated from the logits through the tape, and
 *                u^T F u = n sum_{i,k} (sum_l ã_il^T V_l ds_il^k)^2 with ds^k the back-propagated
 *                c_k / n (no Kronecker approximation);
 *                momentum clipped to [0, 0.99]; m(delta) for rho reuses these 2x2 products;
 *                rejectSteps: L(theta + delta) on the same batch every step (one more loss
 *                evaluation; the damping check's when due): if it is above L(theta) or not
 *                finite, theta and the momentum stay as they were and lambda *= 10
 *     else:      alpha = learningRate, mu = momentum, and Delta scaled by
 *                min(1, sqrt(klClip / (alpha^2 |g.Delta|)))  when klClip > 0
 *     delta = alpha Delta + mu delta;  theta += delta
 *     every dampingInterval steps (adaptDamping): rho = (L(theta + delta) - L(theta)) / m0(delta),
 *       m0(delta) = g.delta + 1/2 delta^T (F + wd I) delta: the model WITHOUT lambda (Martens &
 *       Grosse 2015 sec. 6.5; kfac-jax), unlike the m(alpha, mu) above that chooses the step
 *       (closure re-evaluated on the same batch, its extra outputs disposed);
 *       rho > 3/4: lambda *= omega,  rho < 1/4: lambda /= omega,  omega = dampingDecay^interval
 *   factorRank r > 0 (randomized K-FAC; off by default): a factor of size n > 2r is inverted as
 *     (M + d I)^-1 ~ t I + U diag(1/(s + d) - t) U^T, t = 1/(s_r + d), with its top-r eigenpairs
 *     (U, s) from a Nystrom sketch warm-started at the previous refresh's Ritz vectors
 *     (src/layers/lowrank.ts): exact on the top-r eigenspace, eigenvalues below s_r raised to
 *     s_r (never a longer step than the exact inverse), and the preconditioning costs 4 n r m
 *     instead of n^2 m + n m^2 multiply-adds.
 *   Layers without a block (neither Dense nor a channelsLast, 'same'/'valid', undilated Conv2D:
 *   depthwise, separable, transposed convolutions, ...) get a diagonal fallback
 *   -g / (n EMA(g^2) + lambda), with a one-time warning naming them. burnIn steps only accumulate statistics.
 *
 * Defaults: adaptive true (learning rate and momentum from the quadratic model), quadraticModel
 * 'exact' (for outputs up to exactQuadraticMaxOutputs 64 units; wider: 'sampled'), rejectSteps
 * true (kfac-jax: false; it has no default damping either), damping 1e-2,
 * adaptDamping true, dampingInterval 5, dampingDecay 0.9 (kfac-jax), statsDecay 0.95,
 * statsUpdatePeriod 1, inverseUpdatePeriod 5, estimation 'fisher', lossKind 'auto',
 * learningRate 1e-3 and momentum 0.9 (used when adaptive is false), klClip 0, weightDecay 0,
 * burnIn 0, seed 0, factorRank 0 (exact inverses).
 *
 * References: Martens & Grosse (2015), "Optimizing Neural Networks with Kronecker-factored
 * Approximate Curvature"; Grosse & Martens (2016) (KFC, conv layers); Ba, Grosse & Martens (2017)
 * "Distributed second-order optimization using Kronecker-factored approximations" (KL clipping);
 * Puiu (2022) "Randomized K-FACs: speeding up K-FAC with randomized numerical linear algebra"
 * (low-rank factor inverses); Frangella, Tropp & Udell (2023) "Randomized Nystrom
 * preconditioning" (the s_r tail); Tropp et al. (2017) (stable Nystrom sketch);
 * kfac-jax (google-deepmind/kfac-jax, optimizer.py, curvature_blocks/); tensorflow/kfac
 * (kfac/python/keras/optimizers.py, ops/fisher_blocks.py).
 *
 * Differences from kfac-jax / tensorflow-kfac:
 * - Capture reads the tfjs gradient tape (src/layers/capture.ts) instead of tracing the graph
 *   (kfac-jax) or layer collections (tensorflow-kfac); the model is not modified.
 * - The quadratic model's exact curvature (kfac-jax's `_compute_exact_quad_model` with
 *   'ggn', tensorflow/kfac's `_compute_qmodel`) comes from d reverse passes from the logits (one
 *   per output unit, above the first layer only) instead of one forward-mode product per vector;
 *   cheap for few outputs, so above exactQuadraticMaxOutputs the model falls back to 'sampled':
 *   the sampled Fisher of the batch, exact in its quadratic forms, averaged over two target
 *   samples (the statistics' one and a fresh one, freshQuadraticSample). On small batches the
 *   sampled model underestimates u^T F u along the step and alpha overshoots: a 4-8-3 softmax
 *   MLP in model.fit (batch 16) reached 5-10x its first epoch loss with it, and never exceeds
 *   its first epoch loss with the exact one (test/kfac-quadratic.test.ts). Momentum is clipped to
 *   [0, 0.99] (kfac-jax leaves it free).
 * - Step rejection is on by default (kfac-jax's use_step_rejection, off there) and multiplies the
 *   damping by 10 (kfac-jax: reject_damping_increase_factor, default 1). The exact model is
 *   exact at theta only and can be far off along a long step: at batch 8 the same MLP had one
 *   step (alpha 1.1, ten times the usual) raise its own batch's loss from 0.58 to 3.1 and ended
 *   at 9.7x its first epoch loss; with rejection (x10) it trains (a x1.69 increase was not
 *   enough: 1.8x). Batches much smaller than the parameter count (4 of 48 examples there) can
 *   still fit each batch and overshoot on the others (3 of 9 seeds end above their first epoch
 *   loss); raise the damping (1 trains all nine) or the batch size then.
 * - Inverses come from a block Schur-complement inverse on tfjs matMuls (float32) with float64
 *   leaves, recomputed every inverseUpdatePeriod steps; damping changes take effect at the next
 *   refresh (kfac-jax can re-damp eigendecompositions without refactorising).
 * - Loss scaling follows tfjs (mean over the batch and over outputs for MSE / sigmoid
 *   cross-entropy): the sampled cotangents are scaled so that E[g g^T] equals the loss's
 *   Gauss-Newton matrix.
 * - Burn-in happens inside training (the first burnIn steps update statistics only) instead
 *   of a separate pass over data.
 *
 * State: per block '@kfac/<layer>' slots A, G, Ainv, Ginv, or with factorRank for a large
 * factor X: XU, XUt, Xcoef, Xtail, Xbasis (step = statistics updates); per
 * variable 'velocity' (and 'diag' for fallback variables); numeric 'damping', 'rho'.
 */
import * as tf from '@tensorflow/tfjs';
import { LOSS_KINDS, type LossKind } from '../src/autodiff/losses.js';
import {
  CurvatureOptimizer,
  BASE_OPTION_SPECS,
  type EvaluationCounters,
  type NamedTensorLike,
  type SkipEvent,
  type SlotState,
} from '../src/optim/base.js';
import { invalidOption, option, optionDocs, type OptionSpec, type OptionsInput } from '../src/optim/options.js';
import { ema } from '../src/optim/transforms.js';
import {
  DenseBlock,
  isLowRank,
  type AppliedInverse,
  type DenseBlockSpec,
  type FactorInverse,
} from '../src/layers/dense.js';
import { ConvBlock, type ConvBlockSpec } from '../src/layers/conv.js';
import { useLowRank } from '../src/layers/lowrank.js';
import { captureGradients, type CaptureResult, type CotangentSampler } from '../src/layers/capture.js';
import { denseBlocksOf, installCompileHook, isConvSpec, type BlockSpec } from '../src/layers/registration.js';
import { registeredVariable, releaseKept } from '../src/tfjs-internals/engine.js';

/** A K-FAC curvature block: a dense layer or a 2-D convolution (KFC, src/layers/conv.ts). */
export type KroneckerBlock = DenseBlock | ConvBlock;

/** K-FAC's name for the project's LossKind (src/autodiff/losses.ts). */
export type KFACLossKind = LossKind;
export type KFACEstimation = 'fisher' | 'empirical' | 'exact';
export type KFACQuadraticModel = 'exact' | 'sampled';

const modelOption: OptionSpec<tf.LayersModel | undefined> = {
  default: undefined,
  description: 'tfjs-layers model whose Dense and Conv2D layers get K-FAC blocks',
  serializable: false,
  parse(v, name) {
    if (v === undefined) return undefined;
    if (typeof v !== 'object' || v === null || !Array.isArray((v as { layers?: unknown }).layers)) {
      throw invalidOption(name, v, 'must be a tfjs-layers model (tf.sequential / tf.model)');
    }
    return v as tf.LayersModel;
  },
};

const positive = { min: 0, minExclusive: true };
const period = { min: 1, integer: true };

export const KFAC_OPTIONS = {
  ...BASE_OPTION_SPECS,
  model: modelOption,
  learningRate: option.learningRate(1e-3, 'Step size when adaptive is false (number or schedule)'),
  momentum: option.decay(0.9, 'Momentum on the update when adaptive is false'),
  adaptive: option.boolean(true, 'Learning rate and momentum from the quadratic model each step'),
  damping: option.number(1e-2, 'Initial Tikhonov damping lambda', positive),
  adaptDamping: option.boolean(true, 'Levenberg-Marquardt adaptation of the damping'),
  dampingInterval: option.number(5, 'Steps between damping adaptations', period),
  dampingDecay: option.number(0.9, 'omega = dampingDecay^dampingInterval', {
    min: 0,
    max: 1,
    minExclusive: true,
    maxExclusive: true,
  }),
  minDamping: option.number(1e-8, 'Lower bound of the damping', positive),
  maxDamping: option.number(1e8, 'Upper bound of the damping', positive),
  statsDecay: option.decay(0.95, 'EMA decay of the Kronecker factors'),
  statsUpdatePeriod: option.number(1, 'Steps between factor statistics updates', period),
  inverseUpdatePeriod: option.number(5, 'Steps between inverse refreshes', period),
  factorRank: option.number(
    0,
    'Low-rank-plus-tail factor inverses of this rank for factors larger than 2 factorRank (randomized K-FAC); 0: exact inverses',
    { min: 0, integer: true },
  ),
  burnIn: option.number(0, 'First steps that only accumulate statistics', { min: 0, integer: true }),
  estimation: option.choice<KFACEstimation>(
    'fisher',
    ['fisher', 'empirical', 'exact'],
    "'fisher' (sampled targets), 'empirical' (data targets), 'exact' (all output directions)",
  ),
  lossKind: option.choice<KFACLossKind | 'auto'>(
    'auto',
    ['auto', ...LOSS_KINDS],
    "Output distribution for 'fisher'/'exact'; 'auto' reads model.loss",
  ),
  quadraticModel: option.choice<KFACQuadraticModel>(
    'exact',
    ['exact', 'sampled'],
    "Curvature of the quadratic model (adaptive step sizes, rho): 'exact' Gauss-Newton/Fisher of the batch (one backward pass per output unit, up to exactQuadraticMaxOutputs), 'sampled' target samples",
  ),
  exactQuadraticMaxOutputs: option.number(
    64,
    "quadraticModel 'exact': widest output layer for which the exact curvature is computed (wider: 'sampled')",
    { min: 1, integer: true },
  ),
  freshQuadraticSample: option.boolean(
    true,
    "'fisher' with a sampled quadratic model: draw a second target sample; the quadratic model averages both (one more sampled backward pass)",
  ),
  rejectSteps: option.boolean(
    true,
    'adaptive: undo a step that raised the batch loss and raise the damping (kfac-jax use_step_rejection; one more loss evaluation per step)',
  ),
  klClip: option.number(0, 'KL / norm constraint on the step when adaptive is false (0: off)', { min: 0 }),
  weightDecay: option.number(0, 'L2 weight decay coefficient (added to the gradient and the model)', { min: 0 }),
  seed: option.number(0, 'Seed of the sampled targets (per step: seed and step count)', { min: 0, integer: true }),
};

export type KFACOptions = OptionsInput<typeof KFAC_OPTIONS>;

/** A plain-tf dense layer to register: `x => matMul(x, kernel) + bias`. */
export interface DenseRegistration {
  kernel: tf.Variable;
  bias?: tf.Variable;
  /** Name in state keys and messages; defaults to the kernel's name. */
  name?: string;
}

/**
 * A plain-tf 2-D convolution to register: `x => tf.conv2d(x, kernel, strides, padding) + bias`
 * (NHWC, kernel [kh, kw, cin, cout], dilation 1; tf.fused.conv2d with a linear activation too).
 */
export interface Conv2dRegistration {
  kernel: tf.Variable;
  bias?: tf.Variable;
  /** Strides (one number for both axes); default 1. */
  strides?: number | [number, number];
  /** 'same' or 'valid' (default 'valid', as tf.conv2d has no default). */
  padding?: 'same' | 'valid';
  /** Name in state keys and messages; defaults to the kernel's name. */
  name?: string;
}

/** Upper bound of the quadratic model's momentum (kfac-jax leaves it free; clipping avoids
 * the momentum amplifying a bad previous step). */
const MAX_MOMENTUM = 0.99;

/** Damping factor after a rejected step (rejectSteps). */
const REJECT_DAMPING_INCREASE = 10;

const warned = new Set<string>();
function warnOnce(msg: string): void {
  if (warned.has(msg)) return;
  warned.add(msg);
  console.warn(msg);
}

/** How the back-propagated cotangent sets of a step are laid out (set by the sampler). */
interface CotangentPlan {
  /** Sets back-propagated (one backward pass each, for the counters). */
  sets: number;
  /** dsSampled[0, stats) feed the factor statistics ... */
  stats: number;
  /** ... and dsSampled[quadFrom, end) the quadratic model. */
  quadFrom: number;
  /** The quadratic model's sets are the columns of the output curvature's root (exact). */
  quadExact: boolean;
}

export class KFAC extends CurvatureOptimizer<typeof KFAC_OPTIONS> {
  static get className(): string {
    return 'CurvatureKFAC';
  }

  /**
   * Settings that cost about 2 SGD steps per step on wide layers (docs/kfac.md, "Fast
   * settings"): tensorflow/kfac-style fixed learning rate and momentum with the KL clip,
   * statistics every 10 steps, inverses every 20, rank-64 factor inverses. Spread them into the
   * options: `new KFAC({ model, ...KFAC.FAST_SETTINGS })`.
   */
  static readonly FAST_SETTINGS: Readonly<KFACOptions> = Object.freeze({
    adaptive: false,
    adaptDamping: false,
    learningRate: 0.1,
    momentum: 0.9,
    klClip: 1e-3,
    statsUpdatePeriod: 10,
    inverseUpdatePeriod: 20,
    factorRank: 64,
  });

  /**
   * Cumulative evaluation counts (the harness reads them): loss evaluations (one per step, one
   * more per damping check) and backward passes (the gradient plus one per sampled-target draw).
   */
  readonly counters: EvaluationCounters = { lossEvals: 0, gradEvals: 0, hvpEvals: 0 };

  private readonly explicit: BlockSpec[] = [];
  private blocksCache: KroneckerBlock[] | undefined;
  private unsupportedLayers: string[] = [];
  private resolvedLossKind: KFACLossKind | undefined;
  private resolvedEstimation: KFACEstimation | undefined;
  /** Whether the model came from the constructor (attachModel never replaces it). */
  private readonly modelGiven: boolean;
  /** Steps undone because they raised the batch loss (rejectSteps; not saved with the weights). */
  rejectedSteps = 0;
  /** Step sizes chosen at the last update (learning rate alpha, momentum mu). */
  lastStep: { alpha: number; mu: number } = { alpha: Number.NaN, mu: Number.NaN };

  constructor(options: KFACOptions = {}) {
    super('KFAC', KFAC_OPTIONS, options);
    const o = this.options;
    this.modelGiven = o.model !== undefined;
    if (o.minDamping > o.maxDamping) throw invalidOption('minDamping', o.minDamping, 'must be <= maxDamping');
    if (o.damping < o.minDamping || o.damping > o.maxDamping) {
      throw invalidOption(
        'damping',
        o.damping,
        `must be in [minDamping, maxDamping] = [${o.minDamping}, ${o.maxDamping}]`,
      );
    }
    if (o.factorRank > 0 && o.adaptive) {
      warnOnce(
        'KFAC: factorRank with adaptive: true is experimental (the quadratic model stretches the step along the ' +
          'truncated directions; a measured mlp-mnist run diverged): prefer adaptive: false with a learning rate (docs/kfac.md)',
      );
    }
    // float32-representable, as when scalar state was saved as float32 (it is now saved as
    // float64), so that trajectories are unchanged.
    this.numericState.damping = Math.fround(o.damping);
    this.numericState.rho = Number.NaN;
  }

  /** The curvature estimation in use ('empirical' when the output distribution is unknown). */
  get estimationInUse(): KFACEstimation {
    return this.blocks.length > 0 ? this.estimation() : 'empirical';
  }

  /** The output distribution used for sampled targets, if known. */
  get lossKindInUse(): KFACLossKind | undefined {
    return this.lossKind();
  }

  /** Current damping lambda. */
  get damping(): number {
    return this.numericState.damping!;
  }

  /** Register a dense layer of a plain-tf model (the matMul whose right operand is `kernel`). */
  registerDense(layer: DenseRegistration): this {
    if (!(layer.kernel instanceof tf.Variable)) throw new Error('KFAC.registerDense: kernel must be a tf.Variable');
    const spec: DenseBlockSpec = { name: layer.name ?? layer.kernel.name, kernel: layer.kernel };
    if (layer.bias !== undefined) spec.bias = layer.bias;
    new DenseBlock(spec); // validates shapes now
    if (this.explicit.some((s) => s.kernel === layer.kernel)) {
      throw new Error(`KFAC.registerDense: kernel '${layer.kernel.name}' is already registered`);
    }
    this.explicit.push(spec);
    this.blocksCache = undefined;
    return this;
  }

  /**
   * Register a 2-D convolution of a plain-tf model (KFC block: the conv2d node whose filter is
   * `kernel`, with the registered strides and padding).
   */
  registerConv2d(layer: Conv2dRegistration): this {
    if (!(layer.kernel instanceof tf.Variable)) throw new Error('KFAC.registerConv2d: kernel must be a tf.Variable');
    const st = layer.strides ?? 1;
    const spec: ConvBlockSpec = {
      name: layer.name ?? layer.kernel.name,
      kernel: layer.kernel,
      strides: typeof st === 'number' ? [st, st] : [st[0], st[1]],
      padding: layer.padding ?? 'valid',
    };
    if (layer.bias !== undefined) spec.bias = layer.bias;
    new ConvBlock(spec); // validates shapes now
    if (this.explicit.some((s) => s.kernel === layer.kernel)) {
      throw new Error(`KFAC.registerConv2d: kernel '${layer.kernel.name}' is already registered`);
    }
    this.explicit.push(spec);
    this.blocksCache = undefined;
    return this;
  }

  /**
   * Use the Dense and Conv2D layers of `model` (a tfjs-layers model this optimizer is compiled with).
   * Called by `model.compile({ optimizer })` (src/layers/registration.ts installCompileHook),
   * which is how a K-FAC rebuilt by `tf.loadLayersModel` (fromConfig, no model) finds the
   * layers of the model it was reloaded with; call it yourself when you compile some other way.
   * A `model` given to the constructor is kept (this is then a no-op).
   */
  attachModel(model: tf.LayersModel): void {
    if (this.modelGiven || this.options.model === model) return;
    (this.options as { model: tf.LayersModel | undefined }).model = modelOption.parse(model, 'model');
    this.blocksCache = undefined;
    this.resolvedLossKind = undefined;
    this.resolvedEstimation = undefined;
  }

  /**
   * Restored factors ('@kfac/<layer>' state from setWeights / tf.loadLayersModel) must belong
   * to a block this optimizer has; otherwise it would train those layers with the diagonal
   * fallback from scratch and wreck a trained model. Refuse instead, naming the fix.
   */
  private checkRestoredBlocks(blocks: readonly KroneckerBlock[]): void {
    const have = new Set(blocks.map((b) => `@kfac/${b.name}`));
    const orphans = this.stateKeys().filter((k) => k.startsWith('@kfac/') && !have.has(k));
    if (orphans.length === 0) return;
    const names = orphans.map((k) => `'${k.slice('@kfac/'.length)}'`).join(', ');
    throw new Error(
      blocks.length === 0
        ? `KFAC holds restored factors for layers ${names} but has no model: it was rebuilt from its config ` +
            '(tf.loadLayersModel / fromConfig) and not compiled with a tfjs-layers model. Compile the model with it ' +
            '(model.compile({ optimizer, loss })) or call kfac.attachModel(model) before training.'
        : `KFAC holds restored factors for layers ${names}, which its model does not have (its layers with blocks: ` +
            `${blocks.map((b) => `'${b.name}'`).join(', ')}). Restore into the model the state was saved with ` +
            '(tf.loadLayersModel keeps layer names) or start a fresh KFAC.',
    );
  }

  /** The curvature blocks in use (resolved from the model on first use). */
  get blocks(): readonly KroneckerBlock[] {
    if (this.blocksCache === undefined) {
      const specs = [...this.explicit];
      const model = this.options.model;
      if (model !== undefined) {
        const found = denseBlocksOf(model);
        for (const s of found.all) if (!specs.some((e) => e.kernel === s.kernel)) specs.push(s);
        this.unsupportedLayers = found.unsupported;
      }
      this.blocksCache = specs.map((s) => (isConvSpec(s) ? new ConvBlock(s) : new DenseBlock(s)));
    }
    return this.blocksCache;
  }

  /** Factors of a block (the EMA statistics), or undefined before its first update. */
  factors(blockName: string): { A: tf.Tensor2D; G: tf.Tensor2D } | undefined {
    const s = this.stateFor(`@kfac/${blockName}`);
    const A = s.get('A');
    const G = s.get('G');
    return A && G ? { A: A as tf.Tensor2D, G: G as tf.Tensor2D } : undefined;
  }

  override applyGradients(_variableGradients: tf.NamedTensorMap | NamedTensorLike[]): void {
    throw new Error(
      'KFAC needs the loss closure to capture layer activations: call minimize(f) or model.fit, not applyGradients',
    );
  }

  protected override onNonFinite(event: SkipEvent): void {
    this.numericState.damping = Math.fround(Math.min(this.damping * 10, this.options.maxDamping));
    super.onNonFinite(event);
  }

  // ------------------------------------------------------------------ configuration

  private lossKind(): KFACLossKind | undefined {
    if (this.resolvedLossKind !== undefined) return this.resolvedLossKind;
    const o = this.options;
    if (o.lossKind !== 'auto') return (this.resolvedLossKind = o.lossKind);
    const model = o.model as (tf.LayersModel & { loss?: unknown }) | undefined;
    const loss = model?.loss;
    const name = typeof loss === 'string' ? loss : Array.isArray(loss) && loss.length === 1 ? loss[0] : undefined;
    const act = model ? denseBlocksOf(model).outputActivation : undefined;
    if (typeof name === 'string') {
      const n = name.toLowerCase().replace(/_/g, '');
      if ((n === 'categoricalcrossentropy' || n === 'sparsecategoricalcrossentropy') && act === 'softmax') {
        return (this.resolvedLossKind = 'softmax-cross-entropy');
      }
      if (n === 'binarycrossentropy' && act === 'sigmoid') return (this.resolvedLossKind = 'sigmoid-cross-entropy');
      if ((n === 'meansquarederror' || n === 'mse') && (act === 'linear' || act === undefined)) {
        return (this.resolvedLossKind = 'mse');
      }
    }
    return undefined;
  }

  private estimation(): KFACEstimation {
    if (this.resolvedEstimation !== undefined) return this.resolvedEstimation;
    const want = this.options.estimation;
    if (want !== 'empirical' && this.lossKind() === undefined) {
      warnOnce(
        `KFAC: estimation '${want}' needs the output distribution; set lossKind (or compile the model with ` +
          "categoricalCrossentropy+softmax, binaryCrossentropy+sigmoid or meanSquaredError+linear). Using 'empirical'.",
      );
      return (this.resolvedEstimation = 'empirical');
    }
    return (this.resolvedEstimation = want);
  }

  /**
   * The cotangent sets back-propagated from the logits: target samples for the factor
   * statistics, and for the quadratic model either the columns of a square root of the output
   * curvature (exact: sum_k c_k c_k^T = H_L per example, so the projections give u^T J^T H_L J u)
   * or target samples. `plan` records how the sets returned are laid out.
   */
  private sampler(
    estimation: KFACEstimation,
    kind: KFACLossKind,
    step: number,
    wantQuad: boolean,
    statsStep: boolean,
    plan: CotangentPlan,
  ): CotangentSampler {
    const o = this.options;
    // tfjs treats a seed of 0 as 'no seed' (Math.random): start at 1.
    const seed0 = 1 + o.seed * 1_000_003 + step * 2;
    return (logits) => {
      const [n, d] = logits.shape;
      const one = (seed: number, exact: boolean): tf.Tensor2D[] => {
        if (kind === 'softmax-cross-entropy') {
          const p = tf.softmax(logits);
          if (exact) {
            // Column k: sqrt(p_k) (e_k - p) / n, all d at once as [d, n, d].
            const root = tf.expandDims(tf.transpose(tf.sqrt(p)), 2);
            return tf.unstack(
              tf.div(tf.mul(root, tf.sub(tf.reshape(tf.eye(d), [d, 1, d]), tf.expandDims(p, 0))), n),
            ) as tf.Tensor2D[];
          }
          const y = tf.oneHot(tf.reshape(tf.multinomial(logits, 1, seed), [n]) as tf.Tensor1D, d);
          return [tf.div(tf.sub(p, y), n) as tf.Tensor2D];
        }
        if (kind === 'sigmoid-cross-entropy') {
          const s = tf.sigmoid(logits);
          const c = Math.sqrt(1 / d) / n;
          if (exact) {
            // Column k: sqrt(s_k (1 - s_k)) e_k c.
            const sd = tf.expandDims(tf.transpose(tf.sqrt(tf.mul(s, tf.sub(1, s)))), 2);
            return tf.unstack(tf.mul(tf.mul(sd, tf.reshape(tf.eye(d), [d, 1, d])), c)) as tf.Tensor2D[];
          }
          const y = tf.cast(tf.less(tf.randomUniform([n, d], 0, 1, 'float32', seed), s), 'float32');
          return [tf.mul(tf.sub(s, y), c) as tf.Tensor2D];
        }
        const c = Math.sqrt(2 / d) / n;
        if (exact) {
          return tf.unstack(tf.mul(tf.tile(tf.reshape(tf.eye(d), [d, 1, d]), [1, n, 1]), c)) as tf.Tensor2D[];
        }
        return [tf.mul(tf.randomNormal([n, d], 0, 1, 'float32', seed), c) as tf.Tensor2D];
      };
      if (estimation === 'exact') {
        const cols = one(seed0, true);
        Object.assign(plan, { sets: cols.length, stats: cols.length, quadFrom: 0, quadExact: true });
        return cols;
      }
      const exactQuad = wantQuad && o.quadraticModel === 'exact' && d <= o.exactQuadraticMaxOutputs;
      // 'fisher': one sample for the statistics (also the quadratic model's first when sampled),
      // a fresh second one for a sampled quadratic model.
      const draws =
        estimation !== 'fisher' ? 0 : exactQuad ? (statsStep ? 1 : 0) : wantQuad && o.freshQuadraticSample ? 2 : 1;
      const samples = [...Array(draws).keys()].flatMap((i) => one(seed0 + i, false));
      const cols = exactQuad ? one(seed0, true) : [];
      Object.assign(plan, {
        sets: samples.length + cols.length,
        stats: Math.min(samples.length, 1),
        quadFrom: exactQuad ? samples.length : 0,
        quadExact: exactQuad,
      });
      return [...samples, ...cols];
    };
  }

  /** Cotangents for the factor statistics and for the quadratic model. */
  private static split(l: { dsTrue?: tf.Tensor2D; dsSampled: tf.Tensor2D[] }, plan: CotangentPlan) {
    const stats = l.dsTrue ? [l.dsTrue] : l.dsSampled.slice(0, plan.stats);
    // A sampled quadratic model averages both samples: the fresh one is independent of the
    // step, and the average halves the variance (one fresh sample alone let alpha overshoot).
    const quad = l.dsTrue && !plan.quadExact ? [l.dsTrue] : l.dsSampled.slice(plan.quadFrom);
    return { stats, quad };
  }

  // ------------------------------------------------------------------ the step

  override minimize(f: () => tf.Scalar, returnCost = false, varList?: tf.Variable[]): tf.Scalar | null {
    const o = this.options;
    const blocks = this.blocks;
    this.checkRestoredBlocks(blocks);
    const k = this.iterations;
    const burnIn = k < o.burnIn;
    const statsStep = burnIn || k % o.statsUpdatePeriod === 0;
    const dampingStep = o.adaptDamping && !burnIn && (k + 1) % o.dampingInterval === 0;
    const wantQuad = !burnIn && (o.adaptive || dampingStep);
    const needCurvature = statsStep || wantQuad;
    const est = blocks.length > 0 ? this.estimation() : 'empirical';
    const kind = this.lossKind();
    const plan: CotangentPlan = { sets: 0, stats: 0, quadFrom: 0, quadExact: false };
    const useSampler =
      needCurvature && kind !== undefined && (est !== 'empirical' || (wantQuad && o.quadraticModel === 'exact'));
    // One loss and gradient pass (a gradient includes its loss value: src/harness/cost.ts); each
    // back-propagated cotangent set (a target sample or a column of the output curvature's root)
    // adds one backward pass above the first layer.
    this.counters.gradEvals += 1;
    const cap = captureGradients(f, varList, [...blocks], {
      recordTrueGradients: needCurvature && est === 'empirical',
      ...(useSampler ? { sampler: this.sampler(est, kind, k, wantQuad, statsStep, plan) } : {}),
    });
    this.counters.gradEvals += plan.sets;
    try {
      const vars = varList ?? Object.keys(cap.grads).map((n) => registeredVariable(n)!);
      const entries = vars
        .filter((v) => cap.grads[v.name] != null)
        .map((v) => ({ name: v.name, variable: v, grad: cap.grads[v.name]! }));
      const names = entries.map((e) => e.name);
      if (o.skipNonFinite) {
        if (!this.allFinite([cap.value])) {
          this.recordSkip('loss', names);
          return this.finish(cap, returnCost);
        }
        // Activations feed the statistics and the quadratic model only: not checked otherwise
        // (the gradient already is).
        const curv = needCurvature
          ? cap.layers.flatMap((l) => (l ? [l.a, ...(l.dsTrue ? [l.dsTrue] : []), ...l.dsSampled] : []))
          : [];
        if (!this.allFinite([...entries.map((e) => e.grad), ...curv])) {
          this.recordSkip('gradient', names);
          return this.finish(cap, returnCost);
        }
      }
      this.claimByName(names);
      const applied = this.step(cap, entries, blocks, { k, burnIn, statsStep, dampingStep, f, est, plan });
      if (applied) this.incrementIterations();
      return this.finish(cap, returnCost);
    } catch (err) {
      this.disposeCapture(cap);
      cap.value.dispose();
      throw err;
    }
  }

  /** Save a factor inverse in a block's slots: 'Ainv', or 'AU', 'AUt', 'Acoef', 'Atail', 'Abasis'. */
  private static storeInverse(st: SlotState, p: 'A' | 'G', inv: FactorInverse): void {
    if (!isLowRank(inv)) {
      st.set(`${p}inv`, inv);
      return;
    }
    st.set(`${p}U`, inv.U);
    st.set(`${p}Ut`, inv.Ut);
    st.set(`${p}coef`, inv.coef);
    st.set(`${p}tail`, inv.tail);
    st.set(`${p}basis`, inv.basis);
  }

  /** The stored inverse of the wanted form, as the preconditioner applies it, if any. */
  private static loadInverse(st: SlotState, p: 'A' | 'G', lowRank: boolean): AppliedInverse | undefined {
    if (!lowRank) return st.get(`${p}inv`) as tf.Tensor2D | undefined;
    const [U, Ut, coef, tail] = ['U', 'Ut', 'coef', 'tail'].map((x) => st.get(`${p}${x}`));
    if (!U || !Ut || !coef || !tail || !st.has(`${p}basis`)) return undefined;
    return { U: U as tf.Tensor2D, Ut: Ut as tf.Tensor2D, coef: coef as tf.Tensor1D, tail: tail as tf.Scalar };
  }

  private disposeCapture(cap: CaptureResult): void {
    tf.dispose(cap.grads);
    for (const l of cap.layers) {
      if (!l) continue;
      l.a.dispose();
      l.dsTrue?.dispose();
      tf.dispose(l.dsSampled);
    }
  }

  private finish(cap: CaptureResult, returnCost: boolean): tf.Scalar | null {
    this.disposeCapture(cap);
    if (returnCost) return cap.value;
    cap.value.dispose();
    return null;
  }

  private step(
    cap: CaptureResult,
    entries: { name: string; variable: tf.Variable; grad: tf.Tensor }[],
    blocks: readonly KroneckerBlock[],
    s: {
      k: number;
      burnIn: boolean;
      statsStep: boolean;
      dampingStep: boolean;
      f: () => tf.Scalar;
      est: KFACEstimation;
      plan: CotangentPlan;
    },
  ): boolean {
    const o = this.options;
    const byName = new Map(entries.map((e) => [e.name, e]));
    // Blocks whose layers appeared on the tape and whose variables are being trained.
    const active: { block: KroneckerBlock; index: number }[] = [];
    blocks.forEach((block, index) => {
      const inList = block.variables.some((v) => byName.has(v.name));
      if (!inList) return;
      if (cap.layers[index] === undefined) {
        warnOnce(
          `KFAC: layer '${block.name}' was not found in the loss computation; using the diagonal fallback for it`,
        );
        return;
      }
      active.push({ block, index });
    });
    const covered = new Set(active.flatMap(({ block }) => block.variables.map((v) => v.name)));
    const fallback = entries.filter((e) => !covered.has(e.name));
    if (fallback.length > 0) {
      const what =
        this.unsupportedLayers.length > 0
          ? `layers ${this.unsupportedLayers.join(', ')}`
          : `variables ${fallback.map((e) => e.name).join(', ')}`;
      warnOnce(`KFAC: no Kronecker-factored block for ${what}; using a diagonal preconditioner for them`);
    }
    const batch = cap.layers.find((l) => l !== undefined)?.a.shape[0] ?? 1;
    const lambda = this.damping;
    let applied = true;

    tf.tidy(() => {
      // 1. Factor statistics.
      if (s.statsStep) {
        for (const { block, index } of active) {
          const l = cap.layers[index]!;
          const ds = KFAC.split(l, s.plan).stats;
          if (ds.length === 0) continue;
          const st = this.stateFor(`@kfac/${block.name}`);
          const t = st.step + 1;
          const decay = Math.min(1 - 1 / t, o.statsDecay);
          // Dense: inputs [n, in]; conv: images [n, H, W, cin] (the cast only satisfies the union).
          const A = block.factorA(l.a as tf.Tensor2D);
          const G = block.factorG(ds, l.a.shape[0], s.est !== 'exact');
          st.set('A', st.has('A') ? ema(st.get('A')!, A, decay) : A);
          st.set('G', st.has('G') ? ema(st.get('G')!, G, decay) : G);
          st.step = t;
        }
      }
      if (s.burnIn) return;

      // 2. Inverses of the damped factors (explicit, or low-rank plus tail: factorRank).
      const rank = o.factorRank;
      const inverses = new Map<KroneckerBlock, { Ainv: AppliedInverse; Ginv: AppliedInverse }>();
      for (const { block } of active) {
        const st = this.stateFor(`@kfac/${block.name}`);
        if (!st.has('A')) continue;
        const lowA = useLowRank(block.inDim, rank);
        const lowG = useLowRank(block.outDim, rank);
        let Ainv = KFAC.loadInverse(st, 'A', lowA);
        let Ginv = KFAC.loadInverse(st, 'G', lowG);
        if (s.k % o.inverseUpdatePeriod === 0 || !Ainv || !Ginv) {
          const basis = (p: 'A' | 'G', low: boolean) =>
            low ? (st.get(`${p}basis`) as tf.Tensor2D | undefined) : undefined;
          const bA = basis('A', lowA);
          const bG = basis('G', lowG);
          const fresh = DenseBlock.dampedInverses(st.get('A') as tf.Tensor2D, st.get('G') as tf.Tensor2D, lambda, {
            rank,
            ...(bA ? { basisA: bA } : {}),
            ...(bG ? { basisG: bG } : {}),
            seed: 1 + o.seed * 7919 + s.k,
          });
          KFAC.storeInverse(st, 'A', fresh.Ainv);
          KFAC.storeInverse(st, 'G', fresh.Ginv);
          [Ainv, Ginv] = [fresh.Ainv, fresh.Ginv];
        }
        inverses.set(block, { Ainv: Ainv!, Ginv: Ginv! });
      }

      // 3. Gradient (with weight decay) and preconditioned direction, per variable.
      const wd = o.weightDecay;
      const g = new Map<string, tf.Tensor>();
      for (const e of entries) g.set(e.name, wd === 0 ? e.grad : tf.add(e.grad, tf.mul(e.variable, wd)));
      const dir = new Map<string, tf.Tensor>();
      for (const { block } of active) {
        const inv = inverses.get(block);
        if (!inv) {
          block.variables.forEach((v) => dir.set(v.name, tf.neg(g.get(v.name) ?? tf.zerosLike(v))));
          continue;
        }
        const gm = block.toMatrix(
          g.get(block.kernel.name) ?? tf.zerosLike(block.kernel),
          block.bias ? g.get(block.bias.name) : undefined,
        );
        const p = block.fromMatrix(tf.neg(DenseBlock.precondition(gm, inv.Ainv, inv.Ginv)));
        dir.set(block.kernel.name, p.kernel);
        if (block.bias && p.bias) dir.set(block.bias.name, p.bias);
      }
      const diagCurv = new Map<string, tf.Tensor>();
      for (const e of fallback) {
        const vs = this.variableState(e.name);
        const sq = tf.mul(tf.square(e.grad), batch);
        const v = vs.has('diag') ? ema(vs.get('diag')!, sq, o.statsDecay) : sq;
        if (s.statsStep) vs.set('diag', v);
        diagCurv.set(e.name, v);
        dir.set(e.name, tf.neg(tf.div(g.get(e.name)!, tf.add(v, lambda))));
      }

      // 4. Step sizes.
      const prev = new Map<string, tf.Tensor>();
      for (const e of entries) {
        const p = this.variableState(e.name).get('velocity');
        if (p !== undefined) prev.set(e.name, p);
      }
      const names = entries.map((e) => e.name);
      const zero = (n: string) => tf.zerosLike(byName.get(n)!.variable);
      const curvatureOk =
        active.length > 0 &&
        active.every(({ index }) => {
          const l = cap.layers[index]!;
          return l.dsTrue !== undefined || l.dsSampled.length > 0;
        });
      // The quadratic model's cotangent sets per active block, stacked [sets, n, out] once.
      const quadSets = new Map<KroneckerBlock, tf.Tensor3D>();
      const quadStack = (
        block: KroneckerBlock,
        l: NonNullable<CaptureResult['layers'][number]>,
      ): tf.Tensor3D | undefined => {
        if (!quadSets.has(block)) {
          const ds = KFAC.split(l, s.plan).quad;
          if (ds.length === 0) return undefined;
          quadSets.set(block, (ds.length === 1 ? tf.expandDims(ds[0]!, 0) : tf.stack(ds)) as tf.Tensor3D);
        }
        return quadSets.get(block);
      };
      const quadForms = (vecs: Map<string, tf.Tensor>[]): tf.Tensor => {
        // Gram matrix u_j^T F u_k over the vectors, F from the captured cotangents.
        const m = vecs.length;
        const proj: (tf.Tensor | undefined)[] = []; // [vector] -> projections [sets, n], summed over blocks
        let S = 0;
        for (const { block, index } of active) {
          const l = cap.layers[index]!;
          const ds = quadStack(block, l);
          if (ds === undefined) continue;
          S = Math.max(S, ds.shape[0]);
          const aHom = block.homogeneous(l.a as tf.Tensor2D) as tf.Tensor2D;
          vecs.forEach((vec, j) => {
            const vm = block.toMatrix(
              vec.get(block.kernel.name) ?? zero(block.kernel.name),
              block.bias ? vec.get(block.bias.name) : undefined,
            );
            // One ã V product (conv: conv(x, V) + v_b) per vector, shared by the cotangent sets.
            const pr = block.projectionStack(aHom, vm, ds);
            const cur = proj[j];
            proj[j] =
              cur === undefined || cur.shape[0] !== pr.shape[0] || cur.shape[1] !== pr.shape[1] ? pr : tf.add(cur, pr);
          });
        }
        const rows: tf.Tensor[] = [];
        for (let j = 0; j < m; j++) {
          for (let q = 0; q < m; q++) {
            const pj = proj[j];
            const pq = proj[q];
            let acc: tf.Tensor = pj && pq ? tf.sum(tf.mul(pj, pq)) : tf.scalar(0);
            acc = tf.mul(acc, s.plan.quadExact ? batch : batch / Math.max(S, 1));
            // Fallback variables: their diagonal curvature.
            for (const e of fallback) {
              const a = vecs[j]!.get(e.name);
              const b = vecs[q]!.get(e.name);
              if (a && b) acc = tf.add(acc, tf.sum(tf.mul(tf.mul(a, b), diagCurv.get(e.name)!)));
            }
            rows.push(acc);
          }
        }
        return tf.stack(rows);
      };
      const dot = (a: Map<string, tf.Tensor>, b: Map<string, tf.Tensor>): tf.Tensor =>
        tf.addN(names.map((n) => (a.get(n) && b.get(n) ? tf.sum(tf.mul(a.get(n)!, b.get(n)!)) : tf.scalar(0))));

      let alpha: number;
      let mu: number;
      let update: Map<string, tf.Tensor>;
      // The quadratic model's predicted change m(delta) (no damping), when the step sizes came
      // from it: rho reuses the same curvature products (kfac-jax).
      let modelChange: number | undefined;
      const combine = (al: number, m: number): Map<string, tf.Tensor> => {
        const u = new Map<string, tf.Tensor>();
        for (const n of names) {
          let x = tf.mul(dir.get(n)!, al);
          const p = prev.get(n);
          if (p !== undefined && m !== 0) x = tf.add(x, tf.mul(p, m));
          u.set(n, x);
        }
        return u;
      };
      if (o.adaptive && curvatureOk) {
        const hasPrev = prev.size > 0;
        const vecs = hasPrev ? [dir, prev] : [dir];
        const Q = quadForms(vecs);
        const reg = lambda + wd;
        const extras = [dot(g, dir), dot(dir, dir)];
        if (hasPrev) extras.push(dot(g, prev), dot(dir, prev), dot(prev, prev));
        const vals = tf.concat([Q, tf.stack(extras)]).dataSync();
        if (!hasPrev) {
          const q11 = vals[0]! + reg * vals[2]!;
          alpha = q11 > 0 ? -vals[1]! / q11 : 0;
          mu = 0;
          if (!Number.isFinite(alpha)) alpha = 0;
          modelChange = alpha * vals[1]! + 0.5 * alpha * alpha * (vals[0]! + wd * vals[2]!);
        } else {
          const [f11, f12, , f22, gd, dd, gp, dp, pp] = [
            vals[0]!,
            vals[1]!,
            vals[2]!,
            vals[3]!,
            vals[4]!,
            vals[5]!,
            vals[6]!,
            vals[7]!,
            vals[8]!,
          ];
          const a11 = f11 + reg * dd;
          const a12 = f12 + reg * dp;
          const a22 = f22 + reg * pp;
          const det = a11 * a22 - a12 * a12;
          mu = det > 1e-12 * a11 * a22 ? -(-a12 * gd + a11 * gp) / det : 0;
          // Momentum outside [0, maxMomentum] means the model distrusts the previous step:
          // clip it and take the best learning rate for the clipped momentum.
          mu = Math.min(Math.max(Number.isFinite(mu) ? mu : 0, 0), MAX_MOMENTUM);
          alpha = a11 > 0 ? -(gd + mu * a12) / a11 : 0;
          if (!Number.isFinite(alpha)) [alpha, mu] = [0, 0];
          const fuu = alpha * alpha * f11 + 2 * alpha * mu * f12 + mu * mu * f22;
          const uu = alpha * alpha * dd + 2 * alpha * mu * dp + mu * mu * pp;
          modelChange = alpha * gd + mu * gp + 0.5 * (fuu + wd * uu);
        }
        if (!Number.isFinite(alpha) || !Number.isFinite(mu)) [alpha, mu] = [0, 0];
        update = combine(alpha, mu);
      } else {
        alpha = this.currentLearningRate();
        mu = o.momentum;
        if (o.klClip > 0) {
          const gd = Math.abs(dot(g, dir).dataSync()[0]!);
          const sq = alpha * alpha * gd;
          if (sq > o.klClip) {
            const c = Math.sqrt(o.klClip / sq);
            for (const n of names) dir.set(n, tf.mul(dir.get(n)!, c));
          }
        }
        update = combine(alpha, mu);
      }

      // A finite gradient can still give a non-finite step (an overflowing preconditioner or
      // step size): skip it rather than write it into the weights.
      if (o.skipNonFinite && !this.allFinite([...update.values()])) {
        this.recordSkip('update', names);
        applied = false;
        return;
      }
      this.lastStep = { alpha, mu };
      // 5. Apply (keeping the old values while the step may still be rejected).
      const reject = o.rejectSteps && o.adaptive;
      const before = reject ? entries.map((e) => tf.clone(e.variable)) : [];
      for (const e of entries) e.variable.assign(tf.add(e.variable, update.get(e.name)!));

      // 6. The loss after the step on the same batch: Levenberg-Marquardt damping adaptation
      // every dampingInterval steps, and (rejectSteps) undoing a step that raised it.
      const adapt = s.dampingStep && curvatureOk;
      let rejected = false;
      if (adapt || reject) {
        const model = !adapt
          ? tf.scalar(0)
          : modelChange !== undefined
            ? tf.scalar(modelChange)
            : tf.add(dot(g, update), tf.mul(tf.add(quadForms([update]), tf.mul(dot(update, update), wd)), 0.5));
        let wdChange: tf.Tensor = tf.scalar(0);
        if (wd > 0) {
          // theta was updated in place: wd/2 (|theta|^2 - |theta - u|^2) = wd (theta.u) - wd/2 |u|^2.
          const th = new Map(entries.map((e) => [e.name, e.variable as tf.Tensor]));
          wdChange = tf.sub(tf.mul(dot(th, update), wd), tf.mul(dot(update, update), wd / 2));
        }
        const newLoss = this.evaluateClosure(s.f);
        this.counters.lossEvals += 1;
        const vals = tf.stack([tf.reshape(model, []), tf.sub(tf.add(newLoss, wdChange), cap.value)]).dataSync();
        const omega = o.dampingDecay ** o.dampingInterval;
        let d = this.damping;
        if (adapt) {
          const rho = vals[1]! / vals[0]!;
          this.numericState.rho = rho;
          if (!Number.isFinite(rho) || rho < 0.25) d /= omega;
          else if (rho > 0.75) d *= omega;
        }
        // kfac-jax's use_step_rejection: the model failed badly (the loss went up, or is not
        // finite): back to the old parameters and momentum, with 10x the damping (as after a
        // non-finite step; one Levenberg-Marquardt factor barely shortens the next step).
        rejected = reject && !(vals[1]! <= 0);
        if (rejected) {
          entries.forEach((e, i) => e.variable.assign(before[i]!));
          d *= REJECT_DAMPING_INCREASE;
          this.rejectedSteps += 1;
        }
        this.numericState.damping = Math.fround(Math.min(Math.max(d, o.minDamping), o.maxDamping));
      }

      // 7. Remember the update for momentum.
      if (rejected) return;
      for (const e of entries) {
        const vs = this.variableState(e.name);
        vs.set('velocity', update.get(e.name)!);
        vs.step += 1;
      }
    });
    return applied;
  }

  /**
   * The closure's loss at the current parameters, without leaking what the closure keeps
   * (tfjs-layers' totalLossFunction keeps its metric tensors; those of this extra call are
   * disposed, so fit reports the metrics of its own call).
   */
  private evaluateClosure(f: () => tf.Scalar): tf.Scalar {
    return releaseKept(() => tf.tidy(f));
  }
}

tf.serialization.registerClass(KFAC);
// A K-FAC rebuilt by tf.loadLayersModel learns its model when the reloaded model compiles it.
installCompileHook();

export const kfacEntry = {
  name: 'kfac',
  className: KFAC.className,
  description: 'K-FAC: Kronecker-factored natural gradient for Dense and Conv2D layers (tfjs-layers models)',
  options: optionDocs(KFAC_OPTIONS),
  create: (options: Record<string, unknown>, context?: { problem?: unknown }) => {
    const problem = context?.problem as { model?: tf.LayersModel; lossKind?: KFACLossKind } | undefined;
    const opts: KFACOptions = { ...(options as KFACOptions) };
    if (opts.model === undefined && problem?.model !== undefined) opts.model = problem.model;
    if (opts.lossKind === undefined && problem?.lossKind !== undefined) opts.lossKind = problem.lossKind;
    return new KFAC(opts);
  },
};
