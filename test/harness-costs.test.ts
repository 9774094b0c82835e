// Every figure of a run counts every gradient-equivalent (src/harness/cost.ts: gradient 1,
// curvature-vector product 2.5, loss alone 0.4), checked against calls counted by the PROBLEM,
// independently of the optimizers' own counters: each call of loss() is classified by how many
// gradient tapes are open around it (tfjs engine gradientDepth: 0 = loss value alone,
// 1 = a gradient, 2 = a Hessian-vector product by nested tapes).
// The problem and the gradient-descent reference trajectory come from
// test/fixtures/costs-quadratic.json (scripts/reference/report_references.py, float64 numpy).
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { harnessRegistry } from '../experiments/index.js';
import {
  performanceProfile,
  runExperiment,
  summarize,
  type HarnessRegistry,
  type Problem,
  type RunResult,
} from '../src/harness/index.js';
import { lossPoints } from '../src/report/index.js';
import { losses } from '../src/autodiff/index.js';

const ref = JSON.parse(readFileSync(new URL('./fixtures/costs-quadratic.json', import.meta.url), 'utf8')) as {
  A: number[][];
  c: number[];
  x0: number[];
  learningRate: number;
  losses: number[];
  target: number;
  gdStepsToTarget: number;
  newtonLossAfterOneStep: number;
};
const n = ref.c.length;

interface Calls {
  loss: number;
  grad: number;
  hvp: number;
}
const calls: Calls = { loss: 0, grad: 0, hvp: 0 };
let unexpectedDepth = 0;

function countedQuadratic(): Problem {
  const x = tf.variable(tf.tensor1d(ref.x0));
  const A = tf.tensor2d(ref.A);
  const c = tf.tensor1d(ref.c);
  const value = () =>
    tf.tidy(() => {
      const d = tf.sub(x, c);
      return tf.mul(0.5, tf.sum(tf.mul(d, tf.matMul(A, d.reshape([n, 1])).reshape([n])))) as tf.Scalar;
    });
  return {
    name: 'test-counted-quadratic',
    description: 'quadratic from test/fixtures/costs-quadratic.json, counting loss calls by tape depth',
    options: {},
    params: [x],
    numParams: n,
    loss: () => {
      const depth = (tf.engine().state as unknown as { gradientDepth: number }).gradientDepth;
      if (depth === 0) calls.loss++;
      else if (depth === 1) calls.grad++;
      else if (depth === 2) calls.hvp++;
      else unexpectedDepth++;
      return value();
    },
    evaluate: () => {
      const l = value();
      const v = l.dataSync()[0];
      l.dispose();
      return { trainLoss: v };
    },
    target: ref.target,
    dispose: () => tf.dispose([x, A, c]),
  };
}

/**
 * A Gauss-Newton product (src/autodiff ggnvp) calls outputs() three times: for the value's shape
 * (no tape), under two tapes (jvp by double reverse) and under one (vjp).
 */
const outputCalls = { value: 0, jvp: 0, vjp: 0, other: 0 };

/**
 * Softmax regression on 24 seeded points (3 features, 3 classes), batch 8, with outputs() and
 * lossFromOutputs() for Gauss-Newton products. loss() computes its logits itself, so that
 * loss() calls count gradients / HVPs / loss values and outputs() calls count GGN products.
 */
function countedSoftmax(): Problem {
  const rng = (() => {
    let s = 12345;
    return () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
  })();
  const N = 24;
  const X = tf.tensor2d(Array.from({ length: N * 3 }, rng), [N, 3]);
  const Y = tf
    .oneHot(
      tf.tensor1d(
        Array.from({ length: N }, (_, i) => i % 3),
        'int32',
      ),
      3,
    )
    .toFloat();
  const W = tf.variable(
    tf.tensor2d(
      Array.from({ length: 9 }, () => 0.1 * rng()),
      [3, 3],
    ),
  );
  const b = tf.variable(tf.zeros([3]));
  const logits = (x: tf.Tensor) => tf.add(tf.matMul(x, W), b);
  const depth = () => (tf.engine().state as unknown as { gradientDepth: number }).gradientDepth;
  return {
    name: 'test-counted-softmax',
    description: 'softmax regression counting loss() and outputs() calls by tape depth',
    options: {},
    params: [W, b],
    numParams: 12,
    data: {
      numTrain: N,
      numTest: 0,
      batchSize: 8,
      batch: (idx: Int32Array) => {
        const i = tf.tensor1d(idx, 'int32');
        const out = { x: tf.gather(X, i), y: tf.gather(Y, i), size: idx.length };
        i.dispose();
        return out;
      },
    },
    loss: (batch) => {
      const d = depth();
      if (d === 0) calls.loss++;
      else if (d === 1) calls.grad++;
      else if (d === 2) calls.hvp++;
      else unexpectedDepth++;
      return tf.tidy(() => losses.softmaxCrossEntropy(batch ? batch.y : Y, logits(batch ? batch.x : X)));
    },
    outputs: (batch) => {
      const d = depth();
      if (d === 0) outputCalls.value++;
      else if (d === 2) outputCalls.jvp++;
      else if (d === 1) outputCalls.vjp++;
      else outputCalls.other++;
      return logits(batch.x);
    },
    lossFromOutputs: (z, batch) => losses.softmaxCrossEntropy(batch.y, z),
    lossKind: 'softmax-cross-entropy',
    evaluate: () => tf.tidy(() => ({ trainLoss: losses.softmaxCrossEntropy(Y, logits(X)).dataSync()[0] })),
    target: 0,
    dispose: () => tf.dispose([X, Y, W, b]),
  };
}

/** The project's registry plus the counted test problems (the global registries stay untouched). */
const registry: HarnessRegistry = {
  createOptimizer: harnessRegistry.createOptimizer,
  createProblem: (name, options) =>
    name === 'test-counted-quadratic'
      ? countedQuadratic()
      : name === 'test-counted-softmax'
        ? countedSoftmax()
        : harnessRegistry.createProblem(name, options),
};

beforeAll(async () => {
  await initBackend('cpu');
});

/** Run with the harness; snapshot the problem-counted calls after every step. */
async function counted(
  optimizer: string,
  optimizerOptions: Record<string, unknown>,
  steps: number,
  problem = 'test-counted-quadratic',
) {
  calls.loss = calls.grad = calls.hvp = 0;
  unexpectedDepth = 0;
  const snapshots: Calls[] = [{ ...calls }];
  const run = await runExperiment(
    {
      problem,
      optimizer,
      optimizerOptions,
      budget: { steps },
      gradNormEvery: 0,
      ...(problem === 'test-counted-quadratic' ? {} : { target: null, evalEvery: 1000 }),
    },
    { registry, onStep: (s) => (snapshots[s] = { ...calls }) },
  );
  expect(unexpectedDepth).toBe(0);
  return { run, snapshots };
}

/** The documented cost model, written out here rather than imported. */
const cost = (k: Calls) => k.grad + 2.5 * k.hvp + 0.4 * k.loss;

function expectRecordsMatchCalls(run: RunResult, snapshots: Calls[]) {
  expect(run.records.length).toBe(run.final.steps);
  for (const r of run.records) {
    const k = snapshots[r.step];
    expect({ f: r.lossEvals, g: r.gradEvals, h: r.hvpEvals }).toEqual({ f: k.loss, g: k.grad, h: k.hvp });
    expect(r.gradEquivalents).toBeCloseTo(cost(k), 12);
  }
  const last = snapshots[run.final.steps];
  expect({ f: run.final.lossEvals, g: run.final.gradEvals, h: run.final.hvpEvals }).toEqual({
    f: last.loss,
    g: last.grad,
    h: last.hvp,
  });
  expect(run.final.gradEquivalents).toBeCloseTo(cost(last), 12);
  expect(run.final.gradEquivalentsPerStep).toBeCloseTo(cost(last) / run.final.steps, 12);
  // To target: the work done before the step whose pre-update loss first met the target.
  const t = run.final.stepsToTarget!;
  expect(run.final.evalsToTarget).toEqual({
    lossEvals: snapshots[t].loss,
    gradEvals: snapshots[t].grad,
    hvpEvals: snapshots[t].hvp,
  });
  expect(run.final.gradEquivalentsToTarget).toBeCloseTo(cost(snapshots[t]), 12);
}

describe('evaluation costs against counted calls', () => {
  it('sgd (no counters): one gradient per step; trajectory, target and loss points match the float64 reference', async () => {
    const { run, snapshots } = await counted('sgd', { learningRate: ref.learningRate }, 60);
    expect(snapshots[5]).toEqual({ loss: 0, grad: 5, hvp: 0 });
    expectRecordsMatchCalls(run, snapshots);
    expect(run.final.stepsToTarget).toBe(ref.gdStepsToTarget);
    expect(run.final.gradEquivalentsToTarget).toBe(ref.gdStepsToTarget);
    // record k holds the loss before update k: f(x_{k-1}).
    for (const r of run.records) expect(r.loss! / ref.losses[r.step - 1]).toBeCloseTo(1, 4);
    expect(run.final.trainLoss! / ref.losses[run.final.steps]).toBeCloseTo(1, 4);
    // Report points: each loss at the step and the seconds of the parameters it was measured at,
    // and the final loss closes the curve.
    const pts = lossPoints(run);
    expect(pts.map((p) => p.step)).toEqual(Array.from({ length: run.final.steps + 1 }, (_, i) => i));
    for (const p of pts) expect(p.loss / ref.losses[p.step]).toBeCloseTo(1, 4);
    expect(pts[0].seconds).toBe(0);
    for (let s = 1; s < run.final.steps; s++) expect(pts[s].seconds).toBe(run.records[s - 1].seconds);
    expect(pts.at(-1)!.seconds).toBe(run.final.seconds);
  });

  it('newton: the Hessian columns (one HVP per parameter) and line-search losses are counted to target', async () => {
    const { run, snapshots } = await counted('newton', {}, 10);
    expectRecordsMatchCalls(run, snapshots);
    expect(run.final.stepsToTarget).toBe(1);
    expect(snapshots[1].hvp).toBe(n);
    expect(snapshots[1].grad).toBe(1);
    expect(run.final.gradEquivalentsToTarget).toBeGreaterThanOrEqual(1 + 2.5 * n);
    // The loss after the first (damped) Newton step, recorded before step 2, as in float64.
    expect(run.records[1].loss! / ref.newtonLossAfterOneStep).toBeCloseTo(1, 3);
  });

  it('hessian-free: CG products and backtracking losses are counted to target', async () => {
    const { run, snapshots } = await counted('hessian-free', {}, 10);
    expectRecordsMatchCalls(run, snapshots);
    expect(snapshots[1].hvp).toBeGreaterThan(0);
  });

  it('lbfgs: every closure call of a step (its iterations and line-search trials) is one counted gradient', async () => {
    for (const lineSearchFn of ['strong_wolfe', null]) {
      const { run, snapshots } = await counted('lbfgs', { lineSearchFn, maxIter: 4 }, 6);
      expectRecordsMatchCalls(run, snapshots);
      expect(snapshots[1].grad).toBeGreaterThan(1); // several evaluations in one step
      expect(snapshots[1].loss + snapshots[1].hvp).toBe(0);
    }
  });

  it('adam and shampoo (no counters): one gradient per step', async () => {
    for (const o of ['adam', 'shampoo']) {
      const { run, snapshots } = await counted(o, { learningRate: 0.1 }, 5);
      expect(snapshots[5]).toEqual({ loss: 0, grad: 5, hvp: 0 });
      expect(run.records.map((r) => r.gradEquivalents)).toEqual([1, 2, 3, 4, 5]);
    }
  });

  it('the gradient-equivalents profile ranks by counted cost, not by steps', async () => {
    const sgd = (await counted('sgd', { learningRate: ref.learningRate }, 60)).run;
    const newton = await counted('newton', {}, 10);
    const rows = summarize([sgd, newton.run]);
    const profile = performanceProfile(rows, 'gradEquivalents');
    const newtonCost = cost(newton.snapshots[1]);
    const best = Math.min(newtonCost, ref.gdStepsToTarget);
    expect(profile.ratios.newton['test-counted-quadratic']).toBeCloseTo(newtonCost / best, 12);
    expect(profile.ratios.sgd['test-counted-quadratic']).toBeCloseTo(ref.gdStepsToTarget / best, 12);
    const steps = performanceProfile(rows, 'steps');
    expect(steps.ratios.newton['test-counted-quadratic']).toBe(1);
    expect(rows.find((r) => r.optimizer === 'newton')!.evalsToTarget).toEqual({
      lossEvals: newton.snapshots[1].loss,
      gradEvals: 1,
      hvpEvals: n,
    });
  });

  it('hessian-free with Gauss-Newton products on mini-batches: every product counted once', async () => {
    outputCalls.value = outputCalls.jvp = outputCalls.vjp = outputCalls.other = 0;
    const ggnAt: number[] = [0];
    calls.loss = calls.grad = calls.hvp = 0;
    unexpectedDepth = 0;
    const snapshots: Calls[] = [{ ...calls }];
    const run = await runExperiment(
      {
        problem: 'test-counted-softmax',
        optimizer: 'hessian-free',
        optimizerOptions: { maxIterations: 5 },
        budget: { steps: 4 },
        gradNormEvery: 0,
        target: null,
        evalEvery: 1000,
      },
      {
        registry,
        onStep: (s) => {
          snapshots[s] = { ...calls };
          ggnAt[s] = outputCalls.jvp;
        },
      },
    );
    expect(unexpectedDepth).toBe(0);
    expect(outputCalls.other).toBe(0);
    // Each GGN product: one call of each kind.
    expect(outputCalls.value).toBe(outputCalls.jvp);
    expect(outputCalls.vjp).toBe(outputCalls.jvp);
    expect(outputCalls.jvp).toBeGreaterThan(0);
    expect(run.records).toHaveLength(4);
    for (const r of run.records) {
      const k = snapshots[r.step];
      expect(k.hvp).toBe(0); // no Hessian products: the GGN was used
      expect({ f: r.lossEvals, g: r.gradEvals, h: r.hvpEvals }).toEqual({ f: k.loss, g: k.grad, h: ggnAt[r.step] });
      expect(r.gradEquivalents).toBeCloseTo(k.grad + 2.5 * ggnAt[r.step] + 0.4 * k.loss, 12);
    }
  });
});
