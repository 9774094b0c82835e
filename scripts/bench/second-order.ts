/**
 * Bench section: HessianFree step cost in gradient-evaluation units on a 784-128-10 tanh MLP,
 * batch 256 (softmax cross-entropy), all measured in one run on the active backend.
 * Units: one gradient = one forward + backward of the loss (tf.variableGrads).
 */
import * as tf from '@tensorflow/tfjs';
import { ggnvpVars, hvpVars, losses } from '../../src/autodiff/index.js';
import { HessianFree } from '../../optimizers/hessian-free.js';

function timeIt(fn: () => void, reps: number): number {
  fn(); // warm-up (kernel compilation, allocations)
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  return (performance.now() - t0) / reps;
}

export async function run(): Promise<string> {
  const batch = 256;
  const x = tf.randomUniform([batch, 784], 0, 1, 'float32', 1);
  const labels = tf.oneHot(tf.randomUniform([batch], 0, 10, 'int32', 2), 10).toFloat();
  const W1 = tf.variable(tf.randomNormal([784, 128], 0, 1 / Math.sqrt(784), 'float32', 3));
  const b1 = tf.variable(tf.zeros([128]));
  const W2 = tf.variable(tf.randomNormal([128, 10], 0, 1 / Math.sqrt(128), 'float32', 4));
  const b2 = tf.variable(tf.zeros([10]));
  const vars = [W1, b1, W2, b2];
  const outputs = () => tf.add(tf.matMul(tf.tanh(tf.add(tf.matMul(x, W1), b1)), W2), b2);
  const lossFromOutputs = (z: tf.Tensor) => losses.softmaxCrossEntropy(labels, z);
  const loss = () => lossFromOutputs(outputs());
  const vs = vars.map((v, i) => tf.randomNormal(v.shape, 0, 1, 'float32', 10 + i));

  const sync = (ts: tf.Tensor[]) => {
    for (const t of ts) t.dataSync();
    tf.dispose(ts);
  };
  const reps = 10;
  const tLoss = timeIt(() => sync([tf.tidy(loss)]), reps);
  const tGrad = timeIt(() => {
    const { value, grads } = tf.variableGrads(loss, vars);
    sync([value, ...Object.values(grads)]);
  }, reps);
  const tGgn = timeIt(() => sync(ggnvpVars(outputs, lossFromOutputs, vars, vs)), reps);
  const tHvp = timeIt(() => sync(hvpVars(loss, vars, vs)), reps);

  const rows: string[] = [];
  for (const curvature of ['ggn', 'hessian'] as const) {
    const snapshot = vars.map((v) => tf.clone(v));
    const opt = new HessianFree({ curvature, maxIterations: 50 });
    const steps = 3;
    let ms = 0;
    let cg = 0;
    let products = 0;
    let lossEvals = 0;
    for (let s = 0; s < steps; s++) {
      if (curvature === 'ggn') opt.setCurvatureFunctions({ outputs, lossFromOutputs });
      const t0 = performance.now();
      const c = opt.minimize(loss, true, vars);
      c?.dataSync();
      ms += performance.now() - t0;
      c?.dispose();
      cg += opt.lastStep!.cgIterations;
      products += opt.lastStep!.hvpEvals;
      lossEvals += opt.lastStep!.lossEvals;
    }
    opt.dispose();
    vars.forEach((v, i) => v.assign(snapshot[i]!));
    tf.dispose(snapshot);
    rows.push(
      `| HessianFree step, ${curvature} (CG cap 50) | ${(ms / steps).toFixed(0)} | ${(ms / steps / tGrad).toFixed(1)} | ` +
        `${(cg / steps).toFixed(1)} CG iterations, ${(products / steps).toFixed(1)} products, ${(lossEvals / steps).toFixed(1)} loss evaluations per step |`,
    );
  }
  tf.dispose([x, labels, ...vars, ...vs]);
  return [
    '## Second-order: HessianFree step cost',
    '',
    `784-128-10 tanh MLP, batch ${batch}, softmax cross-entropy; backend ${tf.getBackend()}; mean of ${reps} after a warm-up (steps: mean of 3 from the same start).`,
    '',
    '| operation | ms | gradient units | notes |',
    '|---|---|---|---|',
    `| loss (forward) | ${tLoss.toFixed(1)} | ${(tLoss / tGrad).toFixed(2)} | |`,
    `| gradient | ${tGrad.toFixed(1)} | 1.00 | |`,
    `| Gauss-Newton-vector product | ${tGgn.toFixed(1)} | ${(tGgn / tGrad).toFixed(2)} | jvp (2 reverse passes) + loss HVP + vjp |`,
    `| Hessian-vector product | ${tHvp.toFixed(1)} | ${(tHvp / tGrad).toFixed(2)} | nested reverse mode |`,
    ...rows,
    '',
  ].join('\n');
}
