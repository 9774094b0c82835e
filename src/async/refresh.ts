/**
 * AsyncRefresh: the staleness controller between an optimizer's synchronous steps and a
 * MatrixService (docs/async.md).
 *
 * An optimizer calls `step(t, request, snapshot)` once per step t (t strictly increasing). When
 * `request` is true (its refresh schedule, e.g. every `updateFreq` steps) and no job is in flight,
 * `snapshot()` is taken and `submit`ted; a request while a job is in flight is skipped, so the
 * worker never falls behind. A finished job's result is swapped in at a later call, and `step`
 * returns the result to use at step t (null before the first one).
 *
 * Staleness bound: a job submitted at step s is in use from step s + maxStaleness at the latest;
 * `step` blocks (job.wait: Atomics.wait in Node) only when that step is reached and the job is not
 * done. maxStaleness 0 is the synchronous schedule. With `deterministic: true` the result is
 * swapped in exactly at step s + maxStaleness, never earlier, so the trajectory does not depend on
 * timing and equals the inline service's (exact reproducibility with the work still overlapped).
 * Between accepted submissions the result ages with the optimizer's schedule as in sync mode.
 * With no result yet (first step, after `reset()`, or after the first job failed) a snapshot is
 * submitted whatever `request` says, and waited for. Whenever a result is needed at the step of its
 * snapshot (no result yet, or maxStaleness 0), `inline(snapshot)`, when given, computes it on this
 * thread instead of submitting (same cost, no round trip, no wait for the worker to start).
 *
 * Threads that cannot block (a browser's main thread): the bound is not enforced; the stale
 * result stays in use until the job is done (deterministic mode degrades to this, warning once).
 * With no result yet and no `inline`, step returns null until the job is done.
 *
 * Failures (worker error, NaN input, worker crash, wait timeout) never throw from `step`: the
 * previous result stays in use, the error is passed to `onError` (default console.warn) and kept
 * in `lastError`, and the next request submits again.
 *
 * Checkpoints: in-flight work is not part of any state. An optimizer saves its statistics (and,
 * if it likes, the result in use); after restoring it calls `reset()` (or `restore(result, step)`),
 * and the next `step` recomputes from the restored statistics (synchronously, as there is no
 * result). A restored run therefore equals the uninterrupted one exactly in the synchronous mode
 * (maxStaleness 0 or the inline service), and in deterministic mode when restored on a step with no
 * job in flight.
 */
import { createInlineMatrixService } from './inline.js';
import type {
  EighOutput,
  InverseRootOutput,
  InverseRootsOptions,
  MatrixJob,
  MatrixService,
  SymmetricMatrix64,
} from './types.js';

export interface AsyncRefreshOptions<S, T> {
  /** Start the computation on a snapshot (e.g. `(b) => service.submitInverseRoots(b, { p: 4 })`). */
  submit: (snapshot: S) => MatrixJob<T>;
  /** Steps a submitted job may stay in flight before `step` blocks for it (integer >= 0). */
  maxStaleness: number;
  /** Swap results in exactly at submission step + maxStaleness (default false: as soon as ready). */
  deterministic?: boolean;
  /**
   * Synchronous computation of a result needed at its own step (no result yet, maxStaleness 0):
   * used instead of submitting. createEighRefresh / createInverseRootRefresh set it.
   */
  inline?: (snapshot: S) => T;
  /** Called with every failure (default: console.warn once per distinct message). */
  onError?: (error: Error, step: number) => void;
  /** Timeout of one blocking wait, ms (default: the job's, i.e. the service's waitTimeoutMs). */
  waitTimeoutMs?: number;
}

/** Counters, for benchmarks and tests. */
export interface AsyncRefreshStats {
  submitted: number;
  /** Results swapped in. */
  swapped: number;
  /** Refresh requests skipped because a job was in flight. */
  skipped: number;
  /** Steps that blocked, and the total time blocked (ms). */
  blocked: number;
  blockedMs: number;
  failed: number;
  /** Results computed by `inline` because the thread could not block. */
  inline: number;
}

const warnedMessages = new Set<string>();

export class AsyncRefresh<S, T> {
  private readonly submitFn: (snapshot: S) => MatrixJob<T>;
  private readonly maxStaleness: number;
  private readonly deterministic: boolean;
  private readonly inlineFn: ((snapshot: S) => T) | undefined;
  private readonly onError: (error: Error, step: number) => void;
  private readonly waitTimeoutMs: number | undefined;
  private job: MatrixJob<T> | null = null;
  private jobStep = -1;
  /** A job that timed out is not waited for again (it may still be harvested when done). */
  private overdue = false;
  private value: T | null = null;
  private valueStep = -1;
  private lastStep = -Infinity;
  private error: Error | null = null;
  private warnedNoBlock = false;
  /** Whether this thread may block (Node threads; not a browser or other Web Worker host). */
  private readonly blocking =
    (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node !== undefined;
  readonly stats: AsyncRefreshStats = {
    submitted: 0,
    swapped: 0,
    skipped: 0,
    blocked: 0,
    blockedMs: 0,
    failed: 0,
    inline: 0,
  };

  constructor(options: AsyncRefreshOptions<S, T>) {
    if (typeof options?.submit !== 'function') throw new Error('AsyncRefresh: options.submit must be a function');
    const k = options.maxStaleness;
    if (!(Number.isInteger(k) && k >= 0)) {
      throw new Error(`AsyncRefresh: maxStaleness must be an integer >= 0, got ${String(k)}`);
    }
    if (options.waitTimeoutMs !== undefined && !(options.waitTimeoutMs > 0)) {
      throw new Error(`AsyncRefresh: waitTimeoutMs must be > 0, got ${options.waitTimeoutMs}`);
    }
    this.submitFn = options.submit;
    this.maxStaleness = k;
    this.deterministic = options.deterministic ?? false;
    this.inlineFn = options.inline;
    this.waitTimeoutMs = options.waitTimeoutMs;
    this.onError =
      options.onError ??
      ((e) => {
        if (warnedMessages.has(e.message)) return;
        warnedMessages.add(e.message);
        console.warn(`AsyncRefresh: ${e.message} (keeping the previous result)`);
      });
  }

  /** The result in use (null before the first). */
  get current(): T | null {
    return this.value;
  }

  /** The step whose snapshot produced the result in use (-1 before the first). */
  get currentStep(): number {
    return this.valueStep;
  }

  /** The submission step of the job in flight, or -1. */
  get inFlightStep(): number {
    return this.job === null ? -1 : this.jobStep;
  }

  /** The most recent failure, or null. */
  get lastError(): Error | null {
    return this.error;
  }

  /**
   * Step t: swap in a finished result, submit `snapshot()` when `request` (or when there is no
   * result) and nothing is in flight, block if the bound requires it; returns the result for t.
   */
  step(t: number, request: boolean, snapshot: () => S): T | null {
    if (!(Number.isFinite(t) && t > this.lastStep)) {
      throw new Error(`AsyncRefresh.step: steps must increase, got ${t} after ${this.lastStep}`);
    }
    this.lastStep = t;
    // Swap in a finished result (blocking first if it is due), then submit, so that a job that
    // had to be waited for is followed by the next one at the same step.
    this.harvest(t, this.job !== null && this.mustHave(t));
    if (this.job === null && (request || this.value === null)) this.submit(t, snapshot);
    else if (request) this.stats.skipped++;
    if (this.job !== null) this.harvest(t, this.mustHave(t));
    return this.value;
  }

  /** Drop the result and any job in flight (e.g. after restoring a checkpoint). */
  reset(): void {
    this.job = null;
    this.jobStep = -1;
    this.overdue = false;
    this.value = null;
    this.valueStep = -1;
    this.lastStep = -Infinity;
  }

  /** Put a saved result back in use, as computed from the snapshot of `step`; drops any job. */
  restore(result: T, step: number): void {
    this.reset();
    this.value = result;
    this.valueStep = step;
  }

  /** Whether the job in flight must be in use at step t. */
  private mustHave(t: number): boolean {
    return this.value === null || t >= this.jobStep + this.maxStaleness;
  }

  private submit(t: number, snapshot: () => S): void {
    try {
      const s = snapshot();
      if ((this.value === null || this.maxStaleness === 0) && this.inlineFn !== undefined) {
        // The result is needed at this very step: computing it here costs the same as waiting for
        // the worker, without the round trip (or the worker's start-up on the first step), and is
        // the only way on a thread that cannot block.
        this.value = this.inlineFn(s);
        this.valueStep = t;
        this.stats.inline++;
        return;
      }
      this.job = this.submitFn(s);
      this.jobStep = t;
      this.overdue = false;
      this.stats.submitted++;
    } catch (e) {
      this.failed(e, t);
    }
  }

  /** Swap in the job's result if it is done and may be used at t; block first if `need`. */
  private harvest(t: number, need: boolean): void {
    const job = this.job;
    if (job === null) return;
    if (need && !this.overdue && !job.done) {
      if (job.canBlock) {
        const t0 = performance.now();
        this.stats.blocked++;
        try {
          job.wait(this.waitTimeoutMs);
        } catch (e) {
          if (!job.done) {
            // Timed out: continue without it (harvested later if it arrives), never wait again.
            this.overdue = true;
            this.failed(e, t);
          }
        }
        this.stats.blockedMs += performance.now() - t0;
      } else if (this.deterministic && !this.warnedNoBlock) {
        this.warnedNoBlock = true;
        console.warn('AsyncRefresh: this thread cannot block; deterministic mode swaps results in when ready instead');
      }
    }
    if (!job.done) return;
    const due = !this.deterministic || !job.canBlock || this.mustHave(t);
    if (!due) return;
    const step = this.jobStep;
    this.job = null;
    this.jobStep = -1;
    try {
      this.value = job.poll() as T;
      this.valueStep = step;
      this.stats.swapped++;
    } catch (e) {
      this.failed(e, t);
    }
  }

  private failed(e: unknown, t: number): void {
    const error = e instanceof Error ? e : new Error(String(e));
    this.error = error;
    this.stats.failed++;
    this.onError(error, t);
  }
}

/** AsyncRefresh options without `submit` and `inline` (set by the factories below). */
export type RefreshOptions = Omit<AsyncRefreshOptions<unknown, unknown>, 'submit' | 'inline'>;

const inlineService = createInlineMatrixService();

/** An AsyncRefresh of eigendecompositions on `service`, computing inline when a result is due at once. */
export function createEighRefresh(
  service: MatrixService,
  options: RefreshOptions,
): AsyncRefresh<SymmetricMatrix64[], EighOutput[]> {
  return new AsyncRefresh<SymmetricMatrix64[], EighOutput[]>({
    ...options,
    submit: (batch) => service.submitEigh(batch),
    inline: (batch) => inlineService.submitEigh(batch).wait(),
  });
}

/** An AsyncRefresh of inverse p-th roots on `service`, computing inline when a result is due at once. */
export function createInverseRootRefresh(
  service: MatrixService,
  roots: InverseRootsOptions,
  options: RefreshOptions,
): AsyncRefresh<SymmetricMatrix64[], InverseRootOutput[]> {
  return new AsyncRefresh<SymmetricMatrix64[], InverseRootOutput[]>({
    ...options,
    submit: (batch) => service.submitInverseRoots(batch, roots),
    inline: (batch) => inlineService.submitInverseRoots(batch, roots).wait(),
  });
}
