/**
 * Lanczos tridiagonalisation with full re-orthogonalisation, shared by the top-eigenvalue
 * solver and stochastic Lanczos quadrature.
 *
 * After m steps from a unit vector q_1, Q_m^T C Q_m = T_m (tridiagonal: alpha on the diagonal,
 * beta off it). Every new vector is re-orthogonalised against the whole basis (twice, classical
 * Gram-Schmidt in float64), so the Ritz values do not develop the spurious copies that plain
 * three-term Lanczos shows in finite precision (Golub & Van Loan §10.3; PyHessian's SLQ does the
 * same). The small m x m eigenproblem is solved in float64 by ml-matrix.
 */
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { CurvatureOperator } from './operator.js';
import { axpy, dot, norm, orthogonalize, scale } from '../linalg/vector64.js';

export interface LanczosRun {
  alpha: number[];
  /** beta[j] couples q_j and q_{j+1}; beta.length === alpha.length (the last is the residual norm). */
  beta: number[];
  /** Orthonormal basis q_1..q_m (only when kept). */
  basis: Float64Array[];
  /** True when the Krylov space became invariant (beta ~ 0) before the requested steps. */
  exhausted: boolean;
}

/**
 * Run Lanczos steps from `start` (normalised here). `onStep(run)` may return true to stop early
 * (e.g. when the wanted Ritz values have converged).
 */
export function lanczos(
  op: CurvatureOperator,
  start: Float64Array,
  steps: number,
  onStep?: (run: LanczosRun) => boolean,
): LanczosRun {
  const m = Math.min(steps, op.dim);
  const q = Float64Array.from(start);
  const n0 = norm(q);
  if (!(n0 > 0)) throw new Error('lanczos: the start vector is zero.');
  scale(1 / n0, q);
  const run: LanczosRun = { alpha: [], beta: [], basis: [q], exhausted: false };
  for (let j = 0; j < m; j++) {
    const qj = run.basis[j];
    const w = op.apply(qj);
    const a = dot(qj, w);
    run.alpha.push(a);
    // Full re-orthogonalisation subsumes the three-term recurrence (alpha q_j, beta q_{j-1}).
    orthogonalize(w, run.basis);
    const b = norm(w);
    run.beta.push(b);
    // Invariant subspace: relative to the scale of T, beta is at rounding level.
    const tScale = Math.max(...run.alpha.map(Math.abs), ...run.beta.map(Math.abs), 1e-300);
    if (b <= 1e-10 * tScale) {
      run.exhausted = true;
      break;
    }
    if (onStep !== undefined && onStep(run)) break;
    if (j + 1 < m) {
      scale(1 / b, w);
      run.basis.push(w);
    }
  }
  return run;
}

export interface TridiagonalEig {
  /** Ritz values, ascending. */
  values: number[];
  /** Eigenvectors of T as columns: vectors[i][j] = component i of the j-th eigenvector. */
  vectors: number[][];
}

/** Eigen-decomposition of the m x m tridiagonal T built from alpha and beta[0..m-2]. */
export function tridiagonalEig(alpha: readonly number[], beta: readonly number[]): TridiagonalEig {
  const m = alpha.length;
  const T = Matrix.zeros(m, m);
  for (let i = 0; i < m; i++) {
    T.set(i, i, alpha[i]);
    if (i + 1 < m) {
      T.set(i, i + 1, beta[i]);
      T.set(i + 1, i, beta[i]);
    }
  }
  const evd = new EigenvalueDecomposition(T, { assumeSymmetric: true });
  const values = evd.realEigenvalues;
  const V = evd.eigenvectorMatrix.to2DArray();
  const order = values.map((_, i) => i).sort((a, b) => values[a] - values[b]);
  return {
    values: order.map((i) => values[i]),
    vectors: V.map((row) => order.map((i) => row[i])),
  };
}

/** Ritz vector sum_i y_i q_i from basis vectors and coefficients y. */
export function ritzVector(basis: readonly Float64Array[], y: readonly number[]): Float64Array {
  const v = new Float64Array(basis[0].length);
  for (let i = 0; i < basis.length && i < y.length; i++) axpy(y[i], basis[i], v);
  return v;
}
