/**
 * Shampoo's inverse roots, computed from a snapshot of the statistics by a pure function (host
 * arrays in, float32 factors out: no tensors, no optimizer state), so that the work could run
 * elsewhere (a worker thread) and be installed later.
 *
 * For a statistic S (float32, n x n) with bias-correction multiplier c:
 *   A = c (S + S^T) / 2 in float64 (float32 Gram products are symmetric only up to rounding)
 *   'eigen':          A = V diag(lambda) V^T (src/linalg eighUnsorted), the weights
 *                     w = (max(lambda, 0) + eps)^(-1/(2r)) by src/linalg inverseRootFromEigen
 *                     (PSD tolerance, eps absolute or relative to lambda_max, positivity and
 *                     finiteness), and the factor W = diag(w) V^T, so W^T W = (A + eps I)^{-1/r}
 *   'coupled-newton': the symmetric W = (A + eps I)^{-1/(2r)} by float64 coupled Newton
 *                     (src/linalg inverseRoot 'newton')
 * An all-zero A has no root ('zero': the previous factor stays, not a failure); a throw or a
 * non-finite factor is 'failed' (the caller keeps the previous factor and counts it).
 */
import { eighUnsorted, inverseRoot, inverseRootFromEigen, type Mat64 } from '../../src/linalg/index.js';

export type ShampooRootMethod = 'eigen' | 'coupled-newton';

/** One statistic to root: block b, dimension i, side n, its float32 values (row-major). */
export interface StatisticSnapshot {
  block: number;
  dim: number;
  n: number;
  values: Float32Array;
}

export interface RootRules {
  method: ShampooRootMethod;
  /** r in (A + eps I)^{-1/r}. */
  exponent: number;
  /** Bias-correction multiplier of the statistic. */
  scale: number;
  epsilon: number;
  epsilonMode: 'absolute' | 'relative';
}

export type RootResult =
  { kind: 'zero' } | { kind: 'failed' } | { kind: 'ok'; factor: Float32Array; block: number; dim: number; n: number };

/** The roots of every snapshot, in order (a pure function of its arguments). */
export function computeRoots(snapshots: StatisticSnapshot[], rules: RootRules): RootResult[] {
  return snapshots.map((s) => rootOf(s, rules));
}

function rootOf({ block, dim, n, values: stat }: StatisticSnapshot, rules: RootRules): RootResult {
  const a = new Float64Array(n * n);
  const c = rules.scale;
  for (let p = 0; p < n; p++) {
    for (let q = 0; q < n; q++) a[p * n + q] = 0.5 * c * (stat[p * n + q]! + stat[q * n + p]!);
  }
  let zero = true;
  for (let k = 0; k < a.length && zero; k++) zero = a[k] === 0;
  if (zero) return { kind: 'zero' };
  try {
    const factor = rules.method === 'eigen' ? eigenRootFactor(a, n, rules) : newtonRootFactor(a, n, rules);
    return allFinite(factor) ? { kind: 'ok', factor, block, dim, n } : { kind: 'failed' };
  } catch {
    return { kind: 'failed' };
  }
}

/**
 * W = diag(w) V^T (float32, row k = w_k v_k^T) with w_k = (max(lambda_k, 0) + eps)^(-1/(2r)):
 * the eigensolver and this reconstruction are Shampoo's, the rules src/linalg's. The rows are in
 * the solver's order (unsorted): W^T W does not depend on it.
 */
function eigenRootFactor(a: Float64Array, n: number, rules: RootRules): Float32Array {
  const { values, vt } = eighUnsorted(a, n);
  const { weights } = inverseRootFromEigen(values, 2 * rules.exponent, rules);
  const w = new Float32Array(n * n);
  for (let k = 0; k < n; k++) {
    const s = weights[k]!;
    for (let j = 0; j < n; j++) w[k * n + j] = s * vt.data[k * n + j]!;
  }
  return w;
}

/** The symmetric W = (A + eps I)^{-1/(2r)} by float64 coupled Newton, in float32. */
function newtonRootFactor(a: Float64Array, n: number, rules: RootRules): Float32Array {
  const res = inverseRoot({ rows: n, cols: n, data: a } as Mat64, 2 * rules.exponent, {
    method: 'newton',
    epsilon: rules.epsilon,
    epsilonMode: rules.epsilonMode,
  });
  if (!Number.isFinite(res.error)) throw new Error('Shampoo: non-finite inverse root');
  return Float32Array.from(res.root.data);
}

/** True when every entry is finite (a plain loop: `every(Number.isFinite)` is ~10x slower). */
function allFinite(x: Float32Array): boolean {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!)) return false;
  return true;
}
