/**
 * K-FAC's amortised step time relative to SGD on a 784-256-10 relu MLP (tfjs-layers model),
 * batch 256, softmax cross-entropy (wasm by default). One step = `minimize` on the model's loss
 * (what `model.fit` calls per batch): gradient, factor statistics, inverses every
 * `inverseUpdatePeriod` steps (averaged over whole periods), preconditioning and update.
 * Variants interleaved in rounds so that load from other processes hits them alike; then a
 * breakdown of the default step (timers around the block methods, in the same run).
 *
 * Variants: our defaults (chosen by time to target, issue 16: fixed learning rate and momentum
 * with the KL clip, statistics every 5 steps, inverses every 20, rank-64 inverses);
 * `KFAC.STEP_EFFICIENT_SETTINGS` (the defaults before: kfac-jax's adaptive learning rate and
 * momentum, damping adaptation every 5 steps, curvature_update_period 1, inverse_update_period 5)
 * and cheaper variants of it (amortised statistics, `adaptivePeriod`); tensorflow/kfac's
 * `PeriodicInvCovUpdateKfacOpt` (cov_update_every 1, invert_every 10, fixed learning rate with
 * momentum 0.9, no damping adaptation); and the low-rank-plus-tail inverses (`factorRank`,
 * randomized K-FAC), which cut the preconditioning products from n^2 m to 4 n r m.
 */
import * as tf from '@tensorflow/tfjs';
import { losses } from '../../src/autodiff/index.js'; // also installs the fast transposed wasm matMul
import { SGD } from '../../optimizers/sgd.js';
import { KFAC, KFAC_OPTIONS, type KFACOptions } from '../../optimizers/kfac.js';
import { DenseBlock } from '../../src/layers/dense.js';

interface Variant {
  name: string;
  options?: KFACOptions;
}

type Timed = Record<string, unknown>;

/** Wrap `obj[key]` with a timer accumulating into `acc[label]`; returns the restore function. */
function timeMethod(obj: Timed, key: string, label: string, acc: Map<string, number>): () => void {
  const orig = obj[key] as (...args: unknown[]) => unknown;
  obj[key] = function (this: unknown, ...args: unknown[]) {
    const t0 = performance.now();
    try {
      return orig.apply(this, args);
    } finally {
      acc.set(label, (acc.get(label) ?? 0) + performance.now() - t0);
    }
  };
  return () => {
    obj[key] = orig;
  };
}

/**
 * FLOP floors (ms per step at `gflops`) of the breakdown's parts for the bench's 784-256-10
 * MLP at batch 256 (factor sizes 785 and 257 for A, 256 and 10 for G), with the options' periods
 * and sub-batches: A: n d_in^2, G: n d_out^2 per set, preconditioning: d_in^2 d_out + d_in d_out^2,
 * projections: n d_in d_out per vector (two), inverse: d^3 per factor (an explicit inverse;
 * low-rank factors (factorRank) 4 d r per column and no inverse floor), all multiply-adds x 2.
 */
function flopFloors(o: KFACOptions, gflops: number): Record<string, number> {
  const n = 256;
  const layers = [
    [785, 256],
    [257, 10],
  ] as const;
  const sum = (f: (i: number, o: number) => number) => layers.reduce((s, [i, out]) => s + f(i, out), 0);
  const ms = (flops: number) => flops / (gflops * 1e6);
  const statsEvery = o.statsUpdatePeriod ?? KFAC_OPTIONS.statsUpdatePeriod.default;
  const statsBatch = o.statsBatchSize ?? KFAC_OPTIONS.statsBatchSize.default;
  const nStats = statsBatch === 0 ? n : Math.min(n, statsBatch);
  const nQuad = Math.min(n, o.quadraticBatchSize || n);
  const adaptive = o.adaptive ?? KFAC_OPTIONS.adaptive.default;
  const modelEvery = o.adaptivePeriod ?? KFAC_OPTIONS.adaptivePeriod.default;
  // factorRank r: a factor of size d > 2r is applied as 4 d r products per column (its inverse
  // refresh is a sketch, no d^3 floor is given for it).
  const r = o.factorRank ?? KFAC_OPTIONS.factorRank.default;
  const low = (d: number) => r > 0 && 2 * r < d;
  const left = (i: number, out: number) => (low(i) ? 2 * i * r * out : i * i * out);
  const right = (i: number, out: number) => (low(out) ? 2 * i * out * r : i * out * out);
  const inverse = (d: number) => (low(d) ? 0 : d ** 3);
  return {
    'A statistics (ã^T ã)': ms((2 * sum((i) => nStats * i * i)) / statsEvery),
    'G statistics (n ds^T ds)': ms((2 * sum((_, out) => nStats * out * out)) / statsEvery),
    'inverse refresh (amortised)': ms(
      (2 * sum((i, out) => inverse(i) + inverse(out))) /
        (o.inverseUpdatePeriod ?? KFAC_OPTIONS.inverseUpdatePeriod.default),
    ),
    'preconditioning Ainv V Ginv': ms(2 * sum((i, out) => left(i, out) + right(i, out))),
    'quadratic model projections ã V': adaptive ? ms((2 * 2 * sum((i, out) => nQuad * i * out)) / modelEvery) : 0,
  };
}

/** The recommended fast settings of docs/kfac.md. */
const FAST_SETTINGS: KFACOptions = { ...KFAC.FAST_SETTINGS };

export async function run(): Promise<string> {
  const seed = 1;
  const X = tf.randomNormal([256, 784], 0, 1, 'float32', seed);
  const Y = tf.oneHot(tf.randomUniform([256], 0, 10, 'int32', seed + 1), 10).toFloat();
  // The defaults before issue 16's time-to-target choice (kfac-jax's adaptive step); the
  // variants that change one of its parts start from it.
  const SE = KFAC.STEP_EFFICIENT_SETTINGS;
  const variants: Variant[] = [
    { name: 'SGD' },
    {
      name: 'K-FAC defaults (fixed lr 0.2, momentum 0.9, klClip 1e-3, statistics every 5 steps on 32 examples, inverses every 20, factorRank 64)',
      options: {},
    },
    {
      name: 'K-FAC STEP_EFFICIENT_SETTINGS (the defaults before issue 16: adaptive, statistics every step, exact inverses every 5)',
      options: SE,
    },
    { name: 'K-FAC STEP_EFFICIENT_SETTINGS, inverseStaleness 5 (worker)', options: { ...SE, inverseStaleness: 5 } },
    {
      name: 'K-FAC kfac-jax defaults (STEP_EFFICIENT_SETTINGS with statistics on the whole batch)',
      options: { ...SE, statsBatchSize: 0 },
    },
    {
      name: 'K-FAC as tensorflow/kfac PeriodicInvCovUpdateKfacOpt (fixed lr, momentum 0.9, stats every step, inverses every 10)',
      options: { ...SE, adaptive: false, adaptDamping: false, inverseUpdatePeriod: 10 },
    },
    {
      name: 'K-FAC adaptive, stats every 5 steps, inverses every 10, factorRank 64, no step rejection',
      options: { ...SE, statsUpdatePeriod: 5, inverseUpdatePeriod: 10, factorRank: 64, rejectSteps: false },
    },
    {
      name: 'K-FAC adaptive with adaptivePeriod 5 (the model every 5 steps), stats every 5, inverses every 10, factorRank 64',
      options: { ...SE, adaptivePeriod: 5, statsUpdatePeriod: 5, inverseUpdatePeriod: 10, factorRank: 64 },
    },
    { name: 'K-FAC STEP_EFFICIENT_SETTINGS + factorRank 64', options: { ...SE, factorRank: 64 } },
    {
      name: 'K-FAC FAST_SETTINGS: the defaults with statistics every 10 steps',
      options: FAST_SETTINGS,
    },
    { name: 'K-FAC defaults, factorRank 128', options: { factorRank: 128 } },
    { name: 'K-FAC defaults, exact inverses (factorRank 0)', options: { factorRank: 0 } },
  ];
  const stepsPerRound = 20;
  const FAST = variants.findIndex((v) => v.options === FAST_SETTINGS);
  const STEP_EFFICIENT = variants.findIndex((v) => v.options === SE);
  const PREVIOUS = variants.findIndex((v) => v.options?.statsBatchSize === 0);
  const ASYNC = variants.findIndex((v) => v.options?.inverseStaleness !== undefined);

  const state = variants.map((v, i) => {
    const model = tf.sequential();
    model.add(
      tf.layers.dense({
        units: 256,
        activation: 'relu',
        inputShape: [784],
        kernelInitializer: tf.initializers.glorotUniform({ seed: 10 + i }),
      }),
    );
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
  const rounds = 5;
  for (let r = 0; r < rounds; r++) for (const s of state) s.times.push(round(s));

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const sgd = median(state[0]!.times);
  const lines = [
    '## K-FAC: amortised step time vs SGD',
    '',
    `784-256-10 relu MLP (tfjs-layers), batch 256, softmax cross-entropy, backend ${tf.getBackend()}; ` +
      `one step = \`minimize\` on the model's loss; median of ${rounds} interleaved rounds of ${stepsPerRound} steps ` +
      '(whole inverse periods; fastest round in brackets). Target: amortised K-FAC step <= 2.0 x SGD. ' +
      '`factorRank` r: factor inverses of rank r plus a conservative tail (randomized K-FAC, docs/kfac.md).',
    '',
    '| optimizer | ms / step | ratio to SGD |',
    '|---|---:|---:|',
  ];
  const best = Math.min(...state[0]!.times);
  for (const s of state) {
    const t = median(s.times);
    lines.push(
      `| ${s.v.name} | ${t.toFixed(1)} | ${(t / sgd).toFixed(2)} (${(Math.min(...s.times) / best).toFixed(2)}) |`,
    );
  }
  const asyncStats = (state[ASYNC]!.opt as KFAC).asyncInverses?.stats();
  if (asyncStats) {
    lines.push(
      '',
      `inverseStaleness 5: the factor inverses (Cholesky, float64) of damped snapshots in a src/async worker; ` +
        `over the run ${asyncStats.inline} computed inline (first), ${asyncStats.submitted} submitted, ` +
        `${asyncStats.swapped} swapped in, ${asyncStats.skipped} requests skipped (one in flight), ` +
        `${asyncStats.blocked} steps blocked for ${asyncStats.blockedMs.toFixed(0)} ms in all.`,
    );
  }

  // Breakdowns of the default step and of the fast settings: timers around the block methods
  // and the optimizer's internal phases (monkey-patched for this measurement only; wasm
  // kernels are synchronous).
  const breakdown = (index: number, title: string) => {
    const acc = new Map<string, number>();
    const kp = KFAC.prototype as unknown as Timed;
    const restore = [
      timeMethod(kp, 'minimize', 'total', acc),
      timeMethod(kp, 'step', 'step', acc),
      timeMethod(
        kp,
        'evaluateClosure',
        'step check (closure re-evaluated: every step with rejectSteps, else every 5)',
        acc,
      ),
      timeMethod(DenseBlock.prototype as unknown as Timed, 'factorA', 'A statistics (ã^T ã)', acc),
      timeMethod(DenseBlock.prototype as unknown as Timed, 'factorG', 'G statistics (n ds^T ds)', acc),
      timeMethod(DenseBlock as unknown as Timed, 'dampedInverses', 'inverse refresh (amortised)', acc),
      timeMethod(DenseBlock as unknown as Timed, 'precondition', 'preconditioning Ainv V Ginv', acc),
      timeMethod(DenseBlock.prototype as unknown as Timed, 'projectionStack', 'quadratic model projections ã V', acc),
    ];
    const d = state[index]!;
    const sgdState = state[0]!;
    const roundsHere = 2;
    const steps = roundsHere * stepsPerRound;
    let sgdTime = 0;
    try {
      for (let r = 0; r < roundsHere; r++) {
        sgdTime += round(sgdState) * stepsPerRound;
        round(d);
      }
    } finally {
      restore.forEach((f) => f());
    }
    const per = (label: string) => (acc.get(label) ?? 0) / steps;
    const sgdStep = sgdTime / steps;
    const total = per('total');
    const stepOnly = per('step');
    const parts: [string, number][] = [
      [
        'gradient + capture (one forward/backward, sampled-target backward from the logits when needed, finiteness check)',
        total - stepOnly,
      ],
      ...[...acc.keys()].filter((k) => k !== 'total' && k !== 'step').map((k): [string, number] => [k, per(k)]),
    ];
    const named = parts.slice(1).reduce((sum, [, t]) => sum + t, 0);
    parts.push(['rest of the step (EMA, damping traces, step sizes, dots, update, tidy)', stepOnly - named]);
    // The sampled-target / exact-column backward passes and the capture's bookkeeping: what the
    // capture costs beyond a plain gradient (an SGD step is a gradient and an axpy).
    parts.splice(1, 0, [
      '  of which beyond an SGD step (target passes, capture, finiteness checks)',
      total - stepOnly - sgdStep,
    ]);
    // The options in effect (defaults resolved, factorRank's included).
    const floor = flopFloors(d.opt.getConfig() as KFACOptions, rate);
    lines.push(
      '',
      `Breakdown of ${title} (${steps} steps, ${total.toFixed(1)} ms/step; SGD in the same rounds ` +
        `${sgdStep.toFixed(1)} ms/step). FLOP floor: the part's multiply-adds x 2 at the measured ` +
        `matMul rate (${rate.toFixed(1)} GFLOP/s, a 256 x 785 x 256 product), amortised over its period:`,
      '',
      '| part | ms / step | in SGD steps | FLOP floor ms |',
      '|---|---:|---:|---:|',
      ...parts.map(
        ([k, t]) =>
          `| ${k} | ${t.toFixed(1)} | ${(t / sgdStep).toFixed(2)} | ${floor[k] === undefined ? '' : floor[k]!.toFixed(1)} |`,
      ),
    );
  };
  // The matMul rate the floors are measured against.
  const rate = tf.tidy(() => {
    const a = tf.randomNormal([256, 785]);
    const b = tf.randomNormal([785, 256]);
    tf.matMul(a, b).dataSync();
    const reps = 20;
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) tf.matMul(a, b).dataSync();
    return (reps * 2 * 256 * 785 * 256) / ((performance.now() - t0) / 1000) / 1e9;
  });
  breakdown(1, 'the default K-FAC step');
  breakdown(STEP_EFFICIENT, 'the STEP_EFFICIENT_SETTINGS step (the defaults before issue 16)');
  breakdown(PREVIOUS, 'the kfac-jax default step (STEP_EFFICIENT_SETTINGS, statistics on the whole batch)');
  breakdown(FAST, 'the fast settings');
  lines.push('');
  for (const s of state) {
    s.model.dispose();
    s.opt.dispose();
  }
  tf.dispose([X, Y]);
  return lines.join('\n');
}
