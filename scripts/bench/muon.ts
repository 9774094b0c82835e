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
import { Adam, Muon } from '../../optimizers/index.js';
import { interleavedBest, makeNet, seeded } from './first-order.js';

const ROUNDS = 8;

export async function run(): Promise<string> {
  const rows: string[] = [];
  for (const batch of [256, 1024]) {
    const r = seeded(1);
    const x = tf.tensor2d(
      Float32Array.from({ length: batch * 784 }, () => r() + 0.5),
      [batch, 784],
    );
    const labels = tf
      .oneHot(
        tf.tensor1d(
          Int32Array.from({ length: batch }, (_, i) => i % 10),
          'int32',
        ),
        10,
      )
      .toFloat() as tf.Tensor2D;
    const netA = makeNet(x, labels, 2);
    const netB = makeNet(x, labels, 2);
    const a = new Muon({ learningRate: 0.02, adamLearningRate: 1e-3 });
    const b = new Adam({ learningRate: 1e-3 });
    const [ma, mb] = interleavedBest(a, netA, b, netB, ROUNDS);
    rows.push(`| ${batch} | ${ma.toFixed(2)} | ${mb.toFixed(2)} | ${(ma / mb).toFixed(3)} |`);
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
  ].join('\n');
}
