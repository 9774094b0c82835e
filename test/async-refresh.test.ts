// AsyncRefresh (src/async/refresh.ts): the staleness bound, deterministic swaps, skipped requests
// and failures, first with hand-driven jobs (exact semantics), then with the real worker.
import { afterAll, describe, expect, it } from 'vitest';
import { inverseRoot, spdInverse } from '../src/linalg/index.js';
import {
  AsyncRefresh,
  createInlineMatrixService,
  createEighRefresh,
  createInverseRootRefresh,
  createMatrixWorker,
  createSpdInverseRefresh,
  type EighOutput,
  type MatrixJob,
  type MatrixService,
  type SymmetricMatrix64,
} from '../src/async/index.js';

/** A job settled by hand (`finish`), or by `wait` (a block that always succeeds). */
class HandJob implements MatrixJob<number> {
  settled = false;
  failure: Error | null = null;
  waits = 0;
  readonly canBlock = true;
  readonly promise = Promise.resolve(0);
  constructor(readonly snapshot: number) {}
  finish(failure: Error | null = null): void {
    this.settled = true;
    this.failure = failure;
  }
  get done(): boolean {
    return this.settled;
  }
  poll(): number | undefined {
    if (!this.settled) return undefined;
    if (this.failure) throw this.failure;
    return this.snapshot * 10;
  }
  wait(): number {
    this.waits++;
    this.settled = true;
    return this.poll()!;
  }
}

function handRefresh(maxStaleness: number, deterministic = false) {
  const jobs: HandJob[] = [];
  const errors: string[] = [];
  const refresh = new AsyncRefresh<number, number>({
    submit: (s) => {
      const j = new HandJob(s);
      jobs.push(j);
      return j;
    },
    maxStaleness,
    deterministic,
    onError: (e) => errors.push(e.message),
  });
  return { refresh, jobs, errors };
}

describe('AsyncRefresh with hand-driven jobs', () => {
  it('swaps results in when ready, skips requests while busy, blocks only at submission + maxStaleness', () => {
    const { refresh, jobs } = handRefresh(3);
    // Step 0: no result yet -> submit and block.
    expect(refresh.step(0, false, () => 0)).toBe(0);
    expect(jobs[0]!.waits).toBe(1);
    expect(refresh.step(1, true, () => 1)).toBe(0); // submitted, in flight
    expect(refresh.inFlightStep).toBe(1);
    expect(refresh.step(2, true, () => 2)).toBe(0); // skipped: busy
    expect(refresh.stats.skipped).toBe(1);
    jobs[1]!.finish();
    expect(refresh.step(3, true, () => 3)).toBe(10); // swapped as soon as ready; 3 submitted
    expect(refresh.currentStep).toBe(1);
    expect(jobs[1]!.waits).toBe(0);
    expect(refresh.step(4, false, () => 4)).toBe(10);
    expect(refresh.step(5, false, () => 5)).toBe(10);
    expect(jobs[2]!.waits).toBe(0);
    expect(refresh.step(6, false, () => 6)).toBe(30); // 3 + maxStaleness: blocked for it
    expect(jobs[2]!.waits).toBe(1);
    expect(refresh.stats).toMatchObject({ submitted: 3, swapped: 3, skipped: 1, blocked: 2, failed: 0 });
  });

  it('maxStaleness 0 is the synchronous schedule: every requested result is used at its own step', () => {
    const { refresh } = handRefresh(0);
    for (let t = 0; t < 6; t++) {
      expect(refresh.step(t, t % 2 === 0, () => t)).toBe(10 * (t - (t % 2)));
    }
  });

  it('deterministic mode swaps in exactly at submission + maxStaleness, even when ready earlier', () => {
    const { refresh, jobs } = handRefresh(2, true);
    expect(refresh.step(0, true, () => 0)).toBe(0);
    const seen: number[] = [];
    for (let t = 1; t < 9; t++) {
      const v = refresh.step(t, true, () => t)!;
      jobs.at(-1)!.finish(); // ready immediately
      seen.push(v);
    }
    // Submissions at 0, 1 (in flight until 3), 3, 5, 7: result of s in use from s + 2.
    expect(jobs.map((j) => j.snapshot)).toEqual([0, 1, 3, 5, 7]);
    expect(seen).toEqual([0, 0, 10, 10, 30, 30, 50, 50]);
    expect(refresh.stats.blocked).toBe(1); // only the first
  });

  it('failures keep the previous result and are reported; a failed snapshot or submit too', () => {
    const { refresh, jobs, errors } = handRefresh(1);
    expect(refresh.step(0, true, () => 0)).toBe(0);
    expect(refresh.step(1, true, () => 1)).toBe(0);
    jobs[1]!.finish(new Error('eigh: non-finite entry NaN at (0, 1)'));
    expect(refresh.step(2, false, () => 2)).toBe(0);
    expect(errors).toEqual(['eigh: non-finite entry NaN at (0, 1)']);
    expect(refresh.lastError?.message).toMatch(/NaN/);
    expect(
      refresh.step(3, true, () => {
        throw new Error('snapshot failed');
      }),
    ).toBe(0);
    expect(errors.at(-1)).toBe('snapshot failed');
    // The next request submits again.
    expect(refresh.step(4, true, () => 4)).toBe(0);
    expect(refresh.step(5, false, () => 5)).toBe(40);
    expect(() => refresh.step(5, false, () => 5)).toThrow(/steps must increase/);
    expect(() => new AsyncRefresh({ submit: () => jobs[0]!, maxStaleness: -1 })).toThrow(/maxStaleness/);
  });

  it('reset() drops in-flight work (a restored checkpoint) and the next step recomputes synchronously', () => {
    const { refresh, jobs } = handRefresh(4);
    refresh.step(0, true, () => 0);
    refresh.step(1, true, () => 1);
    expect(refresh.inFlightStep).toBe(1);
    refresh.reset();
    expect(refresh.current).toBeNull();
    expect(refresh.step(7, false, () => 7)).toBe(70);
    expect(jobs.at(-1)!.waits).toBe(1);
    refresh.restore(5, 3);
    expect(refresh.step(8, false, () => 8)).toBe(5);
    expect(refresh.currentStep).toBe(3);
  });
});

/** The statistics of step t (changing every step). */
function stats(n: number, t: number): SymmetricMatrix64 {
  const data = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      const v = Math.cos(0.37 * i * j + 0.11 * t + i - j) / n + (i === j ? 1 + 0.01 * t : 0);
      data[i * n + j] = data[j * n + i] = v;
    }
  }
  return { n, data };
}

const services: MatrixService[] = [];
afterAll(() => Promise.all(services.map((s) => s.close())));

// One worker for all tests (each start loads tfjs: ~1-2 s); its jobs never overlap across tests.
let sharedWorker: MatrixService | undefined;
function shared(): MatrixService {
  if (sharedWorker === undefined) {
    sharedWorker = createMatrixWorker();
    services.push(sharedWorker);
  }
  return sharedWorker;
}

describe('AsyncRefresh with the matrix worker', () => {
  it('deterministic mode gives the same results at the same steps as the inline service', () => {
    const worker = shared();
    const run = (service: MatrixService) => {
      const refresh = new AsyncRefresh<SymmetricMatrix64[], EighOutput[]>({
        submit: (b) => service.submitEigh(b),
        maxStaleness: 2,
        deterministic: true,
      });
      const out: number[][] = [];
      for (let t = 0; t < 12; t++) {
        const r = refresh.step(t, t % 3 === 0, () => [stats(20, t), stats(7, t)])!;
        out.push([refresh.currentStep, r[0]!.values[0]!, r[1]!.values[6]!, r[0]!.vectors[5]!]);
      }
      return out;
    };
    const inline = run(createInlineMatrixService());
    expect(run(worker)).toEqual(inline);
    expect(worker.mode).toBe('worker');
    expect(inline.map((r) => r[0])).toEqual([0, 0, 0, 0, 0, 3, 3, 3, 6, 6, 6, 9]);
  });

  it('enforces the staleness bound against a slow worker (blocks when a job is due)', () => {
    const worker = shared();
    const k = 2;
    const refresh = new AsyncRefresh<SymmetricMatrix64[], EighOutput[]>({
      submit: (b) => worker.submitEigh(b),
      maxStaleness: k,
    });
    const submittedAt: number[] = [];
    for (let t = 0; t < 10; t++) {
      refresh.step(t, true, () => {
        submittedAt.push(t);
        return [stats(160, t)];
      });
      // Every job submitted at s <= t - k is in use (or superseded) by now.
      expect(refresh.inFlightStep === -1 || refresh.inFlightStep > t - k).toBe(true);
      const due = submittedAt.filter((s) => s <= t - k).at(-1) ?? 0;
      expect(refresh.currentStep).toBeGreaterThanOrEqual(due);
      // The age bound of docs/async.md for a request every f = 1 step and k >= f: 2k + f - 2.
      expect(t - refresh.currentStep).toBeLessThanOrEqual(2 * k + 1 - 2);
      expect(refresh.current![0]!.values.length).toBe(160);
    }
    // Steps here take no time, so the controller had to wait for the worker.
    expect(refresh.stats.blocked).toBeGreaterThan(1);
    expect(refresh.stats.failed).toBe(0);
  });

  it('NaN statistics: the error is reported, the previous result stays, training continues', () => {
    const worker = shared();
    const errors: string[] = [];
    const refresh = new AsyncRefresh<SymmetricMatrix64[], EighOutput[]>({
      submit: (b) => worker.submitEigh(b),
      maxStaleness: 1,
      onError: (e) => errors.push(e.message),
    });
    const good = refresh.step(0, true, () => [stats(6, 0)]);
    const bad = stats(6, 1);
    bad.data[7] = NaN;
    refresh.step(1, true, () => [bad]);
    expect(refresh.step(2, false, () => [stats(6, 2)])).toBe(good);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/matrix worker: eigh: batch\[0\] \(n = 6\).*non-finite entry NaN/);
    // Step 3 submits a good snapshot; a small job may already be back within that same call (a
    // loaded machine can pause the main thread between submit and poll), so only step 4 is pinned.
    refresh.step(3, true, () => [stats(6, 3)]);
    expect(refresh.step(4, false, () => [stats(6, 4)])).not.toBe(good);
    expect(refresh.currentStep).toBe(3);
  });

  it('a worker that cannot start: the first result is reported lost, the next is computed inline', () => {
    const errors: string[] = [];
    const service = createMatrixWorker({ workerUrl: 'file:///nonexistent/worker.js', warn: null });
    services.push(service);
    const refresh = new AsyncRefresh<SymmetricMatrix64[], EighOutput[]>({
      submit: (b) => service.submitEigh(b),
      maxStaleness: 3,
      onError: (e) => errors.push(e.message),
    });
    expect(refresh.step(0, true, () => [stats(5, 0)])).toBeNull();
    expect(errors[0]).toMatch(/the worker failed/);
    expect(service.mode).toBe('inline');
    expect(refresh.step(1, false, () => [stats(5, 1)])![0]!.values.length).toBe(5);
  });

  it('createEighRefresh computes the first result inline (no wait for the worker), later ones in the worker', () => {
    const worker = shared();
    const refresh = createEighRefresh(worker, { maxStaleness: 1 });
    const first = refresh.step(0, true, () => [stats(12, 0)])!;
    expect(refresh.stats).toMatchObject({ inline: 1, submitted: 0 });
    expect(first[0]!.values.length).toBe(12);
    for (let t = 1; t < 6; t++) refresh.step(t, true, () => [stats(12, t)]);
    expect(refresh.stats.inline).toBe(1);
    expect(refresh.stats.submitted).toBeGreaterThanOrEqual(2);
    expect(refresh.currentStep).toBeGreaterThanOrEqual(4); // the bound: the job of step 4 is due at 5
  });

  it('createInverseRootRefresh with maxStaleness 0 is the synchronous computation', () => {
    const refresh = createInverseRootRefresh(createInlineMatrixService(), { p: 4, epsilon: 1e-4 }, { maxStaleness: 0 });
    for (let t = 0; t < 3; t++) {
      const r = refresh.step(t, true, () => [stats(9, t)])!;
      const m = stats(9, t);
      const expected = inverseRoot({ rows: 9, cols: 9, data: m.data }, 4, { epsilon: 1e-4 }).root.data;
      expect(Array.from(r[0]!.root)).toEqual(Array.from(expected));
    }
  });

  it('createSpdInverseRefresh in deterministic mode on the worker gives the damped inverses of the due snapshots', () => {
    const worker = shared();
    const refresh = createSpdInverseRefresh(worker, { damping: 0.05 }, { maxStaleness: 2, deterministic: true });
    for (let t = 0; t < 7; t++) {
      const r = refresh.step(t, t % 2 === 0, () => [stats(10, t)])!;
      const s = refresh.currentStep;
      expect(s).toBe(t < 2 ? 0 : t - 2 - (t % 2));
      const m = stats(10, s);
      for (let i = 0; i < 10; i++) m.data[i * 11] += 0.05;
      expect(Array.from(r[0]!.inverse)).toEqual(
        Array.from(spdInverse({ rows: 10, cols: 10, data: m.data }).inverse.data),
      );
    }
    expect(refresh.stats).toMatchObject({ inline: 1, failed: 0 });
  });

  it('a checkpoint with nothing in flight, restored with restore(result, step), continues exactly', () => {
    const make = () => createEighRefresh(shared(), { maxStaleness: 2, deterministic: true });
    const trace = (r: ReturnType<typeof make>, from: number, to: number) => {
      const out: [number, number][] = [];
      for (let t = from; t < to; t++) {
        const v = r.step(t, t % 3 === 0, () => [stats(16, t)])!;
        out.push([r.currentStep, v[0]!.values[3]!]);
      }
      return out;
    };
    const whole = trace(make(), 0, 12);
    const first = make();
    const head = trace(first, 0, 6);
    expect(first.inFlightStep).toBe(-1); // job of step 3 swapped in at 5; next request at 6
    const saved = { result: first.current!, step: first.currentStep };
    const restored = make();
    restored.restore(saved.result, saved.step);
    expect([...head, ...trace(restored, 6, 12)]).toEqual(whole);
  });
});
