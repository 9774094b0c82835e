/**
 * createMatrixWorker: the matrix service on a worker thread (docs/async.md).
 *
 * Node: a `worker_threads` Worker running ./worker.js (dist) or ./worker.ts (from source, under
 * tsx or vitest; the worker registers tsx itself when no TypeScript loader is active). Jobs can be
 * waited for synchronously (Atomics.wait + receiveMessageOnPort). The worker keeps the process
 * alive only while jobs are pending; `close()` terminates it.
 * Browser: a module Web Worker on `new URL('./worker.js', import.meta.url)` (bundlers such as
 * vite bundle it from this expression); jobs can only be awaited or polled.
 *
 * Fallback: wherever a worker cannot be started, or when it fails later (load error, crash,
 * exit), the service computes inline from then on and says why once (console.warn, or the `warn`
 * option) and in `fallbackReason`; jobs in flight at a failure reject with an Error saying so.
 * It never throws for lack of a worker.
 */
import { checkBatch, checkOptions, transferables, type MatrixOp, type MatrixRequest } from './compute.js';
import { inlineJob } from './inline.js';
import { NodeBackend, WebBackend, nodeWorkerEntry, type WorkerBackend } from './backend.js';
import type {
  EighOutput,
  InverseRootOutput,
  MatrixJob,
  MatrixService,
  MatrixServiceMode,
  SpdInverseOutput,
  SymmetricMatrix64,
} from './types.js';

export interface MatrixWorkerOptions {
  /** 'worker' (default) or 'inline' (no thread: the synchronous mode). */
  mode?: MatrixServiceMode;
  /**
   * Transfer the submitted matrices' buffers to the worker (default true: no copy; the caller's
   * Float64Arrays are detached afterwards). false copies them.
   */
  transfer?: boolean;
  /** Default timeout of a synchronous `job.wait()`, ms (default 120000). */
  waitTimeoutMs?: number;
  /**
   * The worker's entry module (default: worker.js, or worker.ts from source, next to this module).
   * For bundled applications that emit src/async/worker.ts elsewhere.
   */
  workerUrl?: string | URL;
  /** Where the one-time fallback explanation goes (default console.warn; null: silent). */
  warn?: ((message: string) => void) | null;
}

const warned = new Set<string>();

interface ProcessLike {
  versions?: { node?: string };
  getBuiltinModule?: (id: string) => unknown;
}

type WebWorkerCtor = new (
  url: URL,
  options: { type: 'module'; name?: string },
) => ConstructorParameters<typeof WebBackend>[0];

function startBackend(onFatal: (reason: string) => void, workerUrl?: string): WorkerBackend | string {
  const proc = (globalThis as { process?: ProcessLike }).process;
  if (proc?.versions?.node !== undefined) {
    if (typeof proc.getBuiltinModule !== 'function') {
      return `Node ${proc.versions.node} has no process.getBuiltinModule (needs Node >= 20.16)`;
    }
    const entry = nodeWorkerEntry(import.meta.url, workerUrl);
    if (typeof entry === 'string') return entry;
    return new NodeBackend(entry, onFatal);
  }
  const Worker = (globalThis as { Worker?: WebWorkerCtor }).Worker;
  if (typeof Worker !== 'function') return 'no Worker constructor in this environment';
  // The literal `new Worker(new URL('./worker.js', import.meta.url), ...)` is what bundlers
  // (vite, webpack 5, esbuild plugins) recognise to bundle the worker entry.
  const base = (globalThis as { location?: { href: string } }).location?.href;
  const worker =
    workerUrl === undefined
      ? new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'curvature-matrix-worker' })
      : new Worker(new URL(workerUrl, base), { type: 'module', name: 'curvature-matrix-worker' });
  return new WebBackend(worker, onFatal);
}

/**
 * A matrix service computing in a worker thread (or inline with `mode: 'inline'`, or as a
 * fallback where no worker can run). See docs/async.md.
 */
export function createMatrixWorker(options: MatrixWorkerOptions = {}): MatrixService {
  const mode = options.mode ?? 'worker';
  if (mode !== 'worker' && mode !== 'inline') {
    throw new Error(`createMatrixWorker: mode must be 'worker' or 'inline', got '${String(mode)}'`);
  }
  const transfer = options.transfer ?? true;
  const waitTimeoutMs = options.waitTimeoutMs ?? 120_000;
  if (!(waitTimeoutMs > 0)) throw new Error(`createMatrixWorker: waitTimeoutMs must be > 0, got ${waitTimeoutMs}`);
  const warn = options.warn === undefined ? (m: string) => console.warn(m) : options.warn;

  let backend: WorkerBackend | null = null;
  let fallbackReason: string | null = null;
  const fallBack = (reason: string, closing = false) => {
    backend = null;
    fallbackReason = reason;
    const message = `curvature matrix worker: ${reason}; computing inline on this thread instead.`;
    if (!closing && warn !== null && !warned.has(reason)) {
      warned.add(reason);
      warn(message);
    }
  };
  if (mode === 'worker') {
    try {
      const b = startBackend((reason) => fallBack(reason), options.workerUrl?.toString());
      if (typeof b === 'string') fallBack(b);
      else backend = b;
    } catch (e) {
      fallBack(`cannot start a worker: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  function submit<T>(op: MatrixOp, batch: readonly SymmetricMatrix64[], opts?: MatrixRequest['options']): MatrixJob<T> {
    const where = `MatrixService.submit${op[0]!.toUpperCase()}${op.slice(1)}`;
    checkBatch(batch, where);
    checkOptions(op, opts, where);
    const options = opts === undefined ? undefined : { ...opts };
    if (backend === null) return inlineJob<T>(op, [...batch], options);
    const items = batch.map((m) => ({ n: m.n, data: transfer ? m.data : m.data.slice() }));
    return backend.submit<T>({ op, batch: items, options }, transferables(items.map((m) => m.data)), waitTimeoutMs);
  }

  const service: MatrixService = {
    get mode(): MatrixServiceMode {
      return backend === null ? 'inline' : 'worker';
    },
    get fallbackReason(): string | null {
      return fallbackReason;
    },
    submitEigh: (batch) => submit<EighOutput[]>('eigh', batch),
    submitInverseRoots: (batch, opts) => submit<InverseRootOutput[]>('inverseRoots', batch, opts),
    submitSpdInverses: (batch, opts) => submit<SpdInverseOutput[]>('spdInverses', batch, opts),
    eigh: (batch) => service.submitEigh(batch).promise,
    inverseRoots: (batch, opts) => service.submitInverseRoots(batch, opts).promise,
    spdInverses: (batch, opts) => service.submitSpdInverses(batch, opts).promise,
    async close(): Promise<void> {
      const b = backend;
      if (b === null) return;
      fallBack('the service was closed', true);
      await b.close('the service was closed');
    },
  };
  return service;
}

let shared: MatrixService | undefined;

/**
 * One matrix worker per process (created on first use), shared by every optimizer that is not
 * given its own service: Shampoo's roots and K-FAC's inverses queue on the same second core.
 */
export function sharedMatrixWorker(): MatrixService {
  shared ??= createMatrixWorker();
  return shared;
}
