/**
 * The inline matrix service: the same interface as the worker service, computed synchronously
 * on the calling thread at submission (every job is settled when `submit*` returns). For tests,
 * exact reproducibility, and as the worker service's fallback.
 */
import { checkBatch, checkOptions, compute, type MatrixOp, type MatrixRequest } from './compute.js';
import { Job } from './job.js';
import type { EighOutput, InverseRootOutput, MatrixService, SpdInverseOutput, SymmetricMatrix64 } from './types.js';

const hooks = { collect: () => undefined, block: () => undefined, waitTimeoutMs: 0 };

let nextId = 1;

/** Run a request inline into a settled job (errors become a rejected job, as in the worker). */
export function inlineJob<T>(op: MatrixOp, batch: SymmetricMatrix64[], options?: MatrixRequest['options']): Job<T> {
  const job = new Job<T>(nextId++, hooks);
  try {
    job.resolve(compute({ id: job.id, op, batch, options }) as T);
  } catch (e) {
    job.reject(e instanceof Error ? e : new Error(String(e)));
  }
  return job;
}

/** Validate and run inline. */
function submitInline<T>(
  op: MatrixOp,
  batch: readonly SymmetricMatrix64[],
  options?: MatrixRequest['options'],
): Job<T> {
  const where = `MatrixService.submit${op[0]!.toUpperCase()}${op.slice(1)}`;
  checkBatch(batch, where);
  checkOptions(op, options, where);
  return inlineJob<T>(op, [...batch], options);
}

/** A MatrixService that computes inline (synchronously, on this thread). */
export function createInlineMatrixService(): MatrixService {
  const service: MatrixService = {
    mode: 'inline',
    fallbackReason: null,
    submitEigh: (batch) => submitInline<EighOutput[]>('eigh', batch),
    submitInverseRoots: (batch, options) => submitInline<InverseRootOutput[]>('inverseRoots', batch, options),
    submitSpdInverses: (batch, options) => submitInline<SpdInverseOutput[]>('spdInverses', batch, options),
    eigh: (batch) => service.submitEigh(batch).promise,
    inverseRoots: (batch, options) => service.submitInverseRoots(batch, options).promise,
    spdInverses: (batch, options) => service.submitSpdInverses(batch, options).promise,
    close: () => Promise.resolve(),
  };
  return service;
}
