/**
 * Metrics of the network problems. The losses themselves are src/autodiff's `losses`
 * (differentiable to any order; means over the batch).
 */
import * as tf from '@tensorflow/tfjs';

/** Fraction of rows whose arg-max of logits equals the arg-max of the one-hot labels. */
export function accuracy(labels: tf.Tensor, logits: tf.Tensor): number {
  return tf.tidy(() => {
    const eq = tf.equal(tf.argMax(logits, 1), tf.argMax(labels, 1));
    return tf.mean(tf.cast(eq, 'float32')).dataSync()[0];
  });
}
