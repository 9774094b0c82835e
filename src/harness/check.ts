/**
 * `curvature check`: verify a problem's derivatives where optimizers use them.
 *
 * On a fixed batch (the first `batchSize` training examples, or the objective itself) and a
 * unit direction v over all parameters (normalised gradient + seeded random unit vector):
 *   - gradient: the autodiff directional derivative g.v against the central difference
 *     (f(theta + eps v) - f(theta - eps v)) / (2 eps);
 *   - HVP: the autodiff Hessian-vector product H v (src/autodiff hvpVars) against the central
 *     difference of gradients (g(theta + eps v) - g(theta - eps v)) / (2 eps).
 * The parameters are restored afterwards. Float32 arithmetic: relative errors of ~1e-3 are
 * normal; the check passes below `rtol` (default 2e-2).
 */
import * as tf from '@tensorflow/tfjs';
import { hvpVars } from '../autodiff/index.js';
import type { Batch, Problem } from './problem.js';
import { Rng } from './rng.js';

export interface CheckResult {
  problem: string;
  numParams: number;
  gradient: { analytic: number; numeric: number; relError: number; ok: boolean };
  hvp: { norm: number; relError: number; ok: boolean };
  ok: boolean;
}

export function checkProblem(
  problem: Problem,
  options: { eps?: number; hvpEps?: number; rtol?: number; seed?: number } = {},
): CheckResult {
  const eps = options.eps ?? 5e-2;
  // Smaller step for gradient differences: piecewise-linear activations (relu) have kinks that
  // a large step crosses, which the exact HVP (zero second derivative there) rightly ignores.
  const hEps = options.hvpEps ?? 1e-3;
  const rtol = options.rtol ?? 2e-2;
  const rng = new Rng(options.seed ?? 0, 11);
  const { params } = problem;
  const indices = problem.data ? Int32Array.from({ length: problem.data.batchSize }, (_, i) => i) : undefined;
  const batch: Batch | undefined = indices && problem.data ? problem.data.batch(indices) : undefined;
  const saved = params.map((p) => tf.keep(p.clone()));
  try {
    const f = () => problem.loss(batch);
    // Direction: half the normalised gradient, half a random unit vector, so the directional
    // derivative is large enough to measure in float32 even when most coordinates are flat.
    const g = tf.tidy(() => {
      const { value, grads } = tf.variableGrads(f, params);
      value.dispose();
      return params.map((p) => grads[p.name].dataSync() as Float32Array);
    });
    const raw = params.map((p) => rng.normalArray(p.size));
    const norm2 = (xs: ArrayLike<number>[]) =>
      Math.sqrt(xs.reduce((s, a) => s + Array.from(a).reduce((t, x) => t + x * x, 0), 0));
    const gn = Math.max(norm2(g), 1e-30);
    const rn = norm2(raw);
    const mixed = raw.map((a, i) => a.map((x, j) => x / rn + g[i][j] / gn));
    const mn = norm2(mixed);
    const v = mixed.map((a, i) =>
      tf.tensor(
        a.map((x) => x / mn),
        params[i].shape,
      ),
    );
    const lossAt = (t: number): number =>
      tf.tidy(() => {
        params.forEach((p, i) => p.assign(tf.add(saved[i], tf.mul(v[i], t))));
        return f().dataSync()[0];
      });
    const gradAt = (t: number): Float32Array[] =>
      tf.tidy(() => {
        params.forEach((p, i) => p.assign(tf.add(saved[i], tf.mul(v[i], t))));
        const { value, grads } = tf.variableGrads(f, params);
        value.dispose();
        return params.map((p) => grads[p.name].dataSync() as Float32Array);
      });
    const dot = (a: ArrayLike<number>[], b: ArrayLike<number>[]) =>
      a.reduce((s, x, i) => s + Array.from(x).reduce((t, xi, j) => t + xi * b[i][j], 0), 0);
    const vData = v.map((t) => t.dataSync());

    const g0 = gradAt(0);
    const analytic = dot(g0, vData);
    const numeric = (lossAt(eps) - lossAt(-eps)) / (2 * eps);
    const gScale = Math.max(Math.abs(analytic), Math.abs(numeric), 1e-6);
    const gradRel = Math.abs(analytic - numeric) / gScale;

    params.forEach((p, i) => p.assign(saved[i]));
    const hv = tf.tidy(() => hvpVars(f, params, v).map((t) => t.dataSync() as Float32Array));
    const gp = gradAt(hEps);
    const gm = gradAt(-hEps);
    let diff = 0;
    let ref = 0;
    hv.forEach((h, i) => {
      for (let j = 0; j < h.length; j++) {
        const fd = (gp[i][j] - gm[i][j]) / (2 * hEps);
        diff += (h[j] - fd) ** 2;
        ref += Math.max(h[j] * h[j], fd * fd);
      }
    });
    const hvNorm = Math.sqrt(hv.reduce((s, h) => s + h.reduce((t, x) => t + x * x, 0), 0));
    const hvpRel = Math.sqrt(diff) / Math.max(Math.sqrt(ref), 1e-6);
    tf.dispose(v);
    const gradient = { analytic, numeric, relError: gradRel, ok: gradRel <= rtol };
    const hvp = { norm: hvNorm, relError: hvpRel, ok: hvpRel <= rtol };
    return { problem: problem.name, numParams: problem.numParams, gradient, hvp, ok: gradient.ok && hvp.ok };
  } finally {
    params.forEach((p, i) => p.assign(saved[i]));
    tf.dispose(saved);
    if (batch) tf.dispose([batch.x, batch.y]);
  }
}
