/**
 * Losses differentiable to any order (tfjs's own tf.logSoftmax and
 * tf.losses.softmaxCrossEntropy are custom-gradient ops that are not twice differentiable;
 * tf.losses.sigmoidCrossEntropy is wrong at second order in stock tfjs but exact once curvature's
 * gradient registrations are installed, and equals sigmoidCrossEntropy below; see docs/autodiff.md).
 *
 * All reduce with a mean over the batch (the first axis) as Keras does: softmax cross-entropy sums
 * over classes then averages over the batch; sigmoid cross-entropy and mean squared error average
 * over every element (mean over the last axis, then over the batch).
 */
import * as tf from '@tensorflow/tfjs';
import { assertTensor } from './calculus.js';

function assertSameShape(fn: string, labels: tf.Tensor, other: tf.Tensor, otherName: string): void {
  assertTensor(labels, 'labels', fn);
  assertTensor(other, otherName, fn);
  if (!tf.util.arraysEqual(labels.shape, other.shape)) {
    throw new Error(
      `${fn}: labels have shape [${labels.shape}] but ${otherName} have shape [${other.shape}]; they must match.`,
    );
  }
}

/** log softmax(x) = x - logSumExp(x) along `axis` (default last), twice differentiable. */
/**
 * The losses whose curvature the project knows in closed form (Gauss-Newton / Fisher factors):
 * what a problem declares, what K-FAC samples targets for and HessianFree's capture recognises.
 */
export type LossKind = 'softmax-cross-entropy' | 'sigmoid-cross-entropy' | 'mse';
export const LOSS_KINDS: readonly LossKind[] = ['softmax-cross-entropy', 'sigmoid-cross-entropy', 'mse'];

/**
 * max(x) along `axis` (kept dims) with a zero gradient. logSumExp shifts by the max only for
 * stability: its derivative through the shift cancels exactly, so differentiating it (Max's
 * gradient: Equal, Cast and products, at every order of an HVP) is wasted work.
 */
function stableShift(x: tf.Tensor, axis: number): tf.Tensor {
  const shift = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const z = args[0] as tf.Tensor;
    return { value: tf.max(z, axis, true), gradFunc: () => tf.zerosLike(z) };
  });
  return shift(x);
}

export function logSoftmax(logits: tf.Tensor, axis = -1): tf.Tensor {
  assertTensor(logits, 'logits', 'losses.logSoftmax');
  return tf.tidy(() => {
    // tf.logSumExp's arithmetic (max + log(sum(exp(x - max)))), with the max off the gradient path.
    const m = stableShift(logits, axis);
    return tf.sub(logits, tf.add(m, tf.log(tf.sum(tf.exp(tf.sub(logits, m)), axis, true))));
  });
}

/** Mean over the batch of -sum_k labels_k log softmax(logits)_k. Labels: one-hot or soft. */
export function softmaxCrossEntropy(labels: tf.Tensor, logits: tf.Tensor): tf.Scalar {
  assertSameShape('losses.softmaxCrossEntropy', labels, logits, 'logits');
  return tf.tidy(() => {
    const perExample = tf.neg(tf.sum(tf.mul(labels, logSoftmax(logits)), -1));
    return tf.mean(perExample) as tf.Scalar;
  });
}

/**
 * Mean over all elements of the binary cross-entropy of sigmoid(logits) against labels in
 * [0, 1], in the stable form max(x, 0) - x z + log(1 + exp(-|x|)).
 */
export function sigmoidCrossEntropy(labels: tf.Tensor, logits: tf.Tensor): tf.Scalar {
  assertSameShape('losses.sigmoidCrossEntropy', labels, logits, 'logits');
  return tf.tidy(() => {
    const x = logits;
    const elementwise = tf.add(tf.sub(tf.relu(x), tf.mul(x, labels)), tf.log1p(tf.exp(tf.neg(tf.abs(x)))));
    return tf.mean(elementwise) as tf.Scalar;
  });
}

/** Mean over all elements of (predictions - labels)^2. */
export function meanSquaredError(labels: tf.Tensor, predictions: tf.Tensor): tf.Scalar {
  assertSameShape('losses.meanSquaredError', labels, predictions, 'predictions');
  return tf.tidy(() => tf.mean(tf.squaredDifference(predictions, labels)) as tf.Scalar);
}
