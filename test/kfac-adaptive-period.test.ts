// K-FAC's amortised adaptive step (adaptivePeriod > 1, issue 16): the quadratic model chooses
// (alpha, mu) only on the steps k with (k + 1) % adaptivePeriod = 0 (and when no step size is at
// hand: the first two steps, after a rejected step); the steps between take the last model
// step's alpha with mu = 0 and no curvature pass unless their statistics are due.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import '../src/autodiff/index.js';
import { KFAC, type KFACOptions } from '../optimizers/kfac.js';

beforeAll(async () => {
  await initBackend('cpu');
});

/** A 5-6-3 tanh/softmax MLP on 24 fixed examples with plain-tf registered layers. */
function plain() {
  const W1 = tf.variable(tf.randomNormal([5, 6], 0, 0.5, 'float32', 11));
  const b1 = tf.variable(tf.zeros([6]));
  const W2 = tf.variable(tf.randomNormal([6, 3], 0, 0.5, 'float32', 12));
  const b2 = tf.variable(tf.zeros([3]));
  const x = tf.randomNormal([24, 5], 0, 1, 'float32', 13);
  const y = tf.tidy(() => tf.oneHot(tf.argMax(tf.matMul(x, tf.randomNormal([5, 3], 0, 1, 'float32', 14)), 1), 3));
  const vars = [W1, b1, W2, b2];
  const loss = (): tf.Scalar =>
    tf.tidy(
      () =>
        tf.losses.softmaxCrossEntropy(y, tf.add(tf.matMul(tf.tanh(tf.add(tf.matMul(x, W1), b1)), W2), b2)) as tf.Scalar,
    );
  const make = (options: KFACOptions) =>
    new KFAC({ lossKind: 'softmax-cross-entropy', seed: 2, ...KFAC.STEP_EFFICIENT_SETTINGS, ...options })
      .registerDense({ kernel: W1, bias: b1, name: 'hidden' })
      .registerDense({ kernel: W2, bias: b2, name: 'out' });
  return { vars, loss, make, dispose: () => tf.dispose([...vars, x, y]) };
}

const AMORTISED: KFACOptions = { adaptivePeriod: 5, statsUpdatePeriod: 5, inverseUpdatePeriod: 10 };

describe('KFAC adaptivePeriod (amortised quadratic model)', () => {
  it('asks the model on steps 0, 1, 4, 9, ... and reuses its alpha without momentum in between', () => {
    const p = plain();
    const opt = p.make(AMORTISED);
    const steps: { alpha: number; mu: number }[] = [];
    for (let i = 0; i < 12; i++) {
      opt.minimize(p.loss, false, p.vars);
      steps.push({ ...opt.lastStep });
    }
    expect(opt.rejectedSteps).toBe(0);
    // Step 0 has no momentum to choose (its alpha is the model's for Delta alone, too long to
    // reuse): step 1 asks the model again. Steps 2-3 take step 1's alpha, 5-8 step 4's, 10-11
    // step 9's, all with mu = 0.
    expect(steps[0]!.mu).toBe(0);
    for (const [from, to] of [
      [1, [2, 3]],
      [4, [5, 6, 7, 8]],
      [9, [10, 11]],
    ] as const) {
      for (const k of to) expect(steps[k], `step ${k}`).toEqual({ alpha: steps[from]!.alpha, mu: 0 });
      // The model steps choose afresh.
      expect(steps[from]!.alpha, `step ${from}`).not.toBe(steps[from - 1]!.alpha);
    }
    expect([1, 4, 9].some((k) => steps[k]!.mu > 0)).toBe(true);
    opt.dispose();
    p.dispose();
  });

  it('saves the curvature passes and loss evaluations of the steps between (counters)', () => {
    const p = plain();
    const opt = p.make(AMORTISED);
    for (let i = 0; i < 10; i++) opt.minimize(p.loss, false, p.vars);
    // Backward passes: 10 gradients; the statistics' target sample on steps 0 and 5; the exact
    // model's 3 output columns on the model steps 0, 1, 4, 9. Loss evaluations: the step check
    // on the model steps only (it doubles as the damping check on steps 4 and 9).
    expect(opt.counters).toEqual({ lossEvals: 4, gradEvals: 10 + 2 + 4 * 3, hvpEvals: 0 });
    // adaptivePeriod 1 (every step): 10 x (1 + 3) + 2 samples, 10 checks.
    const every = p.make({ ...AMORTISED, adaptivePeriod: 1 });
    for (let i = 0; i < 10; i++) every.minimize(p.loss, false, p.vars);
    expect(every.counters).toEqual({ lossEvals: 10, gradEvals: 10 * 4 + 2, hvpEvals: 0 });
    opt.dispose();
    every.dispose();
    p.dispose();
  });

  it('trains, and is leak-free on model steps and on reused steps', () => {
    const p = plain();
    const opt = p.make(AMORTISED);
    const first = p.loss().dataSync()[0]!;
    opt.minimize(p.loss, false, p.vars);
    opt.minimize(p.loss, false, p.vars);
    const n = tf.memory().numTensors;
    for (let i = 2; i < 30; i++) {
      opt.minimize(p.loss, false, p.vars);
      expect(tf.memory().numTensors, `step ${i}`).toBe(n);
    }
    expect(p.loss().dataSync()[0]!).toBeLessThan(0.3 * first);
    expect(opt.skippedSteps).toBe(0);
    opt.dispose();
    p.dispose();
  });

  it('a rejected model step makes the next step ask the model again', () => {
    const p = plain();
    let calls = 0;
    let inflate = -1;
    // Raise the loss the step check of model step 4 sees (its second closure call).
    const loss = (): tf.Scalar => {
      calls += 1;
      const l = p.loss();
      return calls === inflate ? tf.tidy(() => tf.add(l, 10)) : l;
    };
    const opt = p.make(AMORTISED);
    for (let i = 0; i < 4; i++) opt.minimize(loss, false, p.vars);
    const reused = { ...opt.lastStep };
    inflate = calls + 2;
    opt.minimize(loss, false, p.vars);
    expect(opt.rejectedSteps).toBe(1);
    const before = opt.counters.lossEvals;
    opt.minimize(loss, false, p.vars); // step 5: a model step again (with a check)
    expect(opt.counters.lossEvals).toBe(before + 1);
    expect(opt.lastStep).not.toEqual(reused);
    opt.minimize(loss, false, p.vars); // step 6: reuses step 5's
    expect(opt.counters.lossEvals).toBe(before + 1);
    opt.dispose();
    p.dispose();
  });

  it('a checkpoint taken between model steps continues the same trajectory', async () => {
    const run = async (restoreAt: number | undefined) => {
      const p = plain();
      let opt = p.make(AMORTISED);
      for (let i = 0; i < 12; i++) {
        if (i === restoreAt) {
          const saved = await opt.getWeights();
          const fresh = p.make(AMORTISED);
          await fresh.setWeights(saved);
          tf.dispose(saved.map((w) => w.tensor));
          opt.dispose();
          opt = fresh;
        }
        opt.minimize(p.loss, false, p.vars);
      }
      const theta = p.vars.flatMap((v) => Array.from(v.dataSync()));
      opt.dispose();
      p.dispose();
      return theta;
    };
    const straight = await run(undefined);
    // Step 6 reuses step 4's sizes: they come back from the checkpoint.
    expect(await run(6)).toEqual(straight);
  });

  it('rewinding a used optimizer to a checkpoint from before its first step replays the same steps', async () => {
    const p = plain();
    const opt = p.make(AMORTISED);
    const theta0 = p.vars.map((v) => tf.clone(v));
    const saved = await opt.getWeights();
    const first: number[][] = [];
    for (let i = 0; i < 9; i++) {
      opt.minimize(p.loss, false, p.vars);
      if (i === 0) first.push(p.vars.flatMap((v) => Array.from(v.dataSync())));
    }
    await opt.setWeights(saved);
    p.vars.forEach((v, i) => v.assign(theta0[i]!));
    const evals = opt.counters.lossEvals;
    opt.minimize(p.loss, false, p.vars);
    // Step 0 again: the model is asked (no step size from step 8 survives the rewind).
    expect(opt.counters.lossEvals).toBeGreaterThan(evals);
    expect(p.vars.flatMap((v) => Array.from(v.dataSync()))).toEqual(first[0]);
    tf.dispose([...theta0, ...saved.map((w) => w.tensor)]);
    opt.dispose();
    p.dispose();
  });

  it('refuses adaptivePeriod > 1 without the adaptive step', () => {
    expect(() => new KFAC({ adaptivePeriod: 5 })).toThrow(/adaptivePeriod.*adaptive/);
    expect(() => new KFAC({ adaptive: true, adaptivePeriod: 5 }).dispose()).not.toThrow();
  });
});

describe('KFAC defaults (issue 16) and the options that follow adaptive', () => {
  const config = (o: KFACOptions) => {
    const opt = new KFAC(o);
    const c = opt.getConfig();
    opt.dispose();
    return { adaptive: c.adaptive, adaptDamping: c.adaptDamping, factorRank: c.factorRank };
  };

  it('defaults: the fixed-learning-rate step with the KL clip, amortised statistics and rank-64 inverses', () => {
    const c = new KFAC({}).getConfig();
    expect({
      adaptive: c.adaptive,
      adaptDamping: c.adaptDamping,
      learningRate: c.learningRate,
      momentum: c.momentum,
      klClip: c.klClip,
      statsUpdatePeriod: c.statsUpdatePeriod,
      inverseUpdatePeriod: c.inverseUpdatePeriod,
      factorRank: c.factorRank,
      adaptivePeriod: c.adaptivePeriod,
    }).toEqual({
      adaptive: false,
      adaptDamping: false,
      learningRate: 0.2,
      momentum: 0.9,
      klClip: 1e-3,
      statsUpdatePeriod: 5,
      inverseUpdatePeriod: 20,
      factorRank: 64,
      adaptivePeriod: 1,
    });
  });

  it('adaptDamping follows adaptive and factorRank is exact with adaptive or inverseStaleness, unless given', () => {
    expect(config({ adaptive: true })).toEqual({ adaptive: true, adaptDamping: true, factorRank: 0 });
    expect(config({ adaptive: true, adaptDamping: false, factorRank: 8 })).toEqual({
      adaptive: true,
      adaptDamping: false,
      factorRank: 8,
    });
    expect(config({ adaptDamping: true })).toEqual({ adaptive: false, adaptDamping: true, factorRank: 64 });
    expect(config({ inverseStaleness: 2 }).factorRank).toBe(0);
    expect(() => new KFAC({ inverseStaleness: 2, factorRank: 64 })).toThrow(/inverseStaleness.*factorRank 0/);
    // STEP_EFFICIENT_SETTINGS reproduce the previous defaults, and a saved config rebuilds the same options.
    const se = new KFAC({ ...KFAC.STEP_EFFICIENT_SETTINGS });
    expect(se.getConfig()).toMatchObject({
      adaptive: true,
      adaptDamping: true,
      klClip: 0,
      statsUpdatePeriod: 1,
      inverseUpdatePeriod: 5,
      factorRank: 0,
    });
    const back = KFAC.fromConfig(KFAC, se.getConfig()) as KFAC;
    expect(back.getConfig()).toEqual(se.getConfig());
    se.dispose();
    back.dispose();
  });
});
