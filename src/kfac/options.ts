/**
 * K-FAC's options (declared once: the optimizer parses them, the CLI and the docs list them)
 * and the plain-tf layer registrations. Defaults and their reasons: optimizers/kfac.ts.
 */
import * as tf from '@tensorflow/tfjs';
import { LOSS_KINDS, type LossKind } from '../autodiff/losses.js';
import { BASE_OPTION_SPECS } from '../optim/base.js';
import { invalidOption, option, type OptionSpec, type OptionsInput } from '../optim/options.js';
import type { KFACEstimation } from './estimator.js';

export type { KFACEstimation } from './estimator.js';
export type { KroneckerBlock } from './blocks.js';

/** K-FAC's name for the project's LossKind (src/autodiff/losses.ts). */
export type KFACLossKind = LossKind;
export type KFACQuadraticModel = 'exact' | 'sampled';

export const modelOption: OptionSpec<tf.LayersModel | undefined> = {
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
  learningRate: option.learningRate(0.2, 'Step size when adaptive is false (number or schedule)'),
  momentum: option.decay(0.9, 'Momentum on the update when adaptive is false'),
  adaptive: option.boolean(
    false,
    'Learning rate and momentum from the quadratic model (every adaptivePeriod steps); false: learningRate, momentum and klClip',
  ),
  adaptivePeriod: option.number(
    1,
    'adaptive: steps between quadratic-model choices of (alpha, mu), on the steps k with (k + 1) % adaptivePeriod = 0 (and whenever none is at hand); the steps between reuse the last ones and need no curvature pass. Not a safe default: at batch 8 in model.fit it overshot on 2 of 3 seeds (docs/kfac.md)',
    period,
  ),
  damping: option.number(1e-2, 'Initial Tikhonov damping lambda', positive),
  adaptDamping: option.boolean(
    false,
    'Levenberg-Marquardt adaptation of the damping (from the quadratic model); not given: as adaptive',
  ),
  dampingInterval: option.number(5, 'Steps between damping adaptations', period),
  dampingDecay: option.number(
    0.9,
    'omega = dampingDecay^dampingInterval; with adaptDamping false, the per-step factor that brings a damping raised by a non-finite step back to damping',
    {
      min: 0,
      max: 1,
      minExclusive: true,
      maxExclusive: true,
    },
  ),
  minDamping: option.number(1e-8, 'Lower bound of the damping', positive),
  maxDamping: option.number(1e8, 'Upper bound of the damping', positive),
  statsDecay: option.decay(0.95, 'EMA decay of the Kronecker factors'),
  statsUpdatePeriod: option.number(5, 'Steps between factor statistics updates', period),
  inverseUpdatePeriod: option.number(20, 'Steps between inverse refreshes', period),
  inverseStaleness: option.number(
    0,
    'Factor inverses computed in a worker thread (src/async, Cholesky) from a damped snapshot, used up to this many steps late; 0 = computed in the step',
    { min: 0, integer: true },
  ),
  statsBatchSize: option.number(
    32,
    'Examples of each mini-batch (its first ones) whose activations and output gradients feed the factor statistics; 0: all',
    { min: 0, integer: true },
  ),
  quadraticBatchSize: option.number(
    0,
    "Examples of each mini-batch (its first ones) over which the quadratic model's curvature is taken; 0: all",
    { min: 0, integer: true },
  ),
  factorRank: option.number(
    64,
    'Low-rank-plus-tail factor inverses of this rank for factors larger than 2 factorRank (randomized K-FAC); 0: exact inverses. Not given: 64, or 0 with adaptive or inverseStaleness > 0',
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
    'adaptive: undo a step that raised the batch loss and raise the damping (kfac-jax use_step_rejection; one more loss evaluation per quadratic-model step)',
  ),
  klClip: option.number(1e-3, 'KL / norm constraint on the step when adaptive is false (0: off)', { min: 0 }),
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
