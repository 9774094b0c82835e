// influence() reports whether its solve converged, like scipy.sparse.linalg.cg's info code, and
// warns when it did not. References: test/fixtures/influence-cg.json from
// scripts/reference/report_references.py (numpy solve for the exact influence, scipy cg's info).
// Training loss 1/2 t^T H t, test loss b^T t, point losses p_i^T t: I_up,loss(z_i) = -p_i^T H^{-1} b.
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { initBackend } from '../src/backend.js';
import { influence } from '../src/curvature/index.js';

interface Case {
  eigenvalues: number[];
  H: number[][];
  b: number[];
  maxIter: number;
  influence: number[];
  scipyInfo: number;
  scipyRelativeResidual: number;
}
const ref = JSON.parse(readFileSync(new URL('./fixtures/influence-cg.json', import.meta.url), 'utf8')) as {
  points: number[][];
  tol: number;
  cases: Record<'spd' | 'max-iterations' | 'negative-curvature', Case>;
};

beforeAll(async () => {
  await initBackend('cpu');
});
afterEach(() => {
  vi.restoreAllMocks();
});

function solveCase(c: Case, warn?: boolean) {
  const n = c.b.length;
  const theta = tf.variable(tf.zeros([n]));
  const H = tf.tensor2d(c.H);
  const b = tf.tensor1d(c.b);
  const P = ref.points.map((p) => tf.tensor1d(p));
  try {
    const before = tf.memory().numTensors;
    const r = influence(
      () => tf.tidy(() => tf.mul(0.5, tf.dot(theta, tf.matMul(H, theta.reshape([n, 1])).reshape([n])))) as tf.Scalar,
      [theta],
      {
        testLoss: () => tf.tidy(() => tf.dot(b, theta)) as tf.Scalar,
        points: [0, 1, 2],
        pointLoss: (i: number) => tf.tidy(() => tf.dot(P[i], theta)) as tf.Scalar,
        tol: ref.tol,
        maxIter: c.maxIter,
        numTrain: 3,
        ...(warn === undefined ? {} : { warn }),
      },
    );
    tf.dispose(r.sTest);
    expect(tf.memory().numTensors).toBe(before);
    return r;
  } finally {
    tf.dispose([theta, H, b, ...P]);
  }
}

const maxRel = (a: ArrayLike<number>, b: number[]) =>
  Math.max(...b.map((v, i) => Math.abs(a[i] - v))) / Math.max(...b.map(Math.abs));

describe('influence solve status', () => {
  it('converged CG: info 0, no warning, values match the float64 solve', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const c = ref.cases.spd;
    const r = solveCase(c);
    expect(r.solve).toMatchObject({ converged: true, status: 'converged', info: 0, negativeCurvature: false });
    expect(r.solve.info).toBe(c.scipyInfo);
    expect(r.solve.warning).toBeUndefined();
    expect(warn).not.toHaveBeenCalled();
    expect(maxRel(r.influence, c.influence)).toBeLessThan(1e-4);
  });

  it('CG out of iterations: info = iterations as scipy, one console.warn with the numbers', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const c = ref.cases['max-iterations'];
    const r = solveCase(c);
    expect(r.solve).toMatchObject({ converged: false, status: 'max-iterations', iterations: 3 });
    expect(r.solve.info).toBe(c.scipyInfo); // 3
    // Same Krylov iterate as scipy after 3 iterations (float32 products: loose tolerance).
    expect(Math.abs(r.solve.relativeResidual - c.scipyRelativeResidual) / c.scipyRelativeResidual).toBeLessThan(1e-2);
    expect(warn).toHaveBeenCalledTimes(1);
    const msg = String(warn.mock.calls[0][0]);
    expect(msg).toMatch(/did not converge/);
    expect(msg).toContain(r.solve.relativeResidual.toPrecision(3));
    expect(msg).toMatch(/maxIter/);
    expect(r.solve.warning).toBe(msg);
    // The values really are far off: that is why it warns.
    expect(maxRel(r.influence, c.influence)).toBeGreaterThan(0.1);
  });

  it('negative curvature: info -1, status and warning name it; warn: false silences console only', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const c = ref.cases['negative-curvature'];
    const r = solveCase(c);
    expect(r.solve).toMatchObject({
      converged: false,
      negativeCurvature: true,
      status: 'negative-curvature',
      info: -1,
    });
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0][0])).toMatch(/non-positive curvature.*damping/s);
    expect(maxRel(r.influence, c.influence)).toBeGreaterThan(0.5);
    warn.mockClear();
    const quiet = solveCase(c, false);
    expect(warn).not.toHaveBeenCalled();
    expect(quiet.solve.warning).toMatch(/non-positive curvature/);
  });
});
