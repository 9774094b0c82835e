/**
 * LBFGS against torch.optim.LBFGS, step for step, on the harness's deterministic problems
 * (fixtures: scripts/reference/lbfgs_problems.ts dumps the problems, lbfgs_reference.py runs
 * torch 1.13 in float32 and float64 and torch's own _strong_wolfe / _cubic_interpolate in
 * float64), plus the drop-in contract: state through getWeights/setWeights and model.fit,
 * the non-finite guard, validation, leaks.
 *
 * Tolerance of the trajectory comparison. tfjs and torch both run in float32 but round
 * differently (reduction order, fused ops), so they cannot agree bit for bit. The yardstick is
 * what rounding alone does to torch: the distance between its float32 and float64 runs, d_k,
 * after step k. We compare while that distance is small (the trajectory is not yet dominated by
 * rounding: d_k <= 1e-2 (1 + |x|), and the two torch runs took the same iterations and
 * evaluations so far) and require |x_tfjs - x_torch32| <= max(20 d_k, 1e-5) (1 + |x|). Where
 * torch's step was cut by its budget (maxIter or maxEval), the iteration and evaluation counts
 * must be equal; a step that ended on a tolerance (near the optimum: |f - f_prev| < 1e-9 and
 * g^T d > -1e-9 are decided by float32 noise) is compared on the point only, and is the last
 * compared step of its case.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { LBFGS, cubicInterpolate, getOptimizerEntry, strongWolfe, type LBFGSOptions } from '../optimizers/index.js';
import { harnessRegistry, problems } from '../experiments/index.js';
import { runExperiment } from '../src/harness/run.js';
import {
  buildProblem,
  fixtureProblems,
  flatValues,
  readFixture,
  type FixtureProblem,
} from './helpers/lbfgs-problems.js';

interface TorchStep {
  loss: number;
  params: number[];
  nIter: number;
  funcEvals: number;
}
interface Trajectory {
  problem: string;
  options: LBFGSOptions;
  steps: number;
  float32: TorchStep[];
  float64: TorchStep[];
}
interface Reference {
  trajectories: Trajectory[];
  wolfe: {
    x0: number[];
    d: number[];
    t0: number;
    f: number;
    t: number;
    evals: number;
    trials: number[];
    g: number[];
  }[];
  cubic: {
    x1: number;
    f1: number;
    g1: number;
    x2: number;
    f2: number;
    g2: number;
    bounds: [number, number] | null;
    result: number;
  }[];
}

const ref = readFixture<Reference>('lbfgs-reference.json');
const byId = new Map<string, FixtureProblem>(fixtureProblems().map((p) => [p.id, p]));
const maxAbs = (a: number[]): number => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxDiff = (a: number[], b: number[]): number => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

beforeAll(async () => {
  await initBackend('cpu');
});

describe('fixture problems', () => {
  it('are the harness problems: same start point, same loss at the start and at a moved point', () => {
    for (const p of byId.values()) {
      const h = problems.get(p.harness.name, p.harness.options);
      const mine = buildProblem(p);
      expect(h.params.map((v) => v.shape)).toEqual(p.start.map((s) => s.shape));
      expect(flatValues(h.params)).toEqual(p.start.flatMap((s) => Array.from(Float32Array.from(s.values))));
      for (const shift of [0, 0.1]) {
        h.params.forEach((v, i) => v.assign(tf.add(mine.vars[i]!, shift)));
        mine.vars.forEach((v) => v.assign(tf.add(v, shift)));
        const a = h.loss();
        const b = mine.loss();
        expect(Math.abs(a.dataSync()[0]! - b.dataSync()[0]!)).toBeLessThanOrEqual(1e-6 * Math.abs(a.dataSync()[0]!));
        tf.dispose([a, b]);
      }
      h.dispose?.();
      mine.dispose();
    }
  });
});

describe('LBFGS against torch.optim.LBFGS', () => {
  let comparedSteps = 0;
  let countedSteps = 0;
  for (const c of ref.trajectories) {
    it(`${c.problem} ${JSON.stringify(c.options)}: matches torch float32 step for step`, () => {
      const pb = buildProblem(byId.get(c.problem)!);
      const opt = new LBFGS(c.options);
      const maxIter = c.options.maxIter ?? 20;
      const maxEval = c.options.maxEval ?? Math.floor((maxIter * 5) / 4);
      let prev = { nIter: 0, funcEvals: 0 };
      let compared = 0;
      for (let k = 0; k < c.steps; k++) {
        const t32 = c.float32[k]!;
        const t64 = c.float64[k]!;
        const scale = 1 + maxAbs(t32.params);
        const d = maxDiff(t32.params, t64.params);
        if (t32.nIter !== t64.nIter || t32.funcEvals !== t64.funcEvals || d > 1e-2 * scale) break;
        const l = opt.minimize(pb.loss, true)!;
        const loss = l.dataSync()[0]!;
        l.dispose();
        expect(Math.abs(loss - t32.loss)).toBeLessThanOrEqual(1e-3 * Math.abs(t32.loss) + 1e-7);
        expect(maxDiff(flatValues(pb.vars), t32.params)).toBeLessThanOrEqual(Math.max(20 * d, 1e-5) * scale);
        compared++;
        const budget = t32.nIter - prev.nIter === maxIter || t32.funcEvals - prev.funcEvals >= maxEval;
        if (!budget) break;
        expect(opt.nIter).toBe(t32.nIter);
        expect(opt.funcEvals).toBe(t32.funcEvals);
        countedSteps++;
        prev = t32;
      }
      expect(compared).toBeGreaterThanOrEqual(1);
      comparedSteps += compared;
      pb.dispose();
      opt.dispose();
    });
  }
  it('compared enough steps (the rules above did not skip the comparison)', () => {
    expect(comparedSteps).toBeGreaterThanOrEqual(25);
    expect(countedSteps).toBeGreaterThanOrEqual(18);
  });
});

describe('line search (float64, against torch _cubic_interpolate / _strong_wolfe)', () => {
  it('cubicInterpolate equals torch to 1e-12', () => {
    expect(ref.cubic.length).toBeGreaterThan(0);
    for (const c of ref.cubic) {
      const r = cubicInterpolate(c.x1, c.f1, c.g1, c.x2, c.f2, c.g2, c.bounds ?? undefined);
      expect(Math.abs(r - c.result)).toBeLessThanOrEqual(1e-12 * (1 + Math.abs(c.result)));
    }
  });

  it('strongWolfe makes the same trials and returns the same step on Rosenbrock', () => {
    const rosen = (x: number[]): { f: number; g: number[] } => {
      const [a, b] = x as [number, number];
      return {
        f: 100 * (b - a * a) ** 2 + (1 - a) ** 2,
        g: [-400 * a * (b - a * a) - 2 * (1 - a), 200 * (b - a * a)],
      };
    };
    const dot = (u: number[], v: number[]) => u[0]! * v[0]! + u[1]! * v[1]!;
    let extrapolated = 0;
    for (const c of ref.wolfe) {
      const trials: number[] = [];
      const { f: f0, g: g0 } = rosen(c.x0);
      const res = strongWolfe(
        (t) => {
          trials.push(t);
          const { f, g } = rosen([c.x0[0]! + t * c.d[0]!, c.x0[1]! + t * c.d[1]!]);
          return { f, g, gtd: dot(g, c.d) };
        },
        c.t0,
        f0,
        g0,
        dot(g0, c.d),
        maxAbs(c.d),
      );
      expect(trials.length).toBe(c.trials.length);
      trials.forEach((t, i) => expect(Math.abs(t - c.trials[i]!)).toBeLessThanOrEqual(1e-10 * Math.abs(c.trials[i]!)));
      expect(res.evals).toBe(c.evals);
      expect(Math.abs(res.t - c.t)).toBeLessThanOrEqual(1e-10 * Math.abs(c.t));
      expect(Math.abs(res.f - c.f)).toBeLessThanOrEqual(1e-10 * (1 + Math.abs(c.f)));
      expect(maxDiff(res.g, c.g)).toBeLessThanOrEqual(1e-8 * (1 + maxAbs(c.g)));
      if (c.trials.some((t, i) => i > 0 && t > c.trials[i - 1]!)) extrapolated++;
    }
    expect(ref.wolfe.length).toBeGreaterThanOrEqual(6);
    expect(extrapolated).toBeGreaterThan(0); // the bracketing phase's extrapolation is exercised
  });
});

/** Rosenbrock-10 from the harness start, as variables + closure. */
function rosen10() {
  return buildProblem(byId.get('rosenbrock-10')!);
}

describe('state, guard, contract', () => {
  it('getWeights -> new LBFGS().setWeights continues the same trajectory bit for bit', async () => {
    const options: LBFGSOptions = { lineSearchFn: 'strong_wolfe', historySize: 3, maxIter: 5 };
    for (const lineSearchFn of ['strong_wolfe', null] as const) {
      const a = rosen10();
      const optA = new LBFGS({ ...options, lineSearchFn });
      for (let k = 0; k < 3; k++) optA.minimize(a.loss);
      const saved = await optA.getWeights();
      const b = rosen10();
      b.vars.forEach((v, i) => v.assign(a.vars[i]!));
      const optB = new LBFGS({ ...options, lineSearchFn });
      await optB.setWeights(saved);
      tf.dispose(saved.map((w) => w.tensor));
      for (let k = 0; k < 4; k++) {
        const la = optA.minimize(a.loss, true)!;
        const lb = optB.minimize(b.loss, true)!;
        expect(lb.dataSync()[0]).toBe(la.dataSync()[0]);
        tf.dispose([la, lb]);
        expect(flatValues(b.vars)).toEqual(flatValues(a.vars));
        expect([optB.nIter, optB.funcEvals]).toEqual([optA.nIter, optA.funcEvals]);
      }
      // A fresh optimizer without the state takes a different path (the state matters).
      const c = rosen10();
      c.vars.forEach((v, i) => v.assign(b.vars[i]!));
      new LBFGS({ ...options, lineSearchFn }).minimize(c.loss);
      optB.minimize(b.loss);
      expect(flatValues(c.vars)).not.toEqual(flatValues(b.vars));
      [a, b, c].forEach((p) => p.dispose());
      optA.dispose();
      optB.dispose();
    }
  });

  it('is leak-free: tf.memory().numTensors constant once the history is full', () => {
    for (const lineSearchFn of ['strong_wolfe', null] as const) {
      const p = rosen10();
      const opt = new LBFGS({ lineSearchFn, historySize: 3, maxIter: 4 });
      for (let k = 0; k < 3; k++) opt.minimize(p.loss);
      const n0 = tf.memory().numTensors;
      for (let k = 0; k < 5; k++) {
        const l = opt.minimize(p.loss, true)!;
        l.dispose();
        expect(tf.memory().numTensors).toBe(n0);
      }
      p.dispose();
      opt.dispose();
    }
  });

  it('a non-finite loss anywhere in the step undoes the step: variables and state unchanged, skip counted', async () => {
    const p = rosen10();
    const opt = new LBFGS({ lineSearchFn: 'strong_wolfe', historySize: 3, maxIter: 5 });
    opt.minimize(p.loss);
    const events: string[] = [];
    opt.addSkipListener((e) => events.push(e.reason));
    const before = await opt.getWeights();
    const x0 = flatValues(p.vars);
    for (const poisonAt of [1, 3]) {
      let calls = 0;
      const poisoned = () =>
        tf.tidy(() => {
          calls++;
          return calls >= poisonAt ? tf.mul(p.loss(), NaN) : p.loss();
        }) as tf.Scalar;
      opt.minimize(poisoned);
      expect(calls).toBe(poisonAt); // the step stopped at the first NaN
      expect(flatValues(p.vars)).toEqual(x0);
      const after = await opt.getWeights();
      expect(after.map((w) => w.name)).toEqual(before.map((w) => w.name));
      after.forEach((w, i) => {
        if (w.name.endsWith('skippedSteps')) return;
        expect(Array.from(w.tensor.dataSync())).toEqual(Array.from(before[i]!.tensor.dataSync()));
      });
      tf.dispose(after.map((w) => w.tensor));
    }
    expect(events).toEqual(['loss', 'loss']);
    expect(opt.skippedSteps).toBe(2);
    expect(opt.lastStep!.reason).toBe('non-finite');
    // and it continues normally afterwards
    opt.minimize(p.loss);
    expect(flatValues(p.vars)).not.toEqual(x0);
    tf.dispose(before.map((w) => w.tensor));
    p.dispose();
    opt.dispose();
  });

  it('validates options with clear errors; torch defaults; config round trip; registry', () => {
    expect(() => new LBFGS({ lineSearchFn: 'armijo' as never })).toThrow(
      /Invalid lineSearchFn: "armijo" \(must be 'strong_wolfe' or null\)/,
    );
    expect(() => new LBFGS({ maxEval: 0 })).toThrow(/Invalid maxEval: 0/);
    expect(() => new LBFGS({ historySize: 0 })).toThrow(/Invalid historySize/);
    expect(() => new LBFGS({ maxIter: 1.5 })).toThrow(/Invalid maxIter: 1.5 \(must be an integer\)/);
    expect(() => new LBFGS({ lr: 1 } as never)).toThrow(/Unknown option 'lr' for LBFGS/);
    const o = new LBFGS();
    expect(o.options).toMatchObject({
      learningRate: 1,
      maxIter: 20,
      toleranceGrad: 1e-7,
      toleranceChange: 1e-9,
      historySize: 100,
      lineSearchFn: null,
    });
    expect(o.maxEval).toBe(25);
    expect(new LBFGS({ maxIter: 7 }).maxEval).toBe(8);
    const cfg = new LBFGS({ lineSearchFn: 'strong_wolfe', maxIter: 7, maxEval: 9 }).getConfig();
    const back = LBFGS.fromConfig(LBFGS, cfg) as LBFGS;
    expect(back.options).toMatchObject({ lineSearchFn: 'strong_wolfe', maxIter: 7, maxEval: 9 });
    expect(LBFGS.className).toBe('CurvatureLBFGS');
    const entry = getOptimizerEntry('lbfgs');
    expect(entry.options.map((x) => x.name)).toEqual(expect.arrayContaining(['maxIter', 'maxEval', 'lineSearchFn']));
    expect(entry.create({ historySize: 5 })).toBeInstanceOf(LBFGS);
    expect(() => new LBFGS().applyGradients({})).toThrow(/needs the loss closure/);
    // tfjs-layers' model loader camelCases string config values
    expect(new LBFGS({ lineSearchFn: 'strongWolfe' as never }).options.lineSearchFn).toBe('strong_wolfe');
  });

  it('refuses other variables than its state was built for, naming the sizes, without leaking', () => {
    const a = tf.variable(tf.tensor1d([1, 2, 3]));
    const b = tf.variable(tf.tensor1d([1, 2]));
    const opt = new LBFGS({ maxIter: 2 });
    opt.minimize(() => tf.sum(tf.square(a)) as tf.Scalar);
    const n0 = tf.memory().numTensors;
    expect(() => opt.minimize(() => tf.sum(tf.square(b)) as tf.Scalar)).toThrow(
      /2 parameters but the optimizer's state was built for 3/,
    );
    expect(tf.memory().numTensors).toBe(n0);
    tf.dispose([a, b]);
    opt.dispose();
  });

  it('stops at once on a zero gradient (toleranceGrad) without moving, like torch', () => {
    const x = tf.variable(tf.tensor1d([1, 1]));
    const opt = new LBFGS();
    opt.minimize(() => tf.sum(tf.square(tf.sub(x, 1))) as tf.Scalar);
    expect(Array.from(x.dataSync())).toEqual([1, 1]);
    expect(opt.lastStep!.reason).toBe('tolerance-grad');
    expect([opt.nIter, opt.funcEvals, opt.iterations]).toEqual([0, 1, 0]);
    x.dispose();
    opt.dispose();
  });
});

describe('tfjs-layers', () => {
  const p = () => byId.get('logreg-iris')!;
  function model(): tf.Sequential {
    const m = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 3, activation: 'softmax' })] });
    m.setWeights(p().start.map((s) => tf.tensor(s.values, s.shape)));
    return m;
  }
  const data = () => [tf.tensor2d(p().X!, [p().n!, 4]), tf.tensor2d(p().Y!, [p().n!, 3])] as const;

  it('full-batch model.fit is L-BFGS on the loss: reports the first closure value, leak-free, same as minimize', async () => {
    const [X, Y] = data();
    const m = model();
    const opt = new LBFGS({ lineSearchFn: 'strong_wolfe', maxIter: 5, historySize: 2 });
    m.compile({ optimizer: opt, loss: 'categoricalCrossentropy' });
    const losses: number[] = [];
    let n0 = -1;
    await m.fit(X, Y, {
      epochs: 6,
      batchSize: p().n!,
      shuffle: false,
      verbose: 0,
      callbacks: {
        onEpochEnd: async (epoch, logs) => {
          losses.push(logs!.loss as number);
          if (epoch === 2) n0 = tf.memory().numTensors;
          if (epoch > 2) expect(tf.memory().numTensors).toBe(n0);
        },
      },
    });
    expect(losses[5]!).toBeLessThan(0.1);
    // the same steps with minimize on the fixture's loss (our log-softmax cross-entropy;
    // tfjs-layers takes the log of clipped softmax probabilities)
    const mine = buildProblem(p());
    const opt2 = new LBFGS({ lineSearchFn: 'strong_wolfe', maxIter: 5, historySize: 2 });
    for (let k = 0; k < 6; k++) {
      const l = opt2.minimize(mine.loss, true)!;
      // Equal to 1e-4 for the first steps; near the optimum (loss ~0.035, a flat valley) the
      // rounding of the two float32 cross-entropy formulas moves the iterates apart, as it
      // moves torch's float32 run away from its float64 run.
      if (k < 3) expect(Math.abs(l.dataSync()[0]! - losses[k]!)).toBeLessThanOrEqual(1e-4 * losses[k]!);
      if (k > 0) expect(losses[k]!).toBeLessThanOrEqual(losses[k - 1]!);
      l.dispose();
    }
    expect(opt.nIter).toBeGreaterThanOrEqual(15); // the first 3 fit batches ran maxIter iterations each
    expect(opt.nIter).toBeLessThanOrEqual(30);
    tf.dispose([X, Y]);
    mine.dispose();
    opt.dispose();
    opt2.dispose();
  });
  // model.save / loadLayersModel with the optimizer: test/save-reload.test.ts (LBFGS cases).
});

describe('harness', () => {
  it('runs on rosenbrock through the registry: target reached, every closure call counted', async () => {
    const r = await runExperiment(
      {
        problem: 'rosenbrock',
        optimizer: 'lbfgs',
        optimizerOptions: { lineSearchFn: 'strong_wolfe' },
        budget: { steps: 4 },
        seed: 0,
      },
      { registry: harnessRegistry },
    );
    expect(r.final.reachedTarget).toBe(true);
    expect(r.final.stepsToTarget).toBeLessThanOrEqual(3);
    // every step is a torch step: 1 + (line-search) evaluations, up to maxEval = 25 per step
    expect(r.final.gradEvals).toBeGreaterThan(20);
    expect(r.final.gradEvals).toBeLessThanOrEqual(4 * 25);
    expect(r.final.lossEvals).toBe(0);
  });
});
