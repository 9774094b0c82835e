// Ill-conditioned quadratics for second-order tests (float32-aware construction).
import { Matrix, QrDecomposition } from 'ml-matrix';
import { seededRandom } from './fd.js';

function gaussian(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(rand() + 1e-300)) * Math.cos(2 * Math.PI * rand());
}

/**
 * A = Q diag(lambda) Q^T with lambda log-spaced in [1, 1e6] (`clusters` > 0: only that many
 * distinct log-spaced values, each repeated, so CG needs `clusters` iterations in exact
 * arithmetic), rounded to float32 (the matrix tfjs
 * multiplies by). The minimiser is x* = 0, so float32 resolves points near it finely; a
 * minimiser away from 0 would put a float32 floor of about eps * ||A|| * ||x*|| on ||g||.
 */
export function illConditionedQuadratic(n: number, seed: number, clusters = 0): { A: number[][]; x0: number[] } {
  const rand = seededRandom(seed);
  const G = new Matrix(n, n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) G.set(i, j, gaussian(rand));
  const Q = new QrDecomposition(G).orthogonalMatrix;
  const lam = Array.from({ length: n }, (_, i) =>
    clusters > 0 ? 10 ** ((6 * Math.floor((i * clusters) / n)) / (clusters - 1)) : 10 ** ((6 * i) / (n - 1)),
  );
  const A = Q.mmul(Matrix.diag(lam)).mmul(Q.transpose());
  const A32 = A.to2DArray().map((row, i) => row.map((v, j) => Math.fround(j >= i ? v : A.get(j, i))));
  const x0 = Array.from({ length: n }, () => gaussian(rand));
  return { A: A32, x0 };
}

/** ||A x|| in float64 from the float32 point. */
export function gradNorm64(A: number[][], x: ArrayLike<number>): number {
  let s = 0;
  for (const row of A) {
    let v = 0;
    for (let j = 0; j < row.length; j++) v += row[j]! * x[j]!;
    s += v * v;
  }
  return Math.sqrt(s);
}
