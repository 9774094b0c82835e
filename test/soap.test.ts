/**
 * SOAP against a float64 numpy port of the paper / the authors' soap.py
 * (scripts/reference/soap_reference.py -> test/fixtures/soap-reference.json; the generator also
 * cross-checks that port against soap.py itself in torch float64): trajectories of 22-25 steps
 * with several eigenbasis refreshes on square, tall, wide, vector, 3-D (mergeDims) and 4-D
 * parameters and a dimension over maxPreconditionDim; the first eigenbasis against the
 * statistic; src/linalg qr against numpy.linalg.qr; the conventions (validation, NaN guard,
 * leaks, fit drop-in, config and state round trip).
 */
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { SOAP, soapLayout, type SOAPOptions } from '../optimizers/soap.js';
import { getOptimizerEntry } from '../optimizers/index.js';
import { orthonormalBasis, qr } from '../src/linalg/index.js';

interface Case {
  name: string;
  shape: number[];
  options: SOAPOptions;
  steps: number;
  injectQ0: boolean;
  merged: number[];
  factored: boolean[];
  q0: (number[][] | null)[] | null;
  eig0: (number[] | null)[];
  trajectory: Record<string, number[]>;
}

interface Fixture {
  savedSteps: number[];
  cases: Case[];
  qr: { a: number[][]; q: number[][]; r: number[][]; rankDeficient?: boolean }[];
}

const fixture = JSON.parse(readFileSync(new URL('./fixtures/soap-reference.json', import.meta.url), 'utf8')) as Fixture;

/** The generator's closed-form problem, float32-rounded: g = h (w - target) + noise_t. */
function problemArrays(n: number): { w0: Float32Array; h: Float32Array; target: Float32Array } {
  const w0 = new Float32Array(n);
  const h = new Float32Array(n);
  const target = new Float32Array(n);
  for (let k = 0; k < n; k++) {
    w0[k] = 0.5 * Math.sin(0.37 * k + 1.0);
    h[k] = 0.5 + 2.0 * ((k * 0.618) % 1.0);
    target[k] = Math.cos(0.21 * k);
  }
  return { w0, h, target };
}

function noise(n: number, t: number): Float32Array {
  return Float32Array.from({ length: n }, (_, k) => 0.3 * Math.sin(1.7 * k + 0.9 * t + 0.3 * t * k));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

let varCounter = 0;

async function runCase(c: Case): Promise<{ worst: number; eigOk: boolean }> {
  const n = c.shape.reduce((a, b) => a * b, 1);
  const { w0, h, target } = problemArrays(n);
  const w = tf.variable(tf.tensor(w0, c.shape), true, `soap_case_${varCounter++}`);
  const hT = tf.tensor(h, c.shape);
  const tT = tf.tensor(target, c.shape);
  const opt = new SOAP(c.options);
  let worst = 0;
  let eigOk = true;
  for (let step = 0; step <= c.steps; step++) {
    const g = tf.tidy(() => tf.add(tf.mul(hT, tf.sub(w, tT)), tf.tensor(noise(n, step), c.shape)));
    opt.applyGradients([{ name: w.name, tensor: g }]);
    g.dispose();
    if (step === 0) {
      expect(Array.from(w.dataSync()), `${c.name}: the first update leaves p unchanged`).toEqual(Array.from(w0));
      // The first basis diagonalises the statistic with descending eigenvalues (the reference's).
      const weights = await opt.getWeights();
      const byName = new Map(weights.map((x) => [x.name, x.tensor]));
      c.factored.forEach((f, i) => {
        if (!f) return;
        const gg = byName.get(`${w.name}/GG${i}`)! as tf.Tensor2D;
        const q = byName.get(`${w.name}/Q${i}`)! as tf.Tensor2D;
        const eig = c.eig0[i]!;
        const resid = tf.tidy(() => {
          const lam = tf.tensor1d(eig);
          return tf.sub(tf.matMul(gg, q), tf.mul(q, lam)).abs().max(0).arraySync() as number[];
        });
        resid.forEach((r, j) => {
          if (r > 1e-5 * eig[0]! + 1e-7) {
            eigOk = false;
            expect.fail(`${c.name}: GG${i} q_${j} - lambda_${j} q_${j} = ${r} (lambda_0 ${eig[0]})`);
          }
        });
      });
      if (c.injectQ0) {
        // Continue from the reference's basis (its null-space part is eigh's arbitrary choice).
        const replaced = weights.map((x) => {
          const m = /\/Q(\d+)$/.exec(x.name);
          return m ? { name: x.name, tensor: tf.tensor2d(c.q0![Number(m[1])]!) } : x;
        });
        await opt.setWeights(replaced);
        replaced.forEach((x, k) => x.tensor !== weights[k]!.tensor && x.tensor.dispose());
      }
      tf.dispose(weights.map((x) => x.tensor));
    }
    const ref = c.trajectory[String(step)];
    if (ref) {
      let scale = 0;
      for (let k = 0; k < n; k++) scale = Math.max(scale, Math.abs(ref[k]! - w0[k]!));
      worst = Math.max(worst, maxAbsDiff(w.dataSync(), ref) / scale);
    }
  }
  tf.dispose([w, hT, tT]);
  opt.dispose();
  return { worst, eigOk };
}

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`SOAP against the float64 reference (${backend})`, () => {
    beforeAll(async () => {
      await initBackend(backend);
    });

    for (const c of fixture.cases) {
      it(`${c.name} [${c.shape}] -> merged [${c.merged}], factors ${JSON.stringify(c.factored)}: ${c.steps} steps`, async () => {
        expect(
          soapLayout(c.shape, { maxPreconditionDim: 10000, mergeDims: false, precondition1d: false, ...c.options }),
        ).toEqual({
          merged: c.merged,
          factored: c.factored,
        });
        const { worst } = await runCase(c);
        // float32 against float64 over 20+ steps with refreshes: relative to the distance moved.
        expect(worst).toBeLessThan(1e-4);
      });
    }
  });
}

describe('SOAP', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('qr matches numpy.linalg.qr (LAPACK signs), rank-deficient input included', () => {
    for (const e of fixture.qr) {
      const { q, r } = qr(e.a);
      const m = e.q.length;
      const n = e.q[0]!.length;
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) {
          if (e.rankDeficient && j >= 2) continue; // the completion of the basis is arbitrary
          expect(Math.abs(q.data[i * n + j]! - e.q[i]![j]!)).toBeLessThan(1e-9);
        }
      // Q^T Q = I and Q R = A in every case.
      for (let j = 0; j < n; j++)
        for (let k = 0; k < n; k++) {
          let s = 0;
          for (let i = 0; i < m; i++) s += q.data[i * n + j]! * q.data[i * n + k]!;
          expect(Math.abs(s - (j === k ? 1 : 0))).toBeLessThan(1e-12);
        }
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let k = 0; k <= j; k++) s += q.data[i * n + k]! * r.data[k * n + j]!;
          expect(Math.abs(s - e.a[i]![j]!)).toBeLessThan(1e-12);
        }
    }
    expect(() => qr([[1, 2, 3]])).toThrow(/at least as many rows as columns/);
    expect(() =>
      qr([
        [1, NaN],
        [0, 1],
      ]),
    ).toThrow(/non-finite/);
  });

  it('orthonormalBasis (Cholesky-QR2) gives Householder qr Q up to column signs; falls back when singular', () => {
    let seed = 7;
    const rnd = (): number => (seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5;
    for (const [m, n, rank] of [
      [40, 40, 40],
      [60, 25, 25],
      [30, 30, 12],
    ] as const) {
      const b = Array.from({ length: m }, () => Array.from({ length: rank }, rnd));
      const c = Array.from({ length: rank }, () => Array.from({ length: n }, rnd));
      const a = b.map((row) => c[0]!.map((_, j) => row.reduce((s, x, k) => s + x * c[k]![j]!, 0)));
      const q = orthonormalBasis(a);
      const h = qr(a).q;
      for (let j = 0; j < n; j++) {
        let dot = 0;
        for (let k = 0; k < n; k++) {
          let s = 0;
          for (let i = 0; i < m; i++) s += q.data[i * n + j]! * q.data[i * n + k]!;
          expect(Math.abs(s - (j === k ? 1 : 0))).toBeLessThan(1e-10);
        }
        for (let i = 0; i < m; i++) dot += q.data[i * n + j]! * h.data[i * n + j]!;
        if (j < rank) expect(Math.abs(Math.abs(dot) - 1)).toBeLessThan(1e-8);
      }
    }
  });

  it('validates its options with errors naming the option', () => {
    expect(() => new SOAP({ beta1: 1 })).toThrow(/Invalid beta1: 1/);
    expect(() => new SOAP({ shampooBeta: -1 })).toThrow(/Invalid shampooBeta: -1/);
    expect(() => new SOAP({ eps: 0 })).toThrow(/Invalid eps: 0/);
    expect(() => new SOAP({ preconditionFrequency: 2.5 })).toThrow(/Invalid preconditionFrequency: 2.5/);
    expect(() => new SOAP({ maxPreconditionDim: 0 })).toThrow(/Invalid maxPreconditionDim: 0/);
    expect(() => new SOAP({ lr: 0.1 } as never)).toThrow(/Unknown option 'lr' for SOAP/);
    expect(getOptimizerEntry('soap').create({ preconditionFrequency: 3 })).toBeInstanceOf(SOAP);
  });

  it('skips a NaN step (weights and state untouched), does not leak, keeps a basis when eigh fails', async () => {
    const w = tf.variable(tf.randomNormal([5, 3], 0, 1, 'float32', 1));
    const b = tf.variable(tf.zeros([3]));
    const opt = new SOAP({ preconditionFrequency: 2, precondition1d: true, learningRate: 0.01 });
    const grads = (s: number): { name: string; tensor: tf.Tensor }[] => [
      { name: w.name, tensor: tf.randomNormal([5, 3], 0, 1, 'float32', s) },
      { name: b.name, tensor: tf.randomNormal([3], 0, 1, 'float32', s + 100) },
    ];
    for (let s = 0; s < 3; s++) {
      const g = grads(s);
      opt.applyGradients(g);
      tf.dispose(g.map((x) => x.tensor));
    }
    const before = [Array.from(w.dataSync()), Array.from(b.dataSync())];
    const slots = async (): Promise<number[][]> =>
      (await opt.getWeights())
        .filter((x) => !x.name.startsWith('__optimizer__'))
        .map((x) => Array.from(x.tensor.dataSync()));
    const stateBefore = await slots();
    const bad = [
      { name: w.name, tensor: tf.fill([5, 3], NaN) },
      { name: b.name, tensor: tf.ones([3]) },
    ];
    opt.applyGradients(bad);
    expect(opt.skippedSteps).toBe(1);
    expect([Array.from(w.dataSync()), Array.from(b.dataSync())]).toEqual(before);
    expect(await slots()).toEqual(stateBefore);
    tf.dispose(bad.map((x) => x.tensor));
    // Steady state, refreshes included (frequency 2): no tensor leaks.
    const n0 = tf.memory().numTensors;
    for (let s = 10; s < 14; s++) {
      const g = grads(s);
      opt.applyGradients(g);
      tf.dispose(g.map((x) => x.tensor));
    }
    expect(tf.memory().numTensors).toBe(n0);
    // A float32-overflowing gradient: the statistic becomes Inf; the basis is kept, no NaN written.
    const huge = [
      { name: w.name, tensor: tf.fill([5, 3], 3e30) },
      { name: b.name, tensor: tf.ones([3]) },
    ];
    for (let s = 0; s < 2; s++) opt.applyGradients(huge);
    expect(opt.failedEigenbases).toBeGreaterThan(0);
    expect(Array.from(b.dataSync()).every(Number.isFinite)).toBe(true);
    tf.dispose([...huge.map((x) => x.tensor), w, b]);
    opt.dispose();
  });

  it('is a drop-in model.fit optimizer and lowers the loss; config and state round-trip', async () => {
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
    const opt = new SOAP({ learningRate: 0.01, preconditionFrequency: 3, precondition1d: true, shampooBeta: 0.9 });
    model.compile({ optimizer: opt, loss: 'categoricalCrossentropy' });
    const x = tf.randomNormal([64, 6], 0, 1, 'float32', 5);
    const y = tf.oneHot(tf.argMax(tf.matMul(x, tf.randomNormal([6, 3], 0, 1, 'float32', 6)), 1), 3);
    const h = await model.fit(x, y, { epochs: 30, batchSize: 64, verbose: 0 });
    const losses = h.history.loss as number[];
    expect(losses[losses.length - 1]!).toBeLessThan(0.7 * losses[0]!);
    const config = opt.getConfig();
    expect(config).toMatchObject({
      learningRate: 0.01,
      preconditionFrequency: 3,
      precondition1d: true,
      shampooBeta: 0.9,
    });
    const copy = SOAP.fromConfig(SOAP, config) as SOAP;
    expect(copy.options).toEqual(opt.options);
    tf.dispose([x, y]);
    model.dispose();
  });
});
