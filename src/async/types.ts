/**
 * The matrix service's public types (docs/async.md): symmetric float64 matrices in, their
 * eigendecompositions or inverse p-th roots out, as jobs that can be awaited, polled or (where
 * the thread may block) waited for synchronously.
 */
import type { EpsilonMode } from '../linalg/roots.js';

/** A symmetric n x n float64 matrix, row-major (`data.length === n * n`). */
export interface SymmetricMatrix64 {
  n: number;
  data: Float64Array;
}

/** Eigendecomposition A = V diag(values) V^T, like src/linalg's `eigh`. */
export interface EighOutput {
  n: number;
  /** Eigenvalues, ascending. */
  values: Float64Array;
  /** Eigenvectors as COLUMNS, row-major n x n: vectors[i * n + k] = V[i][k] belongs to values[k]. */
  vectors: Float64Array;
}

/** Options of an inverse-root batch: (A + eps I)^(-1/p) for every matrix of the batch. */
export interface InverseRootsOptions {
  /** Positive integer root order. */
  p: number;
  /** Added to every eigenvalue (default 0; see src/linalg/roots.ts). */
  epsilon?: number;
  epsilonMode?: EpsilonMode;
  psdTolerance?: number;
}

/** (A + eps I)^(-1/p) by eigendecomposition, like src/linalg's `inverseRoot(A, p, {method: 'eigh'})`. */
export interface InverseRootOutput {
  n: number;
  /** The root, symmetric, row-major n x n. */
  root: Float64Array;
  /** Absolute epsilon added to the diagonal. */
  epsilon: number;
  /** Identity residual max ||X^p (A + eps I) x - x|| / ||x|| over random probes. */
  error: number;
  /** Negative round-off eigenvalues clamped to 0. */
  clamped: number;
}

/** A submitted batch. Settles exactly once, with the results or with an Error. */
export interface MatrixJob<T> {
  /** Resolves with the results; rejects with an Error naming the problem (never unhandled). */
  readonly promise: Promise<T>;
  /** Whether the job has settled (in Node this also collects a finished result synchronously). */
  readonly done: boolean;
  /** The results when done, undefined while pending; throws the job's Error if it failed. */
  poll(): T | undefined;
  /** Whether `wait` can block this thread (Node threads: yes; a browser's main thread: no). */
  readonly canBlock: boolean;
  /**
   * Block until settled and return the results (throws the job's Error, or a timeout Error after
   * `timeoutMs`, default the service's `waitTimeoutMs`). Throws when `canBlock` is false.
   */
  wait(timeoutMs?: number): T;
}

/** Where a service computes: in a worker thread, or inline on the calling thread. */
export type MatrixServiceMode = 'worker' | 'inline';

/** Float64 symmetric eigendecompositions and inverse roots, computed in a worker or inline. */
export interface MatrixService {
  /** 'worker', or 'inline' (requested, or after a fallback: see `fallbackReason`). */
  readonly mode: MatrixServiceMode;
  /** Why a worker service computes inline (worker unavailable, failed or closed), else null. */
  readonly fallbackReason: string | null;
  /** Submit a batch. The matrices' buffers are transferred to the worker (the caller's arrays are
   * detached) unless the service was created with `transfer: false`. */
  submitEigh(batch: readonly SymmetricMatrix64[]): MatrixJob<EighOutput[]>;
  submitInverseRoots(batch: readonly SymmetricMatrix64[], options: InverseRootsOptions): MatrixJob<InverseRootOutput[]>;
  /** `submitEigh(batch).promise`. */
  eigh(batch: readonly SymmetricMatrix64[]): Promise<EighOutput[]>;
  /** `submitInverseRoots(batch, options).promise`. */
  inverseRoots(batch: readonly SymmetricMatrix64[], options: InverseRootsOptions): Promise<InverseRootOutput[]>;
  /** Stop the worker (pending jobs reject) and release every handle; later submissions compute inline. */
  close(): Promise<void>;
}
