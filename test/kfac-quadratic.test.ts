// K-FAC's adaptive step at its defaults: the quadratic model uses the exact Gauss-Newton (=
// Fisher) curvature of the batch, checked against a float64 torch reference
// (scripts/reference/kfac_ggn.py -> test/fixtures/kfac-ggn.json), and the defaults train a
// small softmax MLP in model.fit without the loss blowing up (they did not with the sampled
// Fisher in the quadratic model: epoch losses up to 10x the first).
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import '../src/autodiff/index.js';
import { KFAC, type KFACLossKind, type KFACOptions } from '../optimizers/kfac.js';

beforeAll(async () => {
  await initBackend('cpu');
});

interface GgnCase {
  theta: number[];
  y: number[][];
  loss: number;
  grad: number[];
  ggn: number[][];
}
const fixture = JSON.parse(readFileSync(new URL('./fixtures/kfac-ggn.json', import.meta.url), 'utf8')) as {
  shapes: number[][];
  x: number[][];
  cases: Record<KFACLossKind, GgnCase>;
};

/**
 * One K-FAC step from the fixture's parameters. The first step has no momentum, so the update
 * is u = alpha Delta with alpha minimising the damped model m(a) = a g.Delta + a^2/2 Delta^T (F +
 * lambda I) Delta: at the chosen alpha, g.u + u^T F u + lambda u.u = 0. Returns that residual,
 * relative to |g.u|, with F the reference GGN.
 */
function firstStepResidual(kind: KFACLossKind, options: KFACOptions = {}): { residual: number; alpha: number } {
  const c = fixture.cases[kind];
  const sizes = fixture.shapes.map((s) => s.reduce((a, b) => a * b, 1));
  const offsets = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
  const vars = fixture.shapes.map((s, i) =>
    tf.variable(tf.tensor(c.theta.slice(offsets[i], offsets[i]! + sizes[i]!), s)),
  );
  const [W1, b1, W2, b2] = vars as [tf.Variable, tf.Variable, tf.Variable, tf.Variable];
  const x = tf.tensor2d(fixture.x);
  const y = tf.tensor2d(c.y);
  const loss = (): tf.Scalar =>
    tf.tidy(() => {
      const z = tf.add(tf.matMul(tf.tanh(tf.add(tf.matMul(x, W1), b1)), W2), b2);
      if (kind === 'softmax-cross-entropy') return tf.losses.softmaxCrossEntropy(y, z) as tf.Scalar;
      if (kind === 'sigmoid-cross-entropy') return tf.losses.sigmoidCrossEntropy(y, z) as tf.Scalar;
      return tf.losses.meanSquaredError(y, z) as tf.Scalar;
    });
  // The losses are the fixture's (same reduction as the reference).
  expect(loss().dataSync()[0]!).toBeCloseTo(c.loss, 5);
  const theta0 = vars.flatMap((v) => Array.from(v.dataSync()));
  // No step rejection: the step taken is the model's, whatever the loss does.
  const opt = new KFAC({ ...KFAC.STEP_EFFICIENT_SETTINGS, lossKind: kind, rejectSteps: false, ...options })
    .registerDense({ kernel: W1, bias: b1, name: 'hidden' })
    .registerDense({ kernel: W2, bias: b2, name: 'out' });
  const lambda = opt.damping;
  opt.minimize(loss, false, vars);
  expect(opt.lastStep.mu).toBe(0);
  const u = vars.flatMap((v) => Array.from(v.dataSync())).map((t, i) => t - theta0[i]!);
  const dot = (a: number[], b: number[]) => a.reduce((s, ai, i) => s + ai * b[i]!, 0);
  const uFu = dot(
    u,
    c.ggn.map((row) => dot(row, u)),
  );
  const gu = dot(c.grad, u);
  tf.dispose([...vars, x, y]);
  opt.dispose();
  expect(gu).toBeLessThan(0);
  return { residual: Math.abs(gu + uFu + lambda * dot(u, u)) / Math.abs(gu), alpha: opt.lastStep.alpha };
}

describe('KFAC quadratic model: exact Gauss-Newton curvature (float64 torch reference)', () => {
  for (const kind of ['softmax-cross-entropy', 'sigmoid-cross-entropy', 'mse'] as const) {
    it(`${kind}: the adaptive learning rate minimises the model with u^T J^T H_L J u`, () => {
      const exact = firstStepResidual(kind);
      expect(exact.alpha).toBeGreaterThan(0);
      expect(exact.residual).toBeLessThan(1e-4);
      // Control: a quadratic model on sampled targets (the previous default) misses it.
      const sampled = firstStepResidual(kind, { quadraticModel: 'sampled' });
      expect(sampled.residual).toBeGreaterThan(0.05);
    });
  }
});

describe('KFAC defaults in model.fit on a small softmax MLP', () => {
  const N = 48;
  function data(): { xs: tf.Tensor2D; ys: tf.Tensor2D } {
    const x: number[] = [];
    const labels: number[] = [];
    for (let i = 0; i < N; i++) {
      const row = [Math.sin(i), Math.cos(1.3 * i), Math.sin(0.7 * i + 1), Math.cos(2.1 * i)];
      x.push(...row);
      const scores = [row[0]! + row[1]!, row[2]! - row[0]!, row[3]! - row[1]!];
      labels.push(scores.indexOf(Math.max(...scores)));
    }
    return tf.tidy(() => ({
      xs: tf.tensor2d(x, [N, 4]),
      ys: tf.oneHot(tf.tensor1d(labels, 'int32'), 3).toFloat() as tf.Tensor2D,
    }));
  }

  // The lead's reproduction: with the sampled Fisher in the quadratic model, batch 16 reached
  // epoch losses of 5.4-11 (5-10x the first) and batch 48 up to 4.9 (4x). Batch 8 needs step
  // rejection as well (seed 1 reached 9.7x with the exact model alone: one step raised its own
  // batch's loss from 0.58 to 3.1).
  const configs: [string, KFACOptions][] = [
    ['defaults', {}],
    ['STEP_EFFICIENT_SETTINGS', KFAC.STEP_EFFICIENT_SETTINGS],
  ];
  for (const [label, options] of configs)
    for (const batchSize of [8, 16, 48]) {
      it(`${label}, batch ${batchSize}, seeds 1-3: the loss falls and never rises above 1.2x the first epoch`, async () => {
        for (const seed of [1, 2, 3]) {
          const model = tf.sequential({
            layers: [
              tf.layers.dense({
                inputShape: [4],
                units: 8,
                activation: 'tanh',
                kernelInitializer: tf.initializers.glorotUniform({ seed }),
              }),
              tf.layers.dense({
                units: 3,
                activation: 'softmax',
                kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 10 }),
              }),
            ],
          });
          const opt = new KFAC({ model, ...options });
          model.compile({ optimizer: opt, loss: 'categoricalCrossentropy' });
          const { xs, ys } = data();
          const before = tf.memory().numTensors;
          const h = await model.fit(xs, ys, { epochs: 12, batchSize, shuffle: false, verbose: 0 });
          const losses = h.history.loss as number[];
          const first = losses[0]!;
          expect(Math.max(...losses), `seed ${seed}: ${losses.map((l) => l.toFixed(3)).join(' ')}`).toBeLessThan(
            1.2 * first,
          );
          expect(losses[losses.length - 1]!, `seed ${seed}`).toBeLessThan(0.25 * first);
          expect(opt.skippedSteps).toBe(0);
          tf.dispose([xs, ys]);
          opt.dispose();
          model.dispose();
          expect(tf.memory().numTensors).toBeLessThanOrEqual(before);
        }
      });
    }
});

describe('KFAC step rejection (rejectSteps)', () => {
  function problem(inflatedCall = 2) {
    const W = tf.variable(tf.randomNormal([4, 3], 0, 0.5, 'float32', 5));
    const b = tf.variable(tf.zeros([3]));
    const x = tf.randomNormal([12, 4], 0, 1, 'float32', 6);
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2], 'int32'), 3).toFloat();
    let calls = 0;
    // The optimizer evaluates the loss twice per step (the step, then the check): the second
    // evaluation of the first step reports a loss that went up.
    const loss = (): tf.Scalar =>
      tf.tidy(() => {
        calls += 1;
        const l = tf.losses.softmaxCrossEntropy(y, tf.add(tf.matMul(x, W), b)) as tf.Scalar;
        return calls === inflatedCall ? tf.add(l, 10) : l;
      });
    return { W, b, loss, dispose: () => tf.dispose([W, b, x, y]) };
  }

  it('undoes a step that raised the batch loss, keeps no momentum from it and multiplies the damping by 10', () => {
    const p = problem();
    const opt = new KFAC({ ...KFAC.STEP_EFFICIENT_SETTINGS, lossKind: 'softmax-cross-entropy' }).registerDense({
      kernel: p.W,
      bias: p.b,
      name: 'linear',
    });
    const W0 = p.W.dataSync().slice();
    const b0 = p.b.dataSync().slice();
    const lambda = opt.damping;
    opt.minimize(p.loss, false, [p.W, p.b]);
    expect(opt.rejectedSteps).toBe(1);
    expect(opt.lastStep.alpha).toBeGreaterThan(0);
    expect(Array.from(p.W.dataSync())).toEqual(Array.from(W0));
    expect(Array.from(p.b.dataSync())).toEqual(Array.from(b0));
    expect(opt.damping).toBeCloseTo(10 * lambda, 6);
    // The next step is taken, without momentum (the rejected step left none).
    const l0 = p.loss().dataSync()[0]!;
    opt.minimize(p.loss, false, [p.W, p.b]);
    expect(opt.rejectedSteps).toBe(1);
    expect(opt.lastStep.mu).toBe(0);
    expect(p.loss().dataSync()[0]!).toBeLessThan(l0);
    // Leak-free across accepted steps.
    const n = tf.memory().numTensors;
    opt.minimize(p.loss, false, [p.W, p.b]);
    expect(tf.memory().numTensors).toBe(n);
    opt.dispose();
    p.dispose();
  });

  it('a rejected step leaks nothing', () => {
    const p = problem(4); // the second step's check
    const opt = new KFAC({ ...KFAC.STEP_EFFICIENT_SETTINGS, lossKind: 'softmax-cross-entropy' }).registerDense({
      kernel: p.W,
      bias: p.b,
      name: 'linear',
    });
    opt.minimize(p.loss, false, [p.W, p.b]);
    const n = tf.memory().numTensors;
    const W1 = Array.from(p.W.dataSync());
    opt.minimize(p.loss, false, [p.W, p.b]);
    expect(opt.rejectedSteps).toBe(1);
    expect(Array.from(p.W.dataSync())).toEqual(W1);
    expect(tf.memory().numTensors).toBe(n);
    opt.minimize(p.loss, false, [p.W, p.b]);
    expect(tf.memory().numTensors).toBe(n);
    opt.dispose();
    p.dispose();
  });

  it('rejectSteps: false keeps the step', () => {
    const p = problem();
    const opt = new KFAC({
      ...KFAC.STEP_EFFICIENT_SETTINGS,
      lossKind: 'softmax-cross-entropy',
      rejectSteps: false,
    }).registerDense({
      kernel: p.W,
      bias: p.b,
      name: 'linear',
    });
    const W0 = Array.from(p.W.dataSync());
    opt.minimize(p.loss, false, [p.W, p.b]);
    expect(opt.rejectedSteps).toBe(0);
    expect(Array.from(p.W.dataSync())).not.toEqual(W0);
    opt.dispose();
    p.dispose();
  });
});
