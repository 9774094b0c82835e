// The spectrum command behind `curvature spectrum`: report contents and files.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import '../src/autodiff/index.js';
import { runSpectrumCommand } from '../src/report/spectrum.js';
import type { Batch, Problem } from '../src/harness/problem.js';

/** A data problem with a known Hessian: mean_i 1/2 sum_j a_j (x_j - d_ij)^2, Hessian diag(a). */
function diagonalProblem(a: number[]): Problem {
  const n = a.length;
  const A = tf.tensor1d(a);
  const D = tf.randomNormal([12, n], 0, 1, 'float32', 1);
  const x = tf.variable(tf.zeros([n]));
  const lossOn = (d: tf.Tensor): tf.Scalar =>
    tf.tidy(() => tf.mul(0.5, tf.mean(tf.sum(tf.mul(A, tf.square(tf.sub(x, d))), 1))) as tf.Scalar);
  return {
    name: 'diagonal',
    description: `diagonal quadratic, d=${n}`,
    options: {},
    params: [x],
    numParams: n,
    data: {
      numTrain: 12,
      numTest: 0,
      batchSize: 5,
      batch: (idx: Int32Array): Batch =>
        tf.tidy(() => {
          const xb = tf.gather(D, tf.tensor1d(idx, 'int32'));
          return { x: xb, y: xb.clone(), size: idx.length };
        }),
    },
    loss: (b?: Batch) => lossOn(b ? b.x : D),
    evaluate: () => ({ trainLoss: tf.tidy(() => lossOn(D).dataSync()[0]) }),
    dispose: () => tf.dispose([A, D, x]),
  };
}

beforeAll(async () => {
  await initBackend('cpu');
});

describe('runSpectrumCommand', () => {
  it('reports top eigenvalues, trace and density, and writes JSON, SVG and Markdown', async () => {
    const a = [9, 7, 5, 1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4];
    const problem = diagonalProblem(a);
    const dir = mkdtempSync(join(tmpdir(), 'curv-spectrum-'));
    try {
      const r = await runSpectrumCommand({ problem, k: 3, runs: 2, steps: 10, traceSamples: 20, outDir: dir });
      expect(r.batches).toBe(3);
      r.topEigenvalues.forEach((l, i) => expect(l).toBeCloseTo(a[i], 4));
      expect(Math.abs(r.trace.estimate - 25.9)).toBeLessThan(4 * r.trace.standardError + 1e-4);
      expect(r.density.grid.length).toBe(r.density.density.length);
      for (const f of [r.files.json!, r.files.svg!, r.files.markdown!]) expect(existsSync(f)).toBe(true);
      expect(readFileSync(r.files.svg!, 'utf8')).toMatch(/^<svg/);
      expect(readFileSync(r.files.markdown!, 'utf8')).toContain('| 1 | 9.00000 |');
      expect(JSON.parse(readFileSync(r.files.json!, 'utf8')).topEigenvalues.length).toBe(3);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      problem.dispose();
    }
  });

  it('--at trained runs the training hook first; ggn needs a network problem', async () => {
    const problem = diagonalProblem([3, 2, 1]);
    let trained = 0;
    const r = await runSpectrumCommand({
      problem,
      at: 'trained',
      train: () => void trained++,
      k: 1,
      runs: 1,
      steps: 3,
      traceSamples: 5,
    });
    expect(trained).toBe(1);
    expect(r.at).toBe('trained');
    expect(r.topEigenvalues[0]).toBeCloseTo(3, 4);
    await expect(runSpectrumCommand({ problem, curvature: 'ggn' })).rejects.toThrow(/network problem/);
    problem.dispose();
  });
});
