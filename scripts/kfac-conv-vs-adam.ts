/**
 * K-FAC with KFC conv blocks vs tuned Adam on a small CNN on MNIST digits (14x14, average-pooled
 * from 28x28): full training loss after every step, through model.trainOnBatch (the model.fit
 * path: compile's optimizer, tfjs-layers' loss closure).
 *
 *   npx tsx scripts/kfac-conv-vs-adam.ts [--steps 150] [--train 1000] [--batch 100] [--seed 0]
 *
 * Model: conv2d 8 3x3 'same' relu, max pool 2, conv2d 16 3x3 stride 2 'valid' tanh, flatten,
 * dense 10 softmax; categorical cross-entropy. Adam runs at every learning rate of a log grid;
 * the best final training loss among them is the target, and the table reports the first step
 * at which each run's training loss is at or below it. K-FAC runs with its defaults (adaptive
 * step sizes from the exact quadratic model, 'fisher' statistics) and every layer has a
 * Kronecker block (a fallback would print a warning). Same initial weights and batch order for
 * every run. Wall time is reported too (2 shared cores: indicative only).
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.js';
import { loadMnist } from '../experiments/datasets.js';
import { Adam } from '../optimizers/adam.js';
import { KFAC } from '../optimizers/kfac.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const steps = arg('steps', 150);
const trainSize = arg('train', 1000);
const batch = arg('batch', 100);
const seed = arg('seed', 0);
const backend = await initBackend(process.env.CURVATURE_BACKEND ?? 'wasm');

const data = loadMnist();
const [xs, ys] = tf.tidy(() => {
  const x = tf.tensor4d(data.trainX.subarray(0, trainSize * 784), [trainSize, 28, 28, 1]);
  const small = tf.avgPool(x, 2, 2, 'valid');
  const y = tf.oneHot(tf.tensor1d(data.trainLabels.subarray(0, trainSize), 'int32'), 10).toFloat();
  return [small, y];
});

function model(): tf.Sequential {
  const init = (s: number) => tf.initializers.glorotUniform({ seed: seed * 10 + s });
  return tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: [14, 14, 1],
        filters: 8,
        kernelSize: 3,
        padding: 'same',
        activation: 'relu',
        kernelInitializer: init(1),
      }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({
        filters: 16,
        kernelSize: 3,
        strides: 2,
        padding: 'valid',
        activation: 'tanh',
        kernelInitializer: init(2),
      }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: init(3) }),
    ],
  });
}

interface Curve {
  label: string;
  losses: number[];
  seconds: number;
}

async function run(label: string, make: (m: tf.LayersModel) => tf.Optimizer): Promise<Curve> {
  const m = model();
  const opt = make(m);
  m.compile({ optimizer: opt, loss: 'categoricalCrossentropy' });
  const losses: number[] = [];
  const full = (): number => tf.tidy(() => (m.evaluate(xs, ys, { batchSize: trainSize }) as tf.Scalar).dataSync()[0]!);
  losses.push(full());
  let seconds = 0;
  const batches = trainSize / batch;
  for (let k = 0; k < steps; k++) {
    const b = k % batches;
    const [xb, yb] = tf.tidy(() => [
      tf.slice(xs, [b * batch, 0, 0, 0], [batch, 14, 14, 1]),
      tf.slice(ys, [b * batch, 0], [batch, 10]),
    ]);
    const t0 = performance.now();
    await m.trainOnBatch(xb, yb);
    seconds += (performance.now() - t0) / 1000;
    tf.dispose([xb, yb]);
    losses.push(full());
  }
  if (opt.getClassName() === KFAC.className) {
    const k = opt as KFAC;
    console.log(
      `${label}: blocks ${k.blocks.map((bl) => `${bl.name}:${bl.constructor.name}`).join(', ')}, damping ${k.damping.toExponential(2)}, rejected ${k.rejectedSteps}`,
    );
  }
  m.dispose();
  opt.dispose();
  return { label, losses, seconds };
}

const curves: Curve[] = [];
for (const lr of [1e-3, 3e-3, 1e-2, 3e-2, 1e-1])
  curves.push(await run(`Adam lr ${lr}`, () => new Adam({ learningRate: lr })));
const adam = curves.reduce((p, c) => (c.losses.at(-1)! < p.losses.at(-1)! ? c : p));
const target = adam.losses.at(-1)!;
curves.push(await run('KFAC defaults', (m) => new KFAC({ model: m })));
curves.push(await run('KFAC FAST_SETTINGS', (m) => new KFAC({ model: m, ...KFAC.FAST_SETTINGS })));

const reach = (c: Curve): number | undefined => {
  const i = c.losses.findIndex((l) => l <= target);
  return i < 0 ? undefined : i;
};
console.log(`backend ${backend}; MNIST ${trainSize} train, 14x14, batch ${batch}, ${steps} steps, seed ${seed}`);
console.log(`target: best Adam final training loss ${target.toFixed(4)} (${adam.label})`);
console.log('run                 | loss@25 | loss@50 | loss@100 | final  | steps to target | s/step');
for (const c of curves) {
  const at = (k: number) => c.losses[Math.min(k, c.losses.length - 1)]!.toFixed(4);
  console.log(
    `${c.label.padEnd(19)} | ${at(25)}  | ${at(50)}  | ${at(100).padEnd(7)}  | ${at(steps)} | ${String(reach(c) ?? '-').padStart(15)} | ${(c.seconds / steps).toFixed(3)}`,
  );
}
tf.dispose([xs, ys]);
