/**
 * Shampoo against an independent float64 reference (plain numbers + ml-matrix eig), and
 * blocking / merging against the unblocked optimizer on the pieces.
 */
import * as tf from '@tensorflow/tfjs';
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { Shampoo, type ShampooInternals, type ShampooOptions } from '../optimizers/shampoo.js';
import { rng } from './optim-helpers.js';

/** Force the tfjs-ops backend (the constructor's internal hook) for the optimizers made next. */
let forceTfjs = false;
const internals = (): ShampooInternals => ({ backend: forceTfjs ? 'tfjs' : 'auto' });

beforeAll(async () => {
  await initBackend('cpu');
});

function randomMatrix(m: number, n: number, r: () => number, scale = 1): Matrix {
  return new Matrix(Array.from({ length: m }, () => Array.from({ length: n }, () => r() * scale)));
}

// ml-matrix's add/sub/mul work in place: clone before arithmetic on a value still needed.

/** (A + eps I)^{-1/p} by eigendecomposition, negative eigenvalues clamped to 0. */
function invRoot(a: Matrix, p: number, epsilon: number, relative: boolean): Matrix {
  const sym = a.add(a.transpose()).mul(0.5);
  const evd = new EigenvalueDecomposition(sym, { assumeSymmetric: true });
  const lambda = evd.realEigenvalues.map((l) => Math.max(l, 0));
  const eps = relative ? epsilon * Math.max(...lambda) : epsilon;
  const V = evd.eigenvectorMatrix;
  const D = Matrix.diag(lambda.map((l) => (l + eps) ** (-1 / p)));
  return V.mmul(D).mmul(V.transpose());
}

interface RefConfig {
  lr: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  relative: boolean;
  frequency: number;
  start: number;
  grafting: 'none' | 'adam';
  graftingBeta2: number;
  graftingEpsilon: number;
  weightDecay: number;
  momentum: number;
}

/** Written from the algorithm in the paper / Distributed Shampoo, independently of the optimizer. */
function referenceShampoo(W0: Matrix, grads: Matrix[], c: RefConfig): Matrix[] {
  const [m, n] = [W0.rows, W0.columns];
  let W = W0.clone();
  let L = Matrix.zeros(m, m);
  let R = Matrix.zeros(n, n);
  let PL = Matrix.eye(m);
  let PR = Matrix.eye(n);
  let buf: Matrix | null = null;
  const out: Matrix[] = [];
  const A: number[][] = Array.from({ length: m }, () => new Array<number>(n).fill(0));
  const M1: number[][] = Array.from({ length: m }, () => new Array<number>(n).fill(0));
  for (let t = 1; t <= grads.length; t++) {
    const g = grads[t - 1]!;
    const gg = g.mmul(g.transpose());
    const gtg = g.transpose().mmul(g);
    L = c.beta2 === 1 ? L.add(gg) : L.mul(c.beta2).add(gg.mul(1 - c.beta2));
    R = c.beta2 === 1 ? R.add(gtg) : R.mul(c.beta2).add(gtg.mul(1 - c.beta2));
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        A[i]![j] = c.graftingBeta2 * A[i]![j]! + (1 - c.graftingBeta2) * g.get(i, j) ** 2;
        M1[i]![j] = c.beta1 * M1[i]![j]! + (1 - c.beta1) * g.get(i, j);
      }
    }
    if (t === c.start || (t > c.start && t % c.frequency === 0)) {
      const s = c.beta2 < 1 ? 1 / (1 - c.beta2 ** t) : 1;
      PL = invRoot(L.clone().mul(s), 4, c.epsilon, c.relative);
      PR = invRoot(R.clone().mul(s), 4, c.epsilon, c.relative);
    }
    const f = new Matrix(M1).mul(c.beta1 > 0 ? 1 / (1 - c.beta1 ** t) : 1);
    const fUse = c.beta1 > 0 ? f : g;
    const graft = fUse.clone();
    if (c.grafting === 'adam') {
      const bc = 1 - c.graftingBeta2 ** t;
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) graft.set(i, j, fUse.get(i, j) / (Math.sqrt(A[i]![j]! / bc) + c.graftingEpsilon));
      }
    }
    let d: Matrix;
    if (t < c.start) d = graft;
    else {
      d = PL.mmul(fUse).mmul(PR);
      if (c.grafting !== 'none') d = d.mul(graft.norm() / (d.norm() + 1e-16));
    }
    d = d.add(W.clone().mul(c.weightDecay));
    if (c.momentum > 0) {
      buf = buf === null ? d.clone() : buf.mul(c.momentum).add(d);
      d = buf.clone();
    }
    W = W.sub(d.mul(c.lr));
    out.push(W.clone());
  }
  return out;
}

let nameCounter = 0;

/** Run the optimizer on fixed gradients; returns W after every step. */
function runOptimizer(W0: Matrix, grads: Matrix[], options: ShampooOptions): number[][][] {
  const v = tf.variable(tf.tensor2d(W0.to2DArray()), true, `shampoo_ref_${nameCounter++}`);
  const opt = new Shampoo(options, internals());
  const out: number[][][] = [];
  for (const g of grads) {
    const gt = tf.tensor2d(g.to2DArray());
    opt.applyGradients({ [v.name]: gt });
    gt.dispose();
    out.push(v.arraySync() as number[][]);
  }
  opt.dispose();
  v.dispose();
  return out;
}

/** max_t ||update_t - refUpdate_t|| / ||refUpdate_t||. */
function maxUpdateError(W0: Matrix, got: number[][][], ref: Matrix[]): number {
  let worst = 0;
  for (let t = 0; t < ref.length; t++) {
    const prevGot = t === 0 ? W0 : new Matrix(got[t - 1]!);
    const prevRef = t === 0 ? W0 : ref[t - 1]!;
    const du = new Matrix(got[t]!).sub(prevGot);
    const dr = Matrix.sub(ref[t]!, prevRef);
    worst = Math.max(worst, du.sub(dr).norm() / dr.norm());
    if (process.env.SHAMPOO_DEBUG) console.log(t, du.sub(dr).norm() / dr.norm(), dr.norm());
  }
  return worst;
}

function problem(m: number, n: number, steps: number, seed: number): { W0: Matrix; grads: Matrix[] } {
  const r = rng(seed);
  // Gradients with a fixed anisotropic structure so that the preconditioner matters.
  const left = randomMatrix(m, m, r);
  const right = randomMatrix(n, n, r);
  const grads = Array.from({ length: steps }, () => left.mmul(randomMatrix(m, n, r)).mmul(right));
  return { W0: randomMatrix(m, n, r), grads };
}

const BASE: RefConfig = {
  lr: 0.05,
  beta1: 0.9,
  beta2: 1,
  epsilon: 1e-4,
  relative: false,
  frequency: 1,
  start: 1,
  grafting: 'none',
  graftingBeta2: 0.999,
  graftingEpsilon: 1e-8,
  weightDecay: 0,
  momentum: 0,
};

describe('Shampoo matches a float64 reference over 20 steps (2-D parameter)', () => {
  it('without grafting (AdaGrad statistics, roots every step)', () => {
    const { W0, grads } = problem(6, 5, 20, 1);
    const ref = referenceShampoo(W0, grads, BASE);
    const got = runOptimizer(W0, grads, {
      learningRate: BASE.lr,
      beta1: BASE.beta1,
      beta2: 1,
      epsilon: BASE.epsilon,
      epsilonMode: 'absolute', // the reference's BASE (absolute was the default before issue 13)
      preconditionFrequency: 1,
      startPreconditioningStep: 1,
      grafting: 'none',
      mergeDims: false,
    });
    const err = maxUpdateError(W0, got, ref);
    console.log(`shampoo reference, no grafting: max relative update error ${err.toExponential(2)}`);
    expect(err).toBeLessThan(1e-4);
  });

  it('with Adam grafting, EMA statistics, relative epsilon, frequency 3, momentum and decoupled weight decay', () => {
    const { W0, grads } = problem(7, 4, 20, 2);
    const c: RefConfig = {
      ...BASE,
      beta2: 0.95,
      epsilon: 1e-6,
      relative: true,
      frequency: 3,
      start: 3,
      grafting: 'adam',
      graftingBeta2: 0.99,
      graftingEpsilon: 1e-8,
      weightDecay: 0.01,
      momentum: 0.5,
    };
    const ref = referenceShampoo(W0, grads, c);
    const got = runOptimizer(W0, grads, {
      learningRate: c.lr,
      beta1: c.beta1,
      beta2: c.beta2,
      epsilon: c.epsilon,
      epsilonMode: 'relative',
      preconditionFrequency: 3,
      startPreconditioningStep: -1, // start = frequency (the default before issue 16's round 4)
      grafting: 'adam',
      graftingBeta2: 0.99,
      graftingEpsilon: 1e-8,
      weightDecay: 0.01,
      momentum: 0.5,
      mergeDims: false,
    });
    const err = maxUpdateError(W0, got, ref);
    console.log(`shampoo reference, Adam grafting: max relative update error ${err.toExponential(2)}`);
    expect(err).toBeLessThan(1e-4);
  });

  it('coupled Newton inverse roots give the same trajectory as eigen', () => {
    const { W0, grads } = problem(6, 5, 20, 3);
    const ref = referenceShampoo(W0, grads, { ...BASE, grafting: 'adam' });
    const got = runOptimizer(W0, grads, {
      learningRate: BASE.lr,
      epsilon: BASE.epsilon,
      epsilonMode: 'absolute',
      preconditionFrequency: 1,
      startPreconditioningStep: 1,
      grafting: 'adam',
      graftingBeta2: 0.999,
      graftingEpsilon: 1e-8,
      inverseRootMethod: 'coupled-newton',
      mergeDims: false,
    });
    expect(maxUpdateError(W0, got, ref)).toBeLessThan(1e-3);
  });
});

describe('blocking and merging', () => {
  /** The optimizer on the whole matrix vs independent optimizers on each block variable. */
  it.each([
    ['blocks cut on the host', false],
    ['blocks cut on the device', true],
  ])('a blocked 8x6 matrix (blocks 4x4 and 4x2) equals unblocked Shampoo on each block (%s)', (_, device) => {
    forceTfjs = device;
    const { W0, grads } = problem(8, 6, 20, 4);
    const options: ShampooOptions = {
      learningRate: 0.05,
      epsilon: 1e-4,
      preconditionFrequency: 2,
      grafting: 'adam',
      beta2: 0.9,
      mergeDims: false,
    };
    const whole = runOptimizer(W0, grads, { ...options, maxPreconditionerDim: 4 });
    const pieces: [number, number, number, number][] = [
      [0, 0, 4, 4],
      [0, 4, 4, 2],
      [4, 0, 4, 4],
      [4, 4, 4, 2],
    ];
    let worst = 0;
    for (const [r0, c0, h, w] of pieces) {
      const sub = (x: Matrix) => x.subMatrix(r0, r0 + h - 1, c0, c0 + w - 1);
      const got = runOptimizer(sub(W0), grads.map(sub), { ...options, maxPreconditionerDim: 1024 });
      for (let t = 0; t < grads.length; t++) {
        const blockOfWhole = new Matrix(whole[t]!).subMatrix(r0, r0 + h - 1, c0, c0 + w - 1);
        worst = Math.max(worst, blockOfWhole.sub(new Matrix(got[t]!)).norm() / new Matrix(got[t]!).norm());
      }
    }
    forceTfjs = false;
    console.log(`blocked vs per-block unblocked: max relative difference ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(1e-5);
  });

  it('statisticsComputeSteps 3: the statistics see the gradients of steps 1, 4, 7 only', async () => {
    const { W0, grads } = problem(6, 5, 7, 6);
    const v = tf.variable(tf.tensor2d(W0.to2DArray()), true, `shampoo_stats_${nameCounter++}`);
    const opt = new Shampoo({
      beta2: 0.9,
      statisticsComputeSteps: 3,
      preconditionFrequency: 2,
      mergeDims: false,
      grafting: 'adam',
    });
    for (const g of grads) {
      const gt = tf.tensor2d(g.to2DArray());
      opt.applyGradients({ [v.name]: gt });
      gt.dispose();
    }
    let L = Matrix.zeros(6, 6);
    let R = Matrix.zeros(5, 5);
    for (const t of [1, 4, 7]) {
      const g = grads[t - 1]!;
      L = L.mul(0.9).add(g.mmul(g.transpose()).mul(0.1));
      R = R.mul(0.9).add(g.transpose().mmul(g).mul(0.1));
    }
    const ws = await opt.getWeights();
    const get = (slot: string) =>
      new Matrix(ws.find((w) => w.name === `${v.name}/${slot}`)!.tensor.arraySync() as number[][]);
    expect(get('L0_0').sub(L).norm() / L.norm()).toBeLessThan(1e-5);
    expect(get('L0_1').sub(R).norm() / R.norm()).toBeLessThan(1e-5);
    tf.dispose(ws.map((w) => w.tensor));
    opt.dispose();
    v.dispose();
  });

  it('merging small dims: a [4, 2, 3] parameter follows the [8, 3] matrix trajectory', () => {
    const { W0, grads } = problem(8, 3, 12, 5);
    const v = tf.variable(tf.tensor3d(W0.to1DArray(), [4, 2, 3]), true, `shampoo_merge_${nameCounter++}`);
    const opt = new Shampoo({ learningRate: 0.05, epsilon: 1e-4, preconditionFrequency: 1, maxPreconditionerDim: 8 });
    const flat = runOptimizer(W0, grads, {
      learningRate: 0.05,
      epsilon: 1e-4,
      preconditionFrequency: 1,
      maxPreconditionerDim: 8,
    });
    for (const g of grads) {
      const gt = tf.tensor3d(g.to1DArray(), [4, 2, 3]);
      opt.applyGradients({ [v.name]: gt });
      gt.dispose();
    }
    const last = Float64Array.from(v.dataSync());
    const expected = new Matrix(flat[flat.length - 1]!).to1DArray();
    const diff = Math.max(...expected.map((x, i) => Math.abs(x - last[i]!)));
    expect(diff).toBeLessThan(1e-6);
    opt.dispose();
    v.dispose();
  });

  it('an order-3 parameter [3, 4, 5] is preconditioned by three factors (r = 6)', () => {
    const r = rng(9);
    const v = tf.variable(tf.randomNormal([3, 4, 5], 0, 1, 'float32', 1), true, `shampoo_o3_${nameCounter++}`);
    const opt = new Shampoo({
      maxPreconditionerDim: 5,
      preconditionFrequency: 1,
      startPreconditioningStep: 1,
      grafting: 'none',
      beta1: 0,
      epsilon: 1e-3,
      epsilonMode: 'absolute',
    });
    const before = Float64Array.from(v.dataSync());
    const g = tf.tensor3d(
      Array.from({ length: 60 }, () => r()),
      [3, 4, 5],
    );
    opt.applyGradients({ [v.name]: g });
    const after = Float64Array.from(v.dataSync());
    // Reference: (G1 G1^T + eps)^{-1/6} x_1 (G2 G2^T + eps)^{-1/6} x_2 (G3 G3^T + eps)^{-1/6} x_3 G.
    const G = Array.from(g.dataSync());
    const dims = [3, 4, 5];
    const idx = (i: number, j: number, k: number) => (i * 4 + j) * 5 + k;
    const unfold = (mode: number): Matrix => {
      const rows = dims[mode]!;
      const M = Matrix.zeros(rows, 60 / rows);
      const cnt = new Array<number>(rows).fill(0);
      for (let i = 0; i < 3; i++)
        for (let j = 0; j < 4; j++)
          for (let k = 0; k < 5; k++) {
            const row = [i, j, k][mode]!;
            M.set(row, cnt[row]!++, G[idx(i, j, k)]!);
          }
      return M;
    };
    const P = [0, 1, 2].map((mode) => {
      const U = unfold(mode);
      return invRoot(U.mmul(U.transpose()), 6, 1e-3, false);
    });
    const D = new Array<number>(60).fill(0);
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 4; j++)
        for (let k = 0; k < 5; k++) {
          let s = 0;
          for (let a = 0; a < 3; a++)
            for (let b = 0; b < 4; b++)
              for (let c = 0; c < 5; c++) {
                s += P[0]!.get(i, a) * P[1]!.get(j, b) * P[2]!.get(k, c) * G[idx(a, b, c)]!;
              }
          D[idx(i, j, k)] = s;
        }
    const lr = 1e-2;
    let num = 0;
    let den = 0;
    for (let q = 0; q < 60; q++) {
      num += (before[q]! - after[q]! - lr * D[q]!) ** 2;
      den += (lr * D[q]!) ** 2;
    }
    expect(Math.sqrt(num / den)).toBeLessThan(1e-4);
    tf.dispose([g, v]);
    opt.dispose();
  });
});
