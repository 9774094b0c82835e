import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { harnessRegistry } from '../experiments/index.js';
import {
  BatchSampler,
  compare,
  mergeResults,
  performanceProfile,
  planRuns,
  runExperiment,
  runId,
  tune,
  type ComparisonSpec,
  type HarnessRegistry,
  type SummaryRow,
} from '../src/harness/index.js';
import { canonicalRuns } from '../src/report/results.js';
import { profileCells, summaryText } from '../src/report/tables.js';

/** A test-local optimizer entry built from tfjs's own SGD, counting its minimize calls. */
let testSgdCalls = 0;
class CountingSGD extends tf.SGDOptimizer {
  counters = { lossEvals: 0, gradEvals: 0, hvpEvals: 0 };
  override minimize(f: () => tf.Scalar, returnCost?: boolean, varList?: tf.Variable[]): tf.Scalar | null {
    testSgdCalls++;
    this.counters.lossEvals += 2;
    this.counters.gradEvals += 1;
    this.counters.hvpEvals += 3;
    return super.minimize(f, returnCost, varList);
  }
}

/** The project's registry plus test-only optimizers (the global registries stay untouched). */
const registry: HarnessRegistry = {
  createProblem: harnessRegistry.createProblem,
  createOptimizer: (name, options, problem) => {
    if (name === 'test-sgd') return new CountingSGD((options.learningRate as number | undefined) ?? 0.1);
    if (name === 'test-broken') throw new Error('boom');
    return harnessRegistry.createOptimizer(name, options, problem);
  },
};
const withRegistry = { registry };

beforeAll(async () => {
  await initBackend('wasm');
});

const withoutTime = <T>(x: T) => canonicalRuns([x as never])[0] as T;

describe('runExperiment', () => {
  it('is deterministic by seed and differs across seeds (mini-batches and init)', async () => {
    const spec = {
      problem: 'logreg-iris',
      problemOptions: { batchSize: 16 },
      optimizer: 'test-sgd',
      optimizerOptions: { learningRate: 0.1 },
      budget: { steps: 20 },
      target: null,
    };
    const a = await runExperiment({ ...spec, seed: 1 }, withRegistry);
    const b = await runExperiment({ ...spec, seed: 1 }, withRegistry);
    const c = await runExperiment({ ...spec, seed: 2 }, withRegistry);
    expect(withoutTime(a)).toEqual(withoutTime(b));
    expect(a.records.map((r) => r.loss)).not.toEqual(c.records.map((r) => r.loss));
    expect(a.records).toHaveLength(20);
    expect(JSON.parse(JSON.stringify(a))).toEqual(a);
  });

  it('reads evaluation counts from optimizer.counters', async () => {
    const r = await runExperiment(
      { problem: 'beale', optimizer: 'test-sgd', budget: { steps: 4 }, target: null },
      withRegistry,
    );
    // Cost model: gradient 1, curvature product 2.5, loss alone 0.4 -> 1 + 7.5 + 0.8 = 9.3 per step.
    expect(r.records.at(-1)).toMatchObject({ step: 4, lossEvals: 8, gradEvals: 4, hvpEvals: 12 });
    expect(r.records.at(-1)!.gradEquivalents).toBeCloseTo(37.2, 12);
    expect(r.final.gradEquivalentsPerStep).toBeCloseTo(9.3, 12);
    expect(r.final.gradEquivalents).toBeCloseTo(37.2, 12);
  });

  it('counts one gradient per step for optimizers without counters', async () => {
    const r = await runExperiment(
      { problem: 'beale', optimizer: 'sgd', optimizerOptions: { learningRate: 0.01 }, budget: { steps: 3 } },
      withRegistry,
    );
    expect(r.records.at(-1)).toMatchObject({ lossEvals: 0, gradEvals: 3, hvpEvals: 0, gradEquivalents: 3 });
  });

  it('stops at the target and reports steps and seconds to it', async () => {
    const r = await runExperiment(
      {
        problem: 'quadratic',
        problemOptions: { dim: 5, condition: 2 },
        optimizer: 'test-sgd',
        optimizerOptions: { learningRate: 1 },
        budget: { steps: 500 },
        target: 1e-4,
      },
      withRegistry,
    );
    expect(r.final.stopReason).toBe('target');
    expect(r.final.reachedTarget).toBe(true);
    expect(r.final.stepsToTarget).toBeGreaterThan(0);
    expect(r.final.stepsToTarget).toBeLessThan(100);
    expect(r.final.secondsToTarget).toBeGreaterThanOrEqual(0);
    expect(r.final.trainLoss).toBeLessThan(1e-4);
  });

  it('stops on divergence (loss > 1e3 x initial or non-finite)', async () => {
    const r = await runExperiment(
      {
        problem: 'quadratic',
        problemOptions: { dim: 5, condition: 2 },
        optimizer: 'test-sgd',
        optimizerOptions: { learningRate: 10 },
        budget: { steps: 500 },
      },
      withRegistry,
    );
    expect(r.final.diverged).toBe(true);
    expect(r.final.stopReason).toBe('diverged');
    expect(r.final.steps).toBeLessThan(20);
  });

  it('an epoch budget is epochs x floor(n / batch) steps, with evaluations', async () => {
    const r = await runExperiment(
      {
        problem: 'logreg-iris',
        problemOptions: { batchSize: 50 },
        optimizer: 'test-sgd',
        budget: { epochs: 3 },
        evalEvery: 2,
        target: null,
      },
      withRegistry,
    );
    expect(r.final.steps).toBe(6);
    expect(r.final.stopReason).toBe('epochs');
    expect(r.evals.map((e) => e.step)).toEqual([0, 2, 4, 6]);
    expect(r.final.testAccuracy).toBeGreaterThan(0);
  });

  it('leaks no tensors', async () => {
    await runExperiment({ problem: 'logreg-iris', optimizer: 'adam', budget: { steps: 2 } }, withRegistry);
    const before = tf.memory().numTensors;
    await runExperiment({ problem: 'logreg-iris', optimizer: 'adam', budget: { steps: 5 } }, withRegistry);
    await runExperiment({ problem: 'rosenbrock', optimizer: 'sgd', budget: { steps: 5 } }, withRegistry);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('BatchSampler', () => {
  it('covers every example once per epoch and is seeded', () => {
    const s = new BatchSampler(10, 3, 4);
    const epoch = [s.next(), s.next(), s.next()].flatMap((b) => Array.from(b));
    expect(new Set(epoch).size).toBe(9);
    const t = new BatchSampler(10, 3, 4);
    expect(Array.from(t.next())).toEqual(epoch.slice(0, 3));
  });
});

const spec: ComparisonSpec = {
  problems: [
    {
      id: 'q',
      problem: 'quadratic',
      options: { dim: 4, condition: 10 },
      budget: { steps: 30 },
      target: 1e-2,
      hyperparameters: { 'test-sgd': { learningRate: 1 } },
    },
    { id: 'iris', problem: 'logreg-iris', options: { batchSize: 40 }, budget: { steps: 12 }, target: 0.5 },
  ],
  optimizers: ['test-sgd', 'sgd'],
  optimizerOptions: { sgd: { learningRate: 0.5 } },
  seeds: [0, 1],
};

describe('compare', () => {
  it('skips optimizers a problem excludes, and reports them as not applicable', async () => {
    const excluding: ComparisonSpec = {
      ...spec,
      problems: [{ ...spec.problems[0], exclude: { sgd: 'not applicable here' } }, spec.problems[1]],
      seeds: [0],
    };
    const plan = planRuns(excluding);
    expect(plan).toHaveLength(3);
    expect(plan.some((r) => r.problemId === 'q' && r.optimizer === 'sgd')).toBe(false);
    const results = await compare(excluding, withRegistry);
    expect(results.pending).toBe(0);
    expect(summaryText(results)).toMatch(/Not run \(not applicable\): q: sgd \(not applicable here\)/);
    const steps = results.profiles.find((p) => p.measure === 'steps')!;
    expect(steps.problems).toContain('q');
    const row = profileCells(steps, results).rows.find((r) => r[0] === 'sgd');
    expect(row?.[1 + steps.problems.indexOf('q')]).toBe('n/a');
  });

  it('plans problems x optimizers x seeds; shards merge to the unsharded result; resume skips finished runs', async () => {
    expect(planRuns(spec)).toHaveLength(8);
    const full = await compare(spec, withRegistry);
    expect(full.runs.map((r) => r.id)).toEqual(planRuns(spec).map(runId));
    expect(full.pending).toBe(0);
    expect(full.summary).toHaveLength(4);

    const s1 = await compare(spec, { registry, shard: { index: 1, count: 3 } });
    const s2 = await compare(spec, { registry, shard: { index: 2, count: 3 } });
    const s3 = await compare(spec, { registry, shard: { index: 3, count: 3 } });
    expect(s1.runs.length + s2.runs.length + s3.runs.length).toBe(8);
    const merged = mergeResults([s3, s1, s2]);
    expect(canonicalRuns(merged.runs)).toEqual(canonicalRuns(full.runs));
    expect(merged.summary.map((r) => r.finalLossMean)).toEqual(full.summary.map((r) => r.finalLossMean));

    // Resume: with 5 finished runs given, only the 3 others run.
    const calls = testSgdCalls;
    let ran = 0;
    const resumed = await compare(spec, { registry, existing: full.runs.slice(0, 5), onRunStart: () => ran++ });
    expect(ran).toBe(3);
    expect(resumed.runs.slice(0, 5)).toEqual(full.runs.slice(0, 5));
    expect(canonicalRuns(resumed.runs)).toEqual(canonicalRuns(full.runs));
    expect(testSgdCalls - calls).toBeLessThan(60); // the 4 test-sgd runs would take > 60 steps
  });

  it('records a run that throws as failed instead of aborting the comparison', async () => {
    const r = await compare(
      { ...spec, problems: [spec.problems[0]], optimizers: ['test-broken', 'test-sgd'], seeds: [0] },
      withRegistry,
    );
    expect(r.runs[0].final).toMatchObject({ stopReason: 'error', error: 'boom', diverged: true });
    expect(r.runs[1].final.reachedTarget).toBe(true);
  });
});

describe('tune', () => {
  it('picks the grid value with the lowest final loss and reruns it with each seed', async () => {
    const r = await tune(
      {
        problem: 'quadratic',
        problemOptions: { dim: 4, condition: 10 },
        optimizer: 'test-sgd',
        budget: { steps: 15 },
        grid: [0.01, 0.1, 1, 100],
        seeds: [0, 1],
      },
      withRegistry,
    );
    expect(r.best).toBe(1);
    expect(r.trials.find((t) => t.value === 100)?.diverged).toBe(true);
    expect(r.runs.map((x) => x.seed)).toEqual([0, 1]);
  });
});

describe('performance profile', () => {
  const row = (p: string, o: string, seconds: number | null): SummaryRow => ({
    problemId: p,
    optimizer: o,
    seeds: 1,
    finalLossMean: 0,
    finalLossStd: 0,
    testAccuracyMean: null,
    reached: seconds === null ? 0 : 1,
    diverged: 0,
    failed: 0,
    stepsToTarget: seconds,
    secondsToTarget: seconds,
    gradEquivalentsToTarget: seconds,
    evalsToTarget: null,
    gradEquivalentsPerStep: 1,
    evalsPerStep: { lossEvals: 0, gradEvals: 1, hvpEvals: 0 },
    secondsPerStep: 1,
    target: 1,
  });
  it('computes Dolan-More ratios and rho(tau)', () => {
    const p = performanceProfile([
      row('a', 'x', 1),
      row('a', 'y', 2),
      row('b', 'x', 6),
      row('b', 'y', 3),
      row('c', 'x', null),
      row('c', 'y', null),
    ]);
    expect(p.problems).toEqual(['a', 'b']);
    expect(p.ratios.x).toEqual({ a: 1, b: 2 });
    expect(p.ratios.y).toEqual({ a: 2, b: 1 });
    const rho = (o: string, tau: number) =>
      p.curves.find((c) => c.optimizer === o)?.points.find((q) => q.tau === tau)?.rho;
    expect(rho('x', 1)).toBe(0.5);
    expect(rho('x', 2)).toBe(1);
  });
});
