/**
 * K-FAC's amortised step time relative to SGD on a 784-256-10 relu MLP (tfjs-layers model),
 * batch 256, softmax cross-entropy (wasm by default). One step = `minimize` on the model's loss
 * (what `model.fit` calls per batch): gradient, factor statistics, inverses every
 * `inverseUpdatePeriod` steps (averaged over whole periods), preconditioning and update.
 * Variants interleaved in rounds so that load from other processes hits them alike.
 */
import * as tf from '@tensorflow/tfjs';
import { losses } from '../../src/autodiff/index.js';
import { SGD } from '../../optimizers/sgd.js';
import { KFAC, type KFACOptions } from '../../optimizers/kfac.js';

interface Variant {
  name: string;
  options?: KFACOptions;
}

export async function run(): Promise<string> {
  const seed = 1;
  const X = tf.randomNormal([256, 784], 0, 1, 'float32', seed);
  const Y = tf.oneHot(tf.randomUniform([256], 0, 10, 'int32', seed + 1), 10).toFloat();
  const variants: Variant[] = [
    { name: 'SGD' },
    { name: 'K-FAC defaults (fisher, adaptive, stats every step, inverses every 5)', options: {} },
    { name: 'K-FAC fixed lr/momentum, no damping adaptation', options: { adaptive: false, adaptDamping: false } },
    {
      name: 'K-FAC fixed lr, stats every 5 steps, inverses every 10',
      options: { adaptive: false, adaptDamping: false, statsUpdatePeriod: 5, inverseUpdatePeriod: 10 },
    },
    { name: 'K-FAC empirical, adaptive', options: { estimation: 'empirical' } },
  ];
  const stepsPerRound = 10;

  const state = variants.map((v, i) => {
    const model = tf.sequential();
    model.add(tf.layers.dense({ units: 256, activation: 'relu', inputShape: [784], kernelInitializer: tf.initializers.glorotUniform({ seed: 10 + i }) }));
    model.add(tf.layers.dense({ units: 10, kernelInitializer: tf.initializers.glorotUniform({ seed: 20 + i }) }));
    const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const opt: tf.Optimizer =
      v.options === undefined
        ? new SGD({ learningRate: 0.01 })
        : new KFAC({ model, lossKind: 'softmax-cross-entropy', ...v.options });
    const loss = (): tf.Scalar => losses.softmaxCrossEntropy(Y, model.apply(X, { training: true }) as tf.Tensor);
    return { v, model, vars, opt, loss, times: [] as number[] };
  });

  const round = (s: (typeof state)[number]): number => {
    const t0 = performance.now();
    for (let i = 0; i < stepsPerRound; i++) tf.tidy(() => void s.opt.minimize(s.loss, false, s.vars));
    s.vars[0]!.dataSync();
    return (performance.now() - t0) / stepsPerRound;
  };
  for (const s of state) round(s); // warm-up: kernels, first factors and inverses
  const rounds = 4;
  for (let r = 0; r < rounds; r++) for (const s of state) s.times.push(round(s));

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const sgd = median(state[0]!.times);
  const lines = [
    '## K-FAC: amortised step time vs SGD',
    '',
    `784-256-10 relu MLP (tfjs-layers), batch 256, softmax cross-entropy, backend ${tf.getBackend()}; ` +
      `one step = \`minimize\` on the model's loss; median of ${rounds} interleaved rounds of ${stepsPerRound} steps ` +
      '(whole inverse periods). Target: default K-FAC <= 2.0 x SGD.',
    '',
    '| optimizer | ms / step | ratio to SGD |',
    '|---|---:|---:|',
  ];
  for (const s of state) {
    const t = median(s.times);
    lines.push(`| ${s.v.name} | ${t.toFixed(1)} | ${(t / sgd).toFixed(2)} |`);
  }
  lines.push('');
  for (const s of state) {
    s.model.dispose();
    s.opt.dispose();
  }
  tf.dispose([X, Y]);
  return lines.join('\n');
}
