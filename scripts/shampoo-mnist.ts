/**
 * Shampoo (Adam grafting) vs Adam on the harness's mlp-mnist problem (784-128-10 relu,
 * softmax cross-entropy): how many steps Shampoo needs to reach the full-training-set loss
 * Adam has at step N. Both start from the same seeded weights and see the same seeded
 * mini-batches; the loss is evaluated on the whole training set every `every` steps.
 *
 *   npx tsx scripts/shampoo-mnist.ts [N=300] [every=10] [learningRate=1e-3]
 *
 * Pass criterion of issue 8: Shampoo reaches Adam's loss at step N in <= N / 2 steps.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.js';
import { problems } from '../experiments/index.js';
import { Rng } from '../src/harness/rng.js';
import { Adam } from '../optimizers/adam.js';
import { Shampoo } from '../optimizers/shampoo.js';

const N = Number(process.argv[2] ?? 300);
const every = Number(process.argv[3] ?? 10);
const backend = await initBackend(process.env.CURVATURE_BACKEND ?? 'wasm');
const batchSize = 128;
const lr = Number(process.argv[4] ?? 1e-3);

interface Curve {
  steps: number[];
  losses: number[];
  seconds: number;
}

function train(make: () => tf.Optimizer, steps: number): Curve {
  const problem = problems.get('mlp-mnist', { seed: 1, batchSize });
  const data = problem.data!;
  const rng = new Rng(7);
  const opt = make();
  const curve: Curve = { steps: [], losses: [], seconds: 0 };
  const fullLoss = () => tf.tidy(() => problem.loss().dataSync()[0]!);
  const t0 = performance.now();
  for (let s = 1; s <= steps; s++) {
    const idx = new Int32Array(batchSize);
    for (let i = 0; i < batchSize; i++) idx[i] = Math.floor(rng.uniform() * data.numTrain);
    tf.tidy(() => {
      const batch = data.batch(idx);
      opt.minimize(() => problem.loss(batch), false, problem.params);
    });
    if (s % every === 0) {
      curve.steps.push(s);
      curve.losses.push(fullLoss());
    }
  }
  curve.seconds = (performance.now() - t0) / 1000;
  opt.dispose();
  problem.dispose();
  return curve;
}

const adam = train(() => new Adam({ learningRate: lr }), N);
const target = adam.losses[adam.losses.length - 1]!;
const shampoo = train(
  () =>
    new Shampoo({
      learningRate: lr,
      grafting: 'adam',
      graftingBeta2: 0.999,
      graftingEpsilon: 1e-8,
      beta1: 0.9,
      beta2: 0.999,
      preconditionFrequency: 20,
      maxPreconditionerDim: 128,
      epsilon: 1e-8,
      epsilonMode: 'relative',
    }),
  N,
);
const reached = shampoo.steps.find((_, i) => shampoo.losses[i]! <= target);

const fmt = (c: Curve) => c.steps.filter((s) => s % (every * 5) === 0).map((s) => `${s}:${c.losses[c.steps.indexOf(s)]!.toFixed(4)}`).join(' ');
console.log(`backend ${backend}; mlp-mnist 784-128-10 relu, batch ${batchSize}, learning rate ${lr}, ${N} steps`);
console.log(`Adam    full-train loss  ${fmt(adam)}   (${adam.seconds.toFixed(1)} s)`);
console.log(`Shampoo full-train loss  ${fmt(shampoo)}   (${shampoo.seconds.toFixed(1)} s)`);
console.log(`Adam's loss at step ${N}: ${target.toFixed(4)}`);
console.log(
  reached === undefined
    ? `Shampoo did not reach it within ${N} steps: FAIL`
    : `Shampoo reached it at step ${reached} (${((reached / N) * 100).toFixed(0)}% of N): ${reached <= N / 2 ? 'PASS' : 'FAIL'} (need <= ${N / 2})`,
);
