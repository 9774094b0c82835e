/**
 * Worker backends of the matrix service: Node `worker_threads` and browser Web Workers. Each
 * sends requests (transferring the matrices), matches responses to jobs by id, and reports a
 * fatal failure (worker failed to load, crashed or exited) once through `onFatal`.
 */
import type { MatrixRequest, MatrixResponse } from './compute.js';
import { Job } from './job.js';

export interface WorkerBackend {
  /** Whether `wait` can block this thread. */
  readonly canBlock: boolean;
  submit<T>(req: Omit<MatrixRequest, 'id'>, transfer: ArrayBuffer[], waitTimeoutMs: number): Job<T>;
  /** Terminate; pending jobs reject with `reason`. */
  close(reason: string): Promise<void>;
}

type FatalHandler = (reason: string) => void;

let nextId = 1;

/** Shared bookkeeping: pending jobs by id. */
abstract class BaseBackend implements WorkerBackend {
  abstract readonly canBlock: boolean;
  protected readonly pending = new Map<number, Job<unknown>>();
  protected dead: string | null = null;

  constructor(protected readonly onFatal: FatalHandler) {}

  protected abstract post(req: MatrixRequest, transfer: ArrayBuffer[]): void;
  protected abstract collect(): void;
  protected abstract blockFn(): ((deadline: number, settled: () => boolean) => void) | null;
  protected abstract busy(active: boolean): void;
  protected abstract terminate(): Promise<void>;

  submit<T>(req: Omit<MatrixRequest, 'id'>, transfer: ArrayBuffer[], waitTimeoutMs: number): Job<T> {
    const job = new Job<T>(nextId++, { collect: () => this.collect(), block: this.blockFn(), waitTimeoutMs });
    if (this.dead !== null) {
      job.reject(new Error(`matrix worker: ${this.dead}`));
      return job;
    }
    this.pending.set(job.id, job as Job<unknown>);
    if (this.pending.size === 1) this.busy(true);
    try {
      this.post({ ...req, id: job.id } as MatrixRequest, transfer);
    } catch (e) {
      this.pending.delete(job.id);
      if (this.pending.size === 0) this.busy(false);
      job.reject(new Error(`matrix worker: cannot send the batch: ${e instanceof Error ? e.message : String(e)}`));
    }
    return job;
  }

  protected receive(r: MatrixResponse & { fatal?: boolean }): void {
    if (r.fatal) {
      this.fail(`the worker failed: ${r.ok ? '' : r.error}`);
      return;
    }
    const job = this.pending.get(r.id);
    if (job === undefined) return;
    this.pending.delete(r.id);
    if (this.pending.size === 0) this.busy(false);
    if (r.ok) job.resolve(r.results);
    else job.reject(new Error(`matrix worker: ${r.error}`));
  }

  /** Fatal: reject everything pending, stop, report once. */
  protected fail(reason: string): void {
    if (this.dead !== null) return;
    this.dead = reason;
    this.rejectAll(`${reason} (the batch was lost)`);
    void this.terminate();
    this.onFatal(reason);
  }

  private rejectAll(reason: string): void {
    const jobs = [...this.pending.values()];
    this.pending.clear();
    this.busy(false);
    for (const j of jobs) j.reject(new Error(`matrix worker: ${reason}`));
  }

  async close(reason: string): Promise<void> {
    if (this.dead === null) this.dead = reason;
    this.rejectAll(reason);
    await this.terminate();
  }
}

// ---------------------------------------------------------------------------------------------
// Node

interface NodeMessagePort {
  postMessage(message: unknown, transfer?: unknown[]): void;
  on(event: 'message', listener: (m: MatrixResponse) => void): void;
  ref(): void;
  unref(): void;
  close(): void;
}
interface NodeWorker {
  postMessage(message: unknown, transfer?: unknown[]): void;
  on(event: 'error', listener: (e: Error) => void): void;
  on(event: 'exit', listener: (code: number) => void): void;
  ref(): void;
  unref(): void;
  terminate(): Promise<number>;
}
interface NodeWorkerThreads {
  Worker: new (code: string, options: object) => NodeWorker;
  MessageChannel: new () => { port1: NodeMessagePort; port2: NodeMessagePort };
  receiveMessageOnPort(port: NodeMessagePort): { message: MatrixResponse } | undefined;
}

/** The bootstrap (CommonJS, eval'd): import the entry, registering tsx for a .ts entry when no
 * TypeScript loader is active; report a load failure or uncaught error on the result port. */
const BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
const fail = (e) => {
  try {
    workerData.port.postMessage({ id: 0, ok: false, fatal: true, error: String((e && e.stack) || e) });
  } finally {
    Atomics.add(workerData.signal, 0, 1);
    Atomics.notify(workerData.signal, 0);
  }
};
process.on('uncaughtException', (e) => { fail(e); process.exit(1); });
(async () => {
  try {
    await import(workerData.entry);
  } catch (e) {
    if (!workerData.tsx || !/ERR_UNKNOWN_FILE_EXTENSION/.test(String(e && e.code))) throw e;
    (await import(workerData.tsx)).register();
    await import(workerData.entry + '?tsx');
  }
})().catch(fail);
`;

/**
 * Node: the worker file, `override` or the one next to this module (worker.js in dist, worker.ts
 * from source, with the path of tsx's ESM API to register for a .ts entry); or why there is none.
 */
export function nodeWorkerEntry(moduleUrl: string, override?: string): { entry: string; tsx: string | null } | string {
  const g = globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } };
  const get = g.process!.getBuiltinModule!;
  const fs = get('node:fs') as { existsSync(p: string): boolean };
  const url = get('node:url') as { fileURLToPath(u: URL): string; pathToFileURL(p: string): URL };
  const mod = get('node:module') as { createRequire(u: string): { resolve(id: string): string } };
  const tsxApi = (): string | null => {
    try {
      const pkg = mod.createRequire(moduleUrl).resolve('tsx/package.json');
      return new URL('./dist/esm/api/index.mjs', url.pathToFileURL(pkg)).href;
    } catch {
      return null;
    }
  };
  if (override !== undefined) return { entry: override, tsx: /\.[mc]?ts$/.test(override) ? tsxApi() : null };
  if (!moduleUrl.startsWith('file:')) return `this module is not loaded from a file (${moduleUrl.slice(0, 60)})`;
  for (const ext of ['js', 'ts']) {
    const u = new URL(`./worker.${ext}`, moduleUrl);
    if (fs.existsSync(url.fileURLToPath(u))) return { entry: u.href, tsx: ext === 'ts' ? tsxApi() : null };
  }
  return `no worker.js or worker.ts next to ${moduleUrl} (a bundled build? pass workerUrl)`;
}

export class NodeBackend extends BaseBackend {
  readonly canBlock = true;
  private readonly threads: NodeWorkerThreads;
  private readonly worker: NodeWorker;
  private readonly port: NodeMessagePort;
  private readonly signal: Int32Array;
  private terminated: Promise<void> | null = null;

  constructor(entry: { entry: string; tsx: string | null }, onFatal: FatalHandler) {
    super(onFatal);
    const get = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process!.getBuiltinModule!;
    this.threads = get('node:worker_threads') as NodeWorkerThreads;
    const { port1, port2 } = new this.threads.MessageChannel();
    this.port = port1;
    this.signal = new Int32Array(new SharedArrayBuffer(8));
    this.worker = new this.threads.Worker(BOOTSTRAP, {
      eval: true,
      name: 'curvature-matrix-worker',
      workerData: { entry: entry.entry, tsx: entry.tsx, port: port2, signal: this.signal },
      transferList: [port2],
    });
    this.port.on('message', (m) => this.receive(m));
    this.worker.on('error', (e) => this.fail(`the worker failed: ${e.message}`));
    this.worker.on('exit', (code) => this.fail(`the worker exited (code ${code})`));
    this.busy(false);
  }

  /** Whether the worker has loaded its entry (it then answers requests). */
  get ready(): boolean {
    return Atomics.load(this.signal, 1) === 1;
  }

  protected post(req: MatrixRequest, transfer: ArrayBuffer[]): void {
    this.worker.postMessage(req, transfer);
  }

  protected collect(): void {
    for (let m = this.threads.receiveMessageOnPort(this.port); m; m = this.threads.receiveMessageOnPort(this.port)) {
      this.receive(m.message);
    }
  }

  protected blockFn(): (deadline: number, settled: () => boolean) => void {
    return (deadline, settled) => {
      const seen = Atomics.load(this.signal, 0);
      this.collect();
      if (settled() || this.dead !== null) return;
      Atomics.wait(this.signal, 0, seen, Math.max(0, Math.min(100, deadline - performance.now())));
      this.collect();
    };
  }

  /** Keep the process alive only while jobs are pending. */
  protected busy(active: boolean): void {
    if (this.terminated) return;
    if (active) {
      this.worker.ref();
      this.port.ref();
    } else {
      this.worker.unref();
      this.port.unref();
    }
  }

  protected terminate(): Promise<void> {
    if (this.terminated === null) {
      this.port.close();
      this.terminated = this.worker.terminate().then(() => undefined);
    }
    return this.terminated;
  }
}

// ---------------------------------------------------------------------------------------------
// Browser (and other Web Worker hosts)

interface WebWorker {
  postMessage(message: unknown, transfer?: unknown[]): void;
  onmessage: ((e: { data: MatrixResponse }) => void) | null;
  onerror: ((e: { message?: string; preventDefault?(): void }) => void) | null;
  terminate(): void;
}

export class WebBackend extends BaseBackend {
  readonly canBlock = false;

  constructor(
    private readonly worker: WebWorker,
    onFatal: FatalHandler,
  ) {
    super(onFatal);
    worker.onmessage = (e) => {
      if (e.data.id !== -1) this.receive(e.data);
    };
    worker.onerror = (e) => {
      e.preventDefault?.();
      this.fail(`the Web Worker failed to load or run: ${e.message ?? 'error event'}`);
    };
  }

  protected post(req: MatrixRequest, transfer: ArrayBuffer[]): void {
    this.worker.postMessage(req, transfer);
  }

  protected collect(): void {}

  protected blockFn(): null {
    return null;
  }

  protected busy(): void {}

  protected terminate(): Promise<void> {
    this.worker.onmessage = null;
    this.worker.onerror = null;
    this.worker.terminate();
    return Promise.resolve();
  }
}
