/**
 * Re-evaluating a loss closure inside one optimizer step.
 *
 * Second-order methods call the user's loss closure many times per step (products, CG
 * backtracking, line search). tfjs-layers' training closure `tf.keep`s a metric tensor on
 * every call and returns only the first call's metrics; the others would leak
 * (docs: /work/shared/notes/tfjs-facts.md). `releaseKept(fn)` runs fn, records every tensor
 * kept meanwhile, and afterwards disposes those that are still alive and not part of fn's
 * result. The engine's own kept clones (tensors saved for backprop) are already released by
 * then, because fn is a whole product or evaluation, never half a gradient computation.
 *
 * The first closure call of a step (the gradient) must NOT be wrapped: its metrics are the
 * ones tfjs-layers reports.
 */
import * as tf from '@tensorflow/tfjs';
import { releaseKept, trainableVariables } from '../tfjs-internals/engine.js';

export { releaseKept };

/** Evaluate the closure's loss as a JS number, leak-free (for line searches). */
export function lossValue(f: () => tf.Scalar): number {
  return releaseKept(() => {
    const v = tf.tidy(() => f());
    const x = v.dataSync()[0]!;
    v.dispose();
    return x;
  });
}

/** The closure with a clear error when it does not return a scalar. */
export function scalarClosure(owner: string, f: () => tf.Scalar): () => tf.Scalar {
  return () => {
    const y = f() as unknown;
    if (!(y instanceof tf.Tensor)) {
      throw new TypeError(`${owner}: the loss closure must return a scalar tf.Tensor, got ${typeof y}.`);
    }
    if (y.rank !== 0) {
      throw new Error(
        `${owner}: the loss closure must return a scalar (rank 0) but returned shape [${y.shape}]; ` +
          'reduce it (e.g. tf.mean) before calling minimize.',
      );
    }
    return y as tf.Scalar;
  };
}

/**
 * The variables a step updates: varList, or every trainable variable the closure reads.
 * `variableGrads` replaces tf.variableGrads (e.g. a capturing gradient pass).
 */
export function valueAndGradients(
  f: () => tf.Scalar,
  varList: tf.Variable[] | undefined,
  variableGrads: (
    f: () => tf.Scalar,
    varList?: tf.Variable[],
  ) => { value: tf.Scalar; grads: tf.NamedTensorMap } = tf.variableGrads,
): { value: tf.Scalar; vars: tf.Variable[]; grads: tf.Tensor[] } {
  const { value, grads } = variableGrads(f, varList);
  const candidates = varList ?? trainableVariables();
  const vars: tf.Variable[] = [];
  const gs: tf.Tensor[] = [];
  for (const v of candidates) {
    const g = grads[v.name];
    if (g != null) {
      vars.push(v);
      gs.push(g);
    }
  }
  return { value, vars, grads: gs };
}
