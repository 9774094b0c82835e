/**
 * Muon step cost vs Adam (issue 17 target: ratio <= 1.3): time per `minimize` step (forward,
 * gradient, update) on first-order.ts's 784-128-10 tanh MLP, at batch 256 (the bench's standard)
 * and 1024 (Newton-Schulz costs the same per step; the gradient grows with the batch). The two
 * optimizers run in alternating blocks in one process, so the ratio is robust to machine load.
 * Muon's extra work per step: 5 Newton-Schulz iterations on each kernel, each 2 m^2 n + m^3
 * multiply-adds (m x n = 128 x 784 and 10 x 128), i.e. ~140 M for the first kernel against
 * ~77 M for the forward and backward pass at batch 256.
 */
import * as tf from '@tensorflow/tfjs';
import { Adam, Muon, newtonSchulz } from '../../optimizers/index.js';
import { interleavedBest, makeNet, syntheticBatch } from './first-order.js';

const ROUNDS = 8;
const NS_COEFFS: [number, number, number] = [3.4445, -4.775, 2.0315];

/** Fastest mean of `reps` calls over `rounds` rounds (after one warm-up call). */
function bestMs(f: () => void, reps = 10, rounds = 6): number {
  f();
  let best = Infinity;
  for (let k = 0; k < rounds; k++) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) f();
    best = Math.min(best, (performance.now() - t0) / reps);
  }
  return best;
}

/**
 * Where a Muon step's time goes at batch 256, with multiply-add counts: the gradient alone, the
 * Newton-Schulz map on each kernel, and the pieces of one NS iteration on the 784 x 128 kernel
 * (iterated as 128 x 784): the explicit transpose, A = X X^T, B = aI + bA + cA^2, B X.
 */
function breakdown(x: tf.Tensor2D, labels: tf.Tensor2D): string[] {
  const batch = x.shape[0];
  const net = makeNet(x, labels, 2);
  const read = (t: tf.Tensor): void => void t.dataSync();
  const grad = bestMs(() => {
    const { value, grads } = tf.variableGrads(net.loss, net.vars);
    read(grads[net.vars[0]!.name]!);
    tf.dispose([value, ...Object.values(grads)]);
  });
  const m1 = tf.randomNormal([784, 128], 0, 1, 'float32', 1) as tf.Tensor2D;
  const m2 = tf.randomNormal([128, 10], 0, 1, 'float32', 2) as tf.Tensor2D;
  const ns1 = bestMs(() => tf.tidy(() => read(newtonSchulz(m1, NS_COEFFS, 5, 1e-8))));
  const ns2 = bestMs(() => tf.tidy(() => read(newtonSchulz(m2, NS_COEFFS, 5, 1e-8))));
  const X = tf.randomNormal([128, 784], 0, 0.01, 'float32', 3) as tf.Tensor2D;
  const Xt = tf.transpose(X);
  const A = tf.tidy(() => tf.matMul(X, Xt));
  const B = tf.tidy(() => tf.add(tf.add(tf.eye(128), tf.mul(A, -4.775)), tf.mul(tf.matMul(A, A), 2.0315)));
  const tT = bestMs(() => tf.tidy(() => read(tf.transpose(X))));
  const tA = bestMs(() => tf.tidy(() => read(tf.matMul(X, Xt))));
  const tB = bestMs(() =>
    tf.tidy(() => read(tf.add(tf.add(tf.eye(128), tf.mul(A, -4.775)), tf.mul(tf.matMul(A, A), 2.0315)))),
  );
  const tBX = bestMs(() => tf.tidy(() => read(tf.matMul(B, X))));
  tf.dispose([...net.vars, m1, m2, X, Xt, A, B]);
  const M = 1e6;
  // Gradient: forward x W1 (B 784 128) and h W2 (B 128 10); backward dW1, dW2, dh (x needs none).
  const gradMacs = (2 * batch * 784 * 128 + 3 * batch * 128 * 10) / M;
  const ns1Macs = (5 * (2 * 128 * 128 * 784 + 128 ** 3)) / M;
  const ns2Macs = (5 * (2 * 10 * 10 * 128 + 10 ** 3)) / M;
  const rate = (macs: number, ms: number) => ((2 * macs) / ms).toFixed(1);
  return [
    `Where the time goes at batch ${batch} (fastest of 6 rounds of 10 calls each; GFLOP/s = 2 x multiply-adds / time):`,
    '',
    '| piece | ms | M multiply-adds | GFLOP/s |',
    '|---|---:|---:|---:|',
    `| gradient (forward + backward) | ${grad.toFixed(2)} | ${gradMacs.toFixed(1)} | ${rate(gradMacs, grad)} |`,
    `| NS, 784 x 128 kernel (5 steps) | ${ns1.toFixed(2)} | ${ns1Macs.toFixed(1)} | ${rate(ns1Macs, ns1)} |`,
    `| NS, 128 x 10 kernel (5 steps) | ${ns2.toFixed(2)} | ${ns2Macs.toFixed(2)} | ${rate(ns2Macs, ns2)} |`,
    `| one NS step on 128 x 784: transpose X | ${tT.toFixed(2)} | 0 | - |`,
    `| one NS step: A = X X^T | ${tA.toFixed(2)} | ${((128 * 128 * 784) / M).toFixed(1)} | ${rate((128 * 128 * 784) / M, tA)} |`,
    `| one NS step: B = aI + bA + cA^2 | ${tB.toFixed(2)} | ${(128 ** 3 / M).toFixed(1)} | ${rate(128 ** 3 / M, tB)} |`,
    `| one NS step: B X | ${tBX.toFixed(2)} | ${((128 * 128 * 784) / M).toFixed(1)} | ${rate((128 * 128 * 784) / M, tBX)} |`,
    '',
    `FLOP floor: Newton-Schulz adds ${(ns1Macs + ns2Macs).toFixed(0)} M multiply-adds to a gradient of ` +
      `${gradMacs.toFixed(0)} M, so at equal throughput a Muon step costs at least ` +
      `${(1 + (ns1Macs + ns2Macs) / gradMacs).toFixed(2)}x an Adam step at batch ${batch} ` +
      `(1.3x needs batch >= ${Math.ceil((ns1Macs + ns2Macs) / (0.3 * (gradMacs / batch)))}).`,
    '',
  ];
}

export async function run(): Promise<string> {
  const rows: string[] = [];
  let detail: string[] = [];
  for (const batch of [256, 1024]) {
    const [x, labels] = syntheticBatch(batch);
    const netA = makeNet(x, labels, 2);
    const netB = makeNet(x, labels, 2);
    const a = new Muon({ learningRate: 0.02, adamLearningRate: 1e-3 });
    const b = new Adam({ learningRate: 1e-3 });
    const [ma, mb] = interleavedBest(a, netA, b, netB, ROUNDS);
    rows.push(`| ${batch} | ${ma.toFixed(2)} | ${mb.toFixed(2)} | ${(ma / mb).toFixed(3)} |`);
    if (batch === 256) detail = breakdown(x, labels);
    a.dispose();
    b.dispose();
    tf.dispose([...netA.vars, ...netB.vars, x, labels]);
  }
  return [
    '## Muon step cost vs Adam',
    '',
    `Time per \`minimize\` step (forward + gradient + update), 784-128-10 tanh MLP, softmax cross-entropy, ` +
      `backend ${tf.getBackend()}; Muon at its defaults (5 Newton-Schulz steps on both kernels, AdamW on the ` +
      `biases); fastest of ${ROUNDS} alternating blocks. Target: ratio <= 1.3.`,
    '',
    '| batch | Muon ms/step | Adam ms/step | ratio |',
    '|---:|---:|---:|---:|',
    ...rows,
    '',
    ...detail,
  ].join('\n');
}
