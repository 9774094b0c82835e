/**
 * Muon against a float64 numpy reference written from optax's contrib.muon and KellerJordan/Muon
 * (scripts/reference/muon_reference.py -> test/fixtures/muon-reference.json): one step and 20
 * steps on square, tall and wide matrices plus a bias (the AdamW part), under three option sets;
 * Newton-Schulz outputs and their singular values; the conventions (validation, NaN guard, leaks,
 * fit drop-in, config round trip).
 */
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { Muon, newtonSchulz, type MuonOptions } from '../optimizers/muon.js';
import { getOptimizerEntry } from '../optimizers/index.js';
import { warmupCosine } from '../src/optim/schedules.js';
import { relErr } from './optim-helpers.js';

interface Fixture {
  shapes: Record<string, number[]>;
  init: Record<string, number[]>;
  curvature: Record<string, number[]>;
  target: Record<string, number[]>;
  steps: number;
  cases: {
    name: string;
    options: MuonOptions;
    afterStep1: Record<string, number[]>;
    afterStep20: Record<string, number[]>;
  }[];
  newtonSchulz: {
    shape: [number, number];
    x: number[];
    ns: number[];
    singularValuesX: number[];
    singularValuesNS: number[];
  }[];
}

const fixture = JSON.parse(readFileSync(new URL('./fixtures/muon-reference.json', import.meta.url), 'utf8')) as Fixture;
const NAMES = Object.keys(fixture.shapes);

/** Singular values of a small matrix via the eigenvalues of X^T X (float64 Jacobi). */
function singularValues(x: number[], rows: number, cols: number): number[] {
  const n = Math.min(rows, cols);
  // Gram of the small side: G = X X^T if rows <= cols, else X^T X.
  const g: number[][] = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  const at = (i: number, j: number): number => x[i * cols + j]!;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      if (rows <= cols) for (let k = 0; k < cols; k++) s += at(i, k) * at(j, k);
      else for (let k = 0; k < rows; k++) s += at(k, i) * at(k, j);
      g[i]![j] = s;
    }
  }
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += g[p]![q]! ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        if (Math.abs(g[p]![q]!) < 1e-300) continue;
        const theta = (g[q]![q]! - g[p]![p]!) / (2 * g[p]![q]!);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const gkp = g[k]![p]!;
          const gkq = g[k]![q]!;
          g[k]![p] = c * gkp - s * gkq;
          g[k]![q] = s * gkp + c * gkq;
        }
        for (let k = 0; k < n; k++) {
          const gpk = g[p]![k]!;
          const gqk = g[q]![k]!;
          g[p]![k] = c * gpk - s * gqk;
          g[q]![k] = s * gpk + c * gqk;
        }
      }
    }
  }
  return g.map((r, i) => Math.sqrt(Math.max(0, r[i]!))).sort((a, b) => b - a);
}

interface Problem {
  vars: Record<string, tf.Variable>;
  loss: () => tf.Scalar;
  dispose: () => void;
}

let problemId = 0;
/** L = sum_p 0.5 sum(h_p (p - target_p)^2), the generator's loss. */
function problem(): Problem {
  const id = problemId++;
  const vars: Record<string, tf.Variable> = {};
  const h: Record<string, tf.Tensor> = {};
  const t: Record<string, tf.Tensor> = {};
  for (const k of NAMES) {
    const shape = fixture.shapes[k]!;
    vars[k] = tf.variable(tf.tensor(fixture.init[k]!, shape), true, `muonref${id}_${k}`);
    h[k] = tf.tensor(fixture.curvature[k]!, shape);
    t[k] = tf.tensor(fixture.target[k]!, shape);
  }
  const loss = (): tf.Scalar =>
    tf.tidy(() =>
      tf.addN(NAMES.map((k) => tf.mul(0.5, tf.sum(tf.mul(h[k]!, tf.square(tf.sub(vars[k]!, t[k]!))))))),
    ) as tf.Scalar;
  return { vars, loss, dispose: () => tf.dispose([...Object.values(vars), ...Object.values(h), ...Object.values(t)]) };
}

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`Muon vs the float64 reference (${backend})`, () => {
    beforeAll(async () => {
      expect(await initBackend(backend)).toBe(backend);
    });

    for (const c of fixture.cases) {
      it(`${c.name}: 1 step and ${fixture.steps} steps`, () => {
        const pb = problem();
        const opt = new Muon(c.options);
        const varList = Object.values(pb.vars);
        opt.minimize(pb.loss, false, varList);
        for (const k of NAMES) {
          const got = pb.vars[k]!.dataSync();
          const init = fixture.init[k]!;
          // The step itself (p1 - p0) to float32 accuracy, and the parameter.
          const step = Array.from(got, (v, i) => v - init[i]!);
          const refStep = c.afterStep1[k]!.map((v, i) => v - init[i]!);
          expect(relErr(step, refStep), `${k}: step 1`).toBeLessThan(1e-4);
          expect(relErr(got, c.afterStep1[k]!), `${k} after step 1`).toBeLessThan(1e-5);
        }
        for (let s = 1; s < fixture.steps; s++) opt.minimize(pb.loss, false, varList);
        for (const k of NAMES) {
          const e = relErr(pb.vars[k]!.dataSync(), c.afterStep20[k]!);
          expect(e, `${k} after step ${fixture.steps}`).toBeLessThan(1e-4);
        }
        // The parameters really moved (the comparison is not of two near-initial points).
        for (const k of NAMES) expect(relErr(c.afterStep20[k]!, fixture.init[k]!)).toBeGreaterThan(0.05);
        opt.dispose();
        pb.dispose();
      });
    }

    it('Newton-Schulz matches the reference; singular values in the quintic band', () => {
      for (const e of fixture.newtonSchulz) {
        const [rows, cols] = e.shape;
        const y = tf.tidy(() => newtonSchulz(tf.tensor2d(e.x, [rows, cols]), [3.4445, -4.775, 2.0315], 5, 1e-8));
        const got = Array.from(y.dataSync());
        y.dispose();
        expect(relErr(got, e.ns), `${rows}x${cols}`).toBeLessThan(1e-5);
        const sv = singularValues(got, rows, cols);
        for (let i = 0; i < sv.length; i++) expect(Math.abs(sv[i]! - e.singularValuesNS[i]!)).toBeLessThan(1e-5);
        // Closed form: NS acts on each singular value s/||X||_F by the scalar quintic
        // f(s) = a s + b s^3 + c s^5, five times; the singular vectors are X's.
        const fro = Math.hypot(...e.singularValuesX);
        const mapped = e.singularValuesX.map((s0) => {
          let s = s0 / (fro + 1e-8);
          for (let k = 0; k < 5; k++) s = 3.4445 * s - 4.775 * s ** 3 + 2.0315 * s ** 5;
          return s;
        });
        const sorted = [...mapped].sort((p, q) => q - p);
        for (let i = 0; i < sv.length; i++) expect(Math.abs(sv[i]! - sorted[i]!)).toBeLessThan(1e-5);
        // The band: a singular value of at least 1% of ||X||_F comes out in [0.68, 1.14].
        e.singularValuesX.forEach((s0, i) => {
          if (s0 >= 0.01 * fro) {
            expect(mapped[i]!).toBeGreaterThan(0.68);
            expect(mapped[i]!).toBeLessThan(1.14);
          }
        });
      }
    });
  });
}

describe('Muon', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('orthogonalises a random gradient: singular values near 1, directions of U V^T', () => {
    const [rows, cols] = [40, 16];
    const g = tf.randomNormal([rows, cols], 0, 1, 'float32', 3) as tf.Tensor2D;
    const y = tf.tidy(() => newtonSchulz(g, [3.4445, -4.775, 2.0315], 5, 1e-8));
    const sv = singularValues(Array.from(y.dataSync()), rows, cols);
    expect(Math.min(...sv)).toBeGreaterThan(0.68);
    expect(Math.max(...sv)).toBeLessThan(1.14);
    // Y^T Y is near the identity: its off-diagonal part is small against its diagonal.
    const yty = tf.tidy(() => tf.matMul(y, y, true, false));
    const m = yty.arraySync() as number[][];
    let off = 0;
    let diag = 0;
    for (let i = 0; i < cols; i++) {
      for (let j = 0; j < cols; j++) {
        if (i === j) diag += m[i]![j]! ** 2;
        else off += m[i]![j]! ** 2;
      }
    }
    expect(Math.sqrt(off / diag)).toBeLessThan(0.35);
    // Same result in the other orientation (NS(G^T) = NS(G)^T).
    const yT = tf.tidy(() => tf.transpose(newtonSchulz(tf.transpose(g), [3.4445, -4.775, 2.0315], 5, 1e-8)));
    expect(relErr(yT.dataSync(), y.dataSync())).toBeLessThan(1e-5);
    tf.dispose([g, y, yty, yT]);
  });

  it('splits the parameters: 2-D through Muon (slot mu), others through AdamW', async () => {
    const pb = problem();
    const opt = new Muon();
    opt.minimize(pb.loss, false, Object.values(pb.vars));
    const names = (await opt.getWeights()).map((w) => w.name);
    expect(names).toContain(`${pb.vars.square!.name}/mu`);
    expect(names).toContain(`${pb.vars.tall!.name}/mu`);
    expect(names).not.toContain(`${pb.vars.square!.name}/expAvg`);
    expect(names).toContain(`${pb.vars.bias!.name}/expAvg`);
    expect(names).toContain(`${pb.vars.bias!.name}/expAvgSq`);
    expect(names).not.toContain(`${pb.vars.bias!.name}/mu`);
    opt.dispose();
    pb.dispose();
  });

  it('validates its options with errors naming the option', () => {
    expect(() => new Muon({ nsCoeffs: [1, 2] as never })).toThrow(/Invalid nsCoeffs: \[1,2\]/);
    expect(() => new Muon({ nsSteps: 0 })).toThrow(/Invalid nsSteps: 0/);
    expect(() => new Muon({ nsSteps: 2.5 })).toThrow(/Invalid nsSteps: 2.5/);
    expect(() => new Muon({ eps: 0 })).toThrow(/Invalid eps: 0/);
    expect(() => new Muon({ beta: 1 })).toThrow(/Invalid beta: 1/);
    expect(() => new Muon({ consistentRms: -0.2 })).toThrow(/Invalid consistentRms: -0.2/);
    expect(() => new Muon({ adamLearningRate: -1 })).toThrow(/Invalid adamLearningRate: -1/);
    expect(() => new Muon({ lr: 0.1 } as never)).toThrow(/Unknown option 'lr' for Muon/);
    expect(getOptimizerEntry('muon').create({ nsSteps: 3 })).toBeInstanceOf(Muon);
  });

  it('skips a step with a NaN gradient (weights and state untouched) and does not leak', () => {
    const pb = problem();
    const opt = new Muon({ learningRate: 0.05 });
    const vars = Object.values(pb.vars);
    opt.minimize(pb.loss, false, vars);
    const before = vars.map((v) => Array.from(v.dataSync()));
    const grads = vars.map((v, i) => ({ name: v.name, tensor: i === 0 ? tf.fill(v.shape, NaN) : tf.onesLike(v) }));
    opt.applyGradients(grads);
    expect(opt.skippedSteps).toBe(1);
    expect(opt.iterations).toBe(1);
    vars.forEach((v, i) => expect(Array.from(v.dataSync())).toEqual(before[i]));
    tf.dispose(grads.map((g) => g.tensor));

    opt.minimize(pb.loss, false, vars); // warm: all slots exist
    const n0 = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) opt.minimize(pb.loss, false, vars);
    expect(tf.memory().numTensors).toBe(n0);
    opt.dispose();
    pb.dispose();
  });

  it('stays finite for huge gradients (overflow-safe normalisation)', () => {
    const w = tf.variable(tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]));
    const opt = new Muon({ learningRate: 0.1 });
    const g = tf.tensor2d([1e30, -2e30, 3e30, 1e29, 5e30, -1e30], [2, 3]);
    opt.applyGradients([{ name: w.name, tensor: g }]);
    expect(opt.skippedSteps).toBe(0);
    const after = Array.from(w.dataSync());
    expect(after.every(Number.isFinite)).toBe(true);
    expect(relErr(after, [1, 2, 3, 4, 5, 6])).toBeGreaterThan(1e-3);
    tf.dispose([w, g]);
    opt.dispose();
  });

  it('is a drop-in model.fit optimizer; config round-trips with an adamLearningRate schedule', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({
          inputShape: [6],
          units: 12,
          activation: 'tanh',
          kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
        }),
        tf.layers.dense({
          units: 3,
          activation: 'softmax',
          kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
        }),
      ],
    });
    const opt = new Muon({
      learningRate: 0.02,
      adamLearningRate: warmupCosine({ peak: 3e-3, warmupSteps: 2, decaySteps: 40 }),
    });
    model.compile({ optimizer: opt, loss: 'categoricalCrossentropy' });
    const xs = tf.randomNormal([48, 6], 0, 1, 'float32', 5);
    const ys = tf.oneHot(tf.argMax(tf.matMul(xs, tf.randomNormal([6, 3], 0, 1, 'float32', 6)), 1), 3);
    const h = await model.fit(xs, ys, { epochs: 8, batchSize: 16, shuffle: false, verbose: 0 });
    const loss = h.history.loss as number[];
    expect(loss[loss.length - 1]!).toBeLessThan(0.8 * loss[0]!);
    expect(opt.iterations).toBe(24);

    const config = opt.getConfig();
    expect(config.adamLearningRate).toMatchObject({ kind: 'join' });
    const copy = Muon.fromConfig(Muon, JSON.parse(JSON.stringify(config)) as tf.serialization.ConfigDict) as Muon;
    expect(copy.getConfig()).toEqual(config);
    expect(copy.options.nsCoeffs).toEqual([3.4445, -4.775, 2.0315]);
    tf.dispose([xs, ys]);
    model.dispose();
  });
});
