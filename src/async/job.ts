/**
 * MatrixJob implementation shared by the worker and inline services: a promise that is never an
 * unhandled rejection, plus synchronous poll/wait through callbacks given by the service.
 */
import type { MatrixJob } from './types.js';

export interface JobHooks {
  /** Collect finished responses synchronously (may settle this job). */
  collect(): void;
  /** Block until something may have changed or the deadline (ms, performance.now()) passes. */
  block: ((deadline: number, settled: () => boolean) => void) | null;
  waitTimeoutMs: number;
}

export class Job<T> implements MatrixJob<T> {
  readonly promise: Promise<T>;
  private state: 'pending' | 'done' | 'failed' = 'pending';
  private value: T | undefined;
  private error: Error | undefined;
  private resolveFn!: (v: T) => void;
  private rejectFn!: (e: Error) => void;

  constructor(
    readonly id: number,
    private readonly hooks: JobHooks,
  ) {
    this.promise = new Promise<T>((ok, fail) => {
      this.resolveFn = ok;
      this.rejectFn = fail;
    });
    // A failed job nobody awaits must not crash the process (unhandled rejection).
    this.promise.catch(() => undefined);
  }

  get settled(): boolean {
    return this.state !== 'pending';
  }

  resolve(value: T): void {
    if (this.state !== 'pending') return;
    this.state = 'done';
    this.value = value;
    this.resolveFn(value);
  }

  reject(error: Error): void {
    if (this.state !== 'pending') return;
    this.state = 'failed';
    this.error = error;
    this.rejectFn(error);
  }

  get done(): boolean {
    if (this.state === 'pending') this.hooks.collect();
    return this.state !== 'pending';
  }

  get canBlock(): boolean {
    return this.state !== 'pending' || this.hooks.block !== null;
  }

  poll(): T | undefined {
    if (!this.done) return undefined;
    if (this.state === 'failed') throw this.error!;
    return this.value;
  }

  wait(timeoutMs = this.hooks.waitTimeoutMs): T {
    if (!this.done) {
      const block = this.hooks.block;
      if (block === null) {
        throw new Error('MatrixJob.wait: this thread cannot block (a browser main thread); await job.promise instead');
      }
      const deadline = performance.now() + timeoutMs;
      while (!this.done) {
        if (performance.now() >= deadline) {
          throw new Error(`MatrixJob.wait: no result after ${timeoutMs} ms (the job continues; await job.promise)`);
        }
        block(deadline, () => this.settled);
      }
    }
    if (this.state === 'failed') throw this.error!;
    return this.value as T;
  }
}
