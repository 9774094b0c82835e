/**
 * HessianFree's first-order warm start (firstOrderSteps, firstOrderLearningRate;
 * optimizers/hessian-free/first-order.ts): the switch to Hessian-free steps, the Adam update
 * against a float64 recomputation from Kingma & Ba's recursion (beta1 0.9, beta2 0.95, moments
 * started at the first gradient), exact continuation after getWeights / setWeights across the
 * switch, invalid values, leaks.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { losses } from '../src/autodiff/index.js';
import { HessianFree, hessianFreeEntry } from '../optimizers/hessian-free.js';
import type { Batch, Problem } from '../src/harness/problem.js';

beforeAll(async () => {
  await initBackend('cpu');
});

/** A 3-5-2 tanh network on 12 fixed examples, as a bound problem. */
function network(seed: number) {
  const x = tf.randomNormal([12, 3], 0, 1, 'float32', 7);
  const y = tf.oneHot(tf.tensor1d([0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 0], 'int32'), 2).toFloat();
  const W1 = tf.variable(tf.randomNormal([3, 5], 0, 0.7, 'float32', seed));
  const b1 = tf.variable(tf.zeros([5]));
  const W2 = tf.variable(tf.randomNormal([5, 2], 0, 0.7, 'float32', seed + 1));
  const b2 = tf.variable(tf.zeros([2]));
  const params = [W1, b1, W2, b2];
  const outputs = (bx: tf.Tensor) => tf.add(tf.matMul(tf.tanh(tf.add(tf.matMul(bx, W1), b1)), W2), b2);
  const problem = {
    params,
    outputs: (b: Batch) => outputs(b.x),
    lossFromOutputs: (z: tf.Tensor, b: Batch) => losses.softmaxCrossEntropy(b.y, z),
    loss: (b?: Batch) => losses.softmaxCrossEntropy(b!.y, outputs(b!.x)),
  } as unknown as Problem;
  const batch: Batch = { x, y, size: 12 };
  const values = () => params.map((p) => Array.from(p.dataSync()));
  return { problem, batch, params, values, dispose: () => tf.dispose([x, y, ...params]) };
}

function step(opt: HessianFree, net: ReturnType<typeof network>): void {
  opt.setCurvatureBatch(net.batch);
  opt.minimize(() => net.problem.loss(net.batch), false, net.params);
}

describe('HessianFree first-order warm start', () => {
  it('takes firstOrderSteps Adam steps (float64 recursion), then Hessian-free steps, leak-free', () => {
    const net = network(1);
    const opt = hessianFreeEntry.create({ firstOrderSteps: 3, firstOrderLearningRate: 0.05 }, { problem: net.problem });
    const flat = () => net.params.flatMap((p) => Array.from(p.dataSync(), Number));
    const gradAt = () =>
      tf.tidy(() => {
        const { grads } = tf.variableGrads(() => net.problem.loss(net.batch), net.params);
        return net.params.flatMap((p) => Array.from(grads[p.name]!.dataSync(), Number));
      });
    let m: number[] = [];
    let v: number[] = [];
    const counts: number[] = [];
    for (let k = 0; k < 3; k++) {
      const theta = flat();
      const g = gradAt();
      m = k === 0 ? g : m.map((mi, i) => 0.9 * mi + 0.1 * g[i]!);
      v = k === 0 ? g.map((gi) => gi * gi) : v.map((vi, i) => 0.95 * vi + 0.05 * g[i]! * g[i]!);
      const expected = theta.map((t, i) => t - (0.05 * m[i]!) / (Math.sqrt(v[i]!) + 1e-8));
      step(opt, net);
      expect(opt.lastStep!.phase).toBe('first-order');
      expect(opt.lastStep!.cgIterations).toBe(0);
      expect(opt.lastStep!.hvpEvals).toBe(0);
      const got = flat();
      for (let i = 0; i < got.length; i++) expect(got[i]!).toBeCloseTo(expected[i]!, 5);
      counts.push(tf.memory().numTensors);
    }
    expect(opt.iterations).toBe(3);
    for (let k = 0; k < 3; k++) {
      step(opt, net);
      expect(opt.lastStep!.phase).toBe('hessian-free');
      expect(opt.lastStep!.cgIterations).toBeGreaterThan(0);
      counts.push(tf.memory().numTensors);
    }
    // The first Hessian-free step creates its own state (CG warm start, batch fingerprint).
    expect(new Set(counts.slice(0, 3)).size).toBe(1);
    expect(new Set(counts.slice(4)).size).toBe(1);
    net.dispose();
  });

  it('shares its second moment with the squared-gradient preconditioner', async () => {
    const net = network(2);
    const opt = hessianFreeEntry.create(
      { firstOrderSteps: 2, preconditioner: 'squared-gradient' },
      { problem: net.problem },
    );
    step(opt, net);
    const w = await opt.getWeights();
    const names = w.map((e) => e.name);
    expect(names).toContain('@hessian-free/squaredGradient');
    expect(names).toContain('@hessian-free/firstOrderMoment');
    expect(names).toContain('__optimizer__/firstOrderSteps');
    tf.dispose(w.map((e) => e.tensor));
    step(opt, net);
    step(opt, net);
    expect(opt.lastStep!.phase).toBe('hessian-free');
    expect(opt.lastStep!.accepted).toBe(true);
    net.dispose();
  });

  it('continues identically after getWeights / setWeights across the switch', async () => {
    const a = network(3);
    const b = network(3);
    const options = { firstOrderSteps: 3 };
    const optA = hessianFreeEntry.create(options, { problem: a.problem });
    for (let k = 0; k < 2; k++) step(optA, a);
    const w = await optA.getWeights();
    const optB = hessianFreeEntry.create(options, { problem: b.problem });
    await optB.setWeights(w);
    tf.dispose(w.map((e) => e.tensor));
    b.params.forEach((p, i) => p.assign(a.params[i]!));
    const phases: string[] = [];
    for (let k = 0; k < 3; k++) {
      step(optA, a);
      step(optB, b);
      expect(optB.lastStep!.phase).toBe(optA.lastStep!.phase);
      phases.push(optA.lastStep!.phase);
      expect(b.values()).toEqual(a.values());
    }
    // Step 3 is the last first-order step, 4 and 5 are Hessian-free.
    expect(phases).toEqual(['first-order', 'hessian-free', 'hessian-free']);
    a.dispose();
    b.dispose();
  });

  it('rewinding a used optimizer to a checkpoint from before its first step starts the warm start again', async () => {
    const a = network(5);
    const opt = hessianFreeEntry.create({ firstOrderSteps: 2 }, { problem: a.problem });
    const theta0 = a.params.map((p) => tf.clone(p));
    const saved = await opt.getWeights();
    for (let k = 0; k < 4; k++) step(opt, a);
    expect(opt.lastStep!.phase).toBe('hessian-free');
    await opt.setWeights(saved);
    a.params.forEach((p, i) => p.assign(theta0[i]!));
    const phases: string[] = [];
    for (let k = 0; k < 3; k++) {
      step(opt, a);
      phases.push(opt.lastStep!.phase);
    }
    expect(phases).toEqual(['first-order', 'first-order', 'hessian-free']);
    tf.dispose([...theta0, ...saved.map((w) => w.tensor)]);
    a.dispose();
  });

  it('does not count a skipped non-finite step', () => {
    const x = tf.variable(tf.tensor1d([1, 2]));
    const opt = new HessianFree({ firstOrderSteps: 1 });
    opt.minimize(() => tf.tidy(() => tf.mul(tf.sum(tf.square(x)), Infinity) as tf.Scalar));
    expect(opt.skippedSteps).toBe(1);
    expect(Array.from(x.dataSync())).toEqual([1, 2]);
    const f = () => tf.tidy(() => tf.sum(tf.square(x)) as tf.Scalar);
    opt.minimize(f);
    expect(opt.lastStep!.phase).toBe('first-order');
    // Adam's first step moves every coordinate by the learning rate against the gradient's sign.
    const [x0, x1] = Array.from(x.dataSync());
    expect(x0).toBeCloseTo(0.99, 6);
    expect(x1).toBeCloseTo(1.99, 6);
    opt.minimize(f);
    expect(opt.lastStep!.phase).toBe('hessian-free');
    x.dispose();
  });

  it('rejects invalid values with a clear error', () => {
    expect(() => new HessianFree({ firstOrderSteps: -1 })).toThrow(/firstOrderSteps/);
    expect(() => new HessianFree({ firstOrderSteps: 2.5 })).toThrow(/firstOrderSteps/);
    expect(() => new HessianFree({ firstOrderLearningRate: 0 })).toThrow(/firstOrderLearningRate/);
    expect(() => new HessianFree({ firstOrderLearningRate: Number.NaN })).toThrow(/firstOrderLearningRate/);
  });
});
