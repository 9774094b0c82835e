/**
 * src/async: float64 preconditioner work (symmetric eigendecompositions, inverse p-th roots) off
 * the main thread, and the staleness controller optimizers use to consume it (docs/async.md).
 */
export type {
  SymmetricMatrix64,
  EighOutput,
  InverseRootsOptions,
  InverseRootOutput,
  SpdInversesOptions,
  SpdInverseOutput,
  MatrixJob,
  MatrixService,
  MatrixServiceMode,
} from './types.js';
export type { MatrixWorkerOptions } from './service.js';
export { createMatrixWorker, sharedMatrixWorker } from './service.js';
export { createInlineMatrixService } from './inline.js';
export type { AsyncRefreshOptions, AsyncRefreshStats, RefreshOptions } from './refresh.js';
export { AsyncRefresh, createEighRefresh, createInverseRootRefresh, createSpdInverseRefresh } from './refresh.js';
