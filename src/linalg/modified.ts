/**
 * Newton steps on indefinite Hessians: solve a positive definite modification of H instead of H.
 *
 * Strategies (Nocedal & Wright, Numerical Optimization, 2nd ed., §3.4):
 *  - 'eig-abs'   (default): H = V diag(lambda) V^T, lambda_i -> max(|lambda_i|, delta)
 *                 (saddle-free Newton; Dauphin et al. 2014). Flips negative-curvature directions.
 *  - 'eig-clamp': lambda_i -> max(lambda_i, delta). Negative curvature is damped, not flipped.
 *  - 'shift':     Cholesky with an added multiple of the identity (N&W Alg. 3.3): tau = 0 if
 *                 min H_ii > 0 else delta - min H_ii; tau <- max(2 tau, delta) until
 *                 H + tau I factors. Cheapest (n^3/3 per try), no eigendecomposition.
 * delta defaults to 1e-8 * ||H||_F (an absolute floor on the modified eigenvalues / the first
 * shift). The result says what was modified: how many eigenvalues, the smallest eigenvalue, or
 * the shift tau, so a caller can log it or reject the step.
 */
import { MatrixInput, symmetricInput, frobeniusNorm, matvec, Mat64 } from './matrix.js';
import { eighRows } from './eigh.js';
import { cholesky, choleskySolveInPlace } from './cholesky.js';

export type ModificationStrategy = 'eig-abs' | 'eig-clamp' | 'shift';

export interface ModifiedSolveOptions {
  strategy?: ModificationStrategy;
  /** Eigenvalue floor / first shift (absolute); default 1e-8 * ||H||_F. */
  delta?: number;
}

export interface ModifiedSolveResult {
  /** Solution of (modified H) x = b. */
  x: Float64Array;
  strategy: ModificationStrategy;
  /** Eigenvalues changed by the modification (eig strategies; 0 for 'shift'). */
  modifiedCount: number;
  /** Smallest eigenvalue of H (eig strategies; NaN for 'shift', which does not compute it). */
  minEigenvalue: number;
  /** Multiple of I added to H ('shift'; 0 for the eig strategies). */
  shift: number;
  /** True when H was used unmodified (it was positive definite above delta). */
  unmodified: boolean;
}

/** Solve a positive definite modification of symmetric H: x = H_mod^{-1} b. */
export function solveModified(
  h: MatrixInput,
  b: Float64Array | number[],
  options: ModifiedSolveOptions = {},
): ModifiedSolveResult {
  const strategy = options.strategy ?? 'eig-abs';
  const where = `solveModified(H, b, ${strategy})`;
  if (strategy !== 'eig-abs' && strategy !== 'eig-clamp' && strategy !== 'shift') {
    throw new Error(`${where}: strategy must be 'eig-abs', 'eig-clamp' or 'shift'`);
  }
  const H = symmetricInput(h, where);
  const n = H.rows;
  const rhs = Float64Array.from(b as ArrayLike<number>);
  if (rhs.length !== n) throw new Error(`${where}: b has ${rhs.length} entries, H is ${n}x${n}`);
  for (let i = 0; i < n; i++) if (!Number.isFinite(rhs[i])) throw new Error(`${where}: non-finite b[${i}] = ${rhs[i]}`);
  const normH = frobeniusNorm(H);
  const delta = options.delta ?? (normH > 0 ? 1e-8 * normH : 1e-8);
  if (!(delta > 0 && Number.isFinite(delta))) throw new Error(`${where}: delta must be finite and > 0, got ${delta}`);

  if (strategy === 'shift') {
    let minDiag = Infinity;
    for (let i = 0; i < n; i++) minDiag = Math.min(minDiag, H.data[i * n + i]);
    let tau = minDiag > 0 ? 0 : delta - minDiag;
    for (let attempt = 0; attempt < 200; attempt++) {
      const Hs: Mat64 = { rows: n, cols: n, data: H.data.slice() };
      for (let i = 0; i < n; i++) Hs.data[i * n + i] += tau;
      let L: Mat64 | null = null;
      try {
        L = cholesky(Hs, { maxTries: 1 }).L;
      } catch {
        L = null;
      }
      if (L !== null) {
        choleskySolveInPlace(L, rhs, 1);
        return { x: rhs, strategy, modifiedCount: 0, minEigenvalue: NaN, shift: tau, unmodified: tau === 0 };
      }
      tau = Math.max(2 * tau, delta);
    }
    throw new Error(`${where}: no shift up to ${tau.toExponential(2)} made H positive definite`);
  }

  const { values, vt } = eighRows(H);
  let modifiedCount = 0;
  const c = matvec(vt, rhs); // V^T b
  for (let k = 0; k < n; k++) {
    const l = values[k];
    const m = strategy === 'eig-abs' ? Math.max(Math.abs(l), delta) : Math.max(l, delta);
    if (m !== l) modifiedCount++;
    c[k] /= m;
  }
  const x = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const ck = c[k];
    const rk = k * n;
    for (let i = 0; i < n; i++) x[i] += vt.data[rk + i] * ck;
  }
  return { x, strategy, modifiedCount, minEigenvalue: values[0], shift: 0, unmodified: modifiedCount === 0 };
}
