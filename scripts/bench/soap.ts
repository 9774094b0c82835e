/**
 * SOAP step cost vs Adam (issue 17 target: ratio <= 1.5 at the default refresh period): time per
 * `minimize` step (forward, gradient, update) on first-order.ts's 784-128-10 tanh MLP at batch 256
 * and 1024, SOAP at its defaults (preconditionFrequency 10, maxPreconditionDim 10000: factors
 * 784 x 784 and 128 x 128 on the first kernel, 128 x 128 and 10 x 10 on the second, biases
 * unfactored) and with maxPreconditionDim 512 (the 784 side unfactored). Blocks of 20 steps
 * (two refreshes each) alternate with Adam's in one process; fastest block of each.
 * SOAP's extra work per step for an m x n kernel: statistics m^2 n + m n^2, projections
 * 2 (m^2 n + m n^2) multiply-adds (784 x 128: ~275 M, against ~77 M for the forward and backward
 * pass at batch 256), plus every 10 steps GG Q (2 d^3) and a Householder QR (8/3 d^3) per factor
 * in float64 JavaScript.
 */
import * as tf from '@tensorflow/tfjs';
import { Adam, SOAP } from '../../optimizers/index.js';
import { interleavedBest, makeNet, syntheticBatch } from './first-order.js';

const ROUNDS = 4;
const BLOCK = 20;

/**
 * Multiply-adds a SOAP step adds to the gradient, per kernel m x n with factors on the sides
 * <= maxDim: statistics and the two projections (float32, every step), and the refresh every 10
 * steps (float64: GG Q, d^3, and Cholesky-QR2, ~4.3 d^3 in products, per factor d).
 */
function floor(): string[] {
  const kernels: [number, number][] = [
    [784, 128],
    [128, 10],
  ];
  const extra = (maxDim: number): number => {
    let macs = 0;
    for (const [m, n] of kernels) {
      for (const [d, other] of [
        [m, n],
        [n, m],
      ] as const) {
        if (d > maxDim) continue;
        macs += 3 * d * d * other + (5.3 * d ** 3) / 10;
      }
    }
    return macs / 1e6;
  };
  const grad = (batch: number): number => (2 * batch * 784 * 128 + 3 * batch * 128 * 10) / 1e6;
  const line = (label: string, maxDim: number): string => {
    const e = extra(maxDim);
    return (
      `- ${label}: ${e.toFixed(0)} M multiply-adds a step on top of the gradient's ${grad(256).toFixed(0)} M ` +
      `(batch 256) / ${grad(1024).toFixed(0)} M (batch 1024): at equal throughput at least ` +
      `${(1 + e / grad(256)).toFixed(2)}x / ${(1 + e / grad(1024)).toFixed(2)}x an Adam step; ` +
      `1.5x needs batch >= ${Math.ceil(e / (0.5 * grad(1)))}.`
    );
  };
  return ['FLOP floor:', '', line('defaults', 10000), line('maxPreconditionDim 512', 512)];
}

export async function run(): Promise<string> {
  const rows: string[] = [];
  const configs: [string, Record<string, unknown>][] = [
    ['defaults', {}],
    ['maxPreconditionDim 512', { maxPreconditionDim: 512 }],
  ];
  for (const batch of [256, 1024]) {
    const [x, labels] = syntheticBatch(batch);
    for (const [label, options] of configs) {
      const netA = makeNet(x, labels, 2);
      const netB = makeNet(x, labels, 2);
      const a = new SOAP({ learningRate: 3e-3, ...options });
      const b = new Adam({ learningRate: 1e-3 });
      // One warm-up block each (first eigh, kernels, state), then alternating blocks of BLOCK steps.
      const [ma, mb] = interleavedBest(a, netA, b, netB, ROUNDS, BLOCK);
      rows.push(`| ${batch} | ${label} | ${ma.toFixed(2)} | ${mb.toFixed(2)} | ${(ma / mb).toFixed(2)} |`);
      a.dispose();
      b.dispose();
      tf.dispose([...netA.vars, ...netB.vars]);
    }
    tf.dispose([x, labels]);
  }
  return [
    '## SOAP step cost vs Adam',
    '',
    `Time per \`minimize\` step (forward + gradient + update), 784-128-10 tanh MLP, softmax cross-entropy, ` +
      `backend ${tf.getBackend()}; SOAP refreshing its eigenbases every 10 steps (default), averaged over ` +
      `blocks of ${BLOCK} steps; fastest of ${ROUNDS} alternating blocks. Target: ratio <= 1.5.`,
    '',
    '| batch | SOAP | SOAP ms/step | Adam ms/step | ratio |',
    '|---:|---|---:|---:|---:|',
    ...rows,
    '',
    ...floor(),
    '',
  ].join('\n');
}
