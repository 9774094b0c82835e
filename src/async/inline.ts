/**
 * The inline matrix service: the same interface as the worker service, computed synchronously
 * on the calling thread at submission (every job is settled when `submit*` returns). For tests,
 * exact reproducibility, and as the worker service's fallback.
 */
import { checkBatch, checkInverseRootsOptions, compute } from './compute.js';
import { Job } from './job.js';
import type {
  EighOutput,
  InverseRootOutput,
  InverseRootsOptions,
  MatrixJob,
  MatrixService,
  SymmetricMatrix64,
} from './types.js';

const hooks = { collect: () => undefined, block: () => undefined, waitTimeoutMs: 0 };

let nextId = 1;

/** Run a request inline into a settled job (errors become a rejected job, as in the worker). */
export function inlineJob<T>(
  op: 'eigh' | 'inverseRoots',
  batch: SymmetricMatrix64[],
  options?: InverseRootsOptions,
): Job<T> {
  const job = new Job<T>(nextId++, hooks);
  try {
    const results =
      op === 'eigh' ? compute({ id: job.id, op, batch }) : compute({ id: job.id, op, batch, options: options! });
    job.resolve(results as T);
  } catch (e) {
    job.reject(e instanceof Error ? e : new Error(String(e)));
  }
  return job;
}

/** A MatrixService that computes inline (synchronously, on this thread). */
export function createInlineMatrixService(): MatrixService {
  const service: MatrixService = {
    mode: 'inline',
    fallbackReason: null,
    submitEigh(batch: readonly SymmetricMatrix64[]): MatrixJob<EighOutput[]> {
      checkBatch(batch, 'MatrixService.submitEigh');
      return inlineJob<EighOutput[]>('eigh', [...batch]);
    },
    submitInverseRoots(
      batch: readonly SymmetricMatrix64[],
      options: InverseRootsOptions,
    ): MatrixJob<InverseRootOutput[]> {
      checkBatch(batch, 'MatrixService.submitInverseRoots');
      checkInverseRootsOptions(options, 'MatrixService.submitInverseRoots');
      return inlineJob<InverseRootOutput[]>('inverseRoots', [...batch], options);
    },
    eigh: (batch) => service.submitEigh(batch).promise,
    inverseRoots: (batch, options) => service.submitInverseRoots(batch, options).promise,
    close: () => Promise.resolve(),
  };
  return service;
}
