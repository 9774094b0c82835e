/**
 * K-FAC's loss objects (tensorflow/kfac ops/loss_functions.py `NegativeLogProbLoss`, kfac-jax
 * _src/loss_functions.py): a loss over the logits z that is the negative log-likelihood of an
 * output distribution knows
 *
 *   sampleCotangent  the gradient dL/dz at a target drawn from the model's own distribution
 *                    (`sample` + grad of the loss: the Fisher's sampled factor,
 *                    E[g g^T] = the loss's Gauss-Newton matrix H_L);
 *   fisherRootColumns the d columns c_k of a square root of H_L (sum_k c_k c_k^T = H_L per
 *                    example; kfac-jax's `multiply_fisher_factor` applied to the unit vectors).
 *
 * All cotangents are scaled like the gradient of tfjs's batch-mean loss (1/n, and 1/d for the
 * losses that also average over outputs), so the factor statistics multiply by n.
 *
 *   softmax cross-entropy  H_L = diag(p) - p p^T,  y ~ Cat(p):  g = (p - e_y) / n,
 *                          c_k = sqrt(p_k) (e_k - p) / n
 *   sigmoid cross-entropy  H_L = diag(s (1 - s)) / d,  y ~ Bernoulli(s):  g = (s - y) / (n sqrt d),
 *                          c_k = sqrt(s_k (1 - s_k)) e_k / (n sqrt d)
 *   mean squared error     H_L = 2 I / d,  g = sqrt(2/d) eps / n with eps ~ N(0, I),
 *                          c_k = sqrt(2/d) e_k / n
 */
import * as tf from '@tensorflow/tfjs';
import type { LossKind } from '../autodiff/losses.js';

export interface NegativeLogProbLoss {
  readonly kind: LossKind;
  /** dL/dz at one target sampled from the model (seeded), [n, d], scaled like the batch-mean loss. */
  sampleCotangent(logits: tf.Tensor2D, seed: number): tf.Tensor2D;
  /** The d columns of a square root of the loss's Hessian in the logits, each [n, d]. */
  fisherRootColumns(logits: tf.Tensor2D): tf.Tensor2D[];
}

/** d identity rows as [d, 1, d] (column k of the root is e_k times a per-example factor). */
function unitRows(d: number): tf.Tensor {
  return tf.reshape(tf.eye(d), [d, 1, d]);
}

class SoftmaxCrossEntropyLoss implements NegativeLogProbLoss {
  readonly kind = 'softmax-cross-entropy' as const;

  sampleCotangent(logits: tf.Tensor2D, seed: number): tf.Tensor2D {
    const [n, d] = logits.shape;
    const p = tf.softmax(logits);
    // Inverse-CDF sampling, y = #{k : cdf_k < u}: tf.multinomial with a seed reseeds its
    // generator for every row on the cpu backend (tfjs-backend-cpu Multinomial), so every
    // example of a batch drew the class at the same quantile.
    const u = tf.randomUniform([n, 1], 0, 1, 'float32', seed);
    const below = tf.sum(tf.cast(tf.less(tf.cumsum(p, 1), u), 'int32'), 1);
    const y = tf.oneHot(tf.cast(tf.minimum(below, d - 1), 'int32') as tf.Tensor1D, d);
    return tf.div(tf.sub(p, y), n) as tf.Tensor2D;
  }

  fisherRootColumns(logits: tf.Tensor2D): tf.Tensor2D[] {
    const [n, d] = logits.shape;
    const p = tf.softmax(logits);
    // Column k: sqrt(p_k) (e_k - p) / n, all d at once as [d, n, d].
    const root = tf.expandDims(tf.transpose(tf.sqrt(p)), 2);
    return tf.unstack(tf.div(tf.mul(root, tf.sub(unitRows(d), tf.expandDims(p, 0))), n)) as tf.Tensor2D[];
  }
}

class SigmoidCrossEntropyLoss implements NegativeLogProbLoss {
  readonly kind = 'sigmoid-cross-entropy' as const;

  sampleCotangent(logits: tf.Tensor2D, seed: number): tf.Tensor2D {
    const [n, d] = logits.shape;
    const s = tf.sigmoid(logits);
    const y = tf.cast(tf.less(tf.randomUniform([n, d], 0, 1, 'float32', seed), s), 'float32');
    return tf.mul(tf.sub(s, y), Math.sqrt(1 / d) / n) as tf.Tensor2D;
  }

  fisherRootColumns(logits: tf.Tensor2D): tf.Tensor2D[] {
    const [n, d] = logits.shape;
    const s = tf.sigmoid(logits);
    // Column k: sqrt(s_k (1 - s_k)) e_k / (n sqrt d).
    const sd = tf.expandDims(tf.transpose(tf.sqrt(tf.mul(s, tf.sub(1, s)))), 2);
    return tf.unstack(tf.mul(tf.mul(sd, unitRows(d)), Math.sqrt(1 / d) / n)) as tf.Tensor2D[];
  }
}

class SquaredErrorLoss implements NegativeLogProbLoss {
  readonly kind = 'mse' as const;

  sampleCotangent(logits: tf.Tensor2D, seed: number): tf.Tensor2D {
    const [n, d] = logits.shape;
    return tf.mul(tf.randomNormal([n, d], 0, 1, 'float32', seed), Math.sqrt(2 / d) / n) as tf.Tensor2D;
  }

  fisherRootColumns(logits: tf.Tensor2D): tf.Tensor2D[] {
    const [n, d] = logits.shape;
    return tf.unstack(tf.mul(tf.tile(unitRows(d), [1, n, 1]), Math.sqrt(2 / d) / n)) as tf.Tensor2D[];
  }
}

const LOSSES: Record<LossKind, NegativeLogProbLoss> = {
  'softmax-cross-entropy': new SoftmaxCrossEntropyLoss(),
  'sigmoid-cross-entropy': new SigmoidCrossEntropyLoss(),
  mse: new SquaredErrorLoss(),
};

/** The loss object of a LossKind. */
export function negativeLogProbLoss(kind: LossKind): NegativeLogProbLoss {
  return LOSSES[kind];
}

/**
 * The Keras losses (as tfjs-layers spells them, case and underscores ignored) that are the
 * negative log-likelihood of a known output distribution, with the output activation that makes
 * them so.
 */
const KERAS_LOSSES: Record<string, { kind: LossKind; activations: readonly (string | undefined)[] }> = {
  categoricalcrossentropy: { kind: 'softmax-cross-entropy', activations: ['softmax'] },
  sparsecategoricalcrossentropy: { kind: 'softmax-cross-entropy', activations: ['softmax'] },
  binarycrossentropy: { kind: 'sigmoid-cross-entropy', activations: ['sigmoid'] },
  meansquarederror: { kind: 'mse', activations: ['linear', undefined] },
  mse: { kind: 'mse', activations: ['linear', undefined] },
};

/**
 * The LossKind of a compiled tfjs-layers model: its single loss name (model.loss) with the
 * activation of its last Dense layer; undefined when they are not a known pair.
 */
export function lossKindOfCompiledModel(loss: unknown, outputActivation: string | undefined): LossKind | undefined {
  const name = typeof loss === 'string' ? loss : Array.isArray(loss) && loss.length === 1 ? loss[0] : undefined;
  if (typeof name !== 'string') return undefined;
  const known = KERAS_LOSSES[name.toLowerCase().replace(/_/g, '')];
  return known !== undefined && known.activations.includes(outputActivation) ? known.kind : undefined;
}
