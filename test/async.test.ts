// src/async (issue 16): float64 eigendecompositions and inverse roots in a worker thread, the
// inline service, and the AsyncRefresh staleness controller. References: numpy (fixture from
// scripts/reference/async_reference.py) and src/linalg's own eigh/inverseRoot computed inline.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createInlineMatrixService,
  createMatrixWorker,
  type EighOutput,
  type MatrixService,
  type SymmetricMatrix64,
} from '../src/async/index.js';
import { eigh, inverseRoot } from '../src/linalg/index.js';
import { NodeBackend } from '../src/async/backend.js';

interface Fixture {
  matrices: { n: number; data: number[] }[];
  eigenvalues: number[][];
  inverseRoot: { p: number; epsilon: number; roots: number[][] };
}
const fixture = JSON.parse(
  readFileSync(new URL('./fixtures/async-reference.json', import.meta.url), 'utf8'),
) as Fixture;

/** A random symmetric PSD-ish matrix G G^T / k + shift I (deterministic). */
function spd(n: number, seed: number, shift = 0): SymmetricMatrix64 {
  let s = seed >>> 0;
  const rand = () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
  const k = n + 3;
  const g = Float64Array.from({ length: n * k }, rand);
  const data = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let acc = 0;
      for (let l = 0; l < k; l++) acc += g[i * k + l]! * g[j * k + l]!;
      data[i * n + j] = data[j * n + i] = acc / k + (i === j ? shift : 0);
    }
  }
  return { n, data };
}

const copy = (batch: SymmetricMatrix64[]) => batch.map((m) => ({ n: m.n, data: m.data.slice() }));
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
};

const services: MatrixService[] = [];
afterAll(async () => {
  await Promise.all(services.map((s) => s.close()));
});

// One worker for the tests that need no fresh one (each start loads tfjs: ~1-2 s).
let sharedWorker: MatrixService | undefined;
function shared(): MatrixService {
  if (sharedWorker === undefined || sharedWorker.mode !== 'worker') {
    sharedWorker = createMatrixWorker();
    services.push(sharedWorker);
  }
  return sharedWorker;
}

describe('matrix worker: results', () => {
  it('eigh and inverse roots in the worker equal numpy and the inline eigensolver to 1e-12', async () => {
    const worker = shared();
    expect(worker.mode).toBe('worker');
    const batch = fixture.matrices.map((m) => ({ n: m.n, data: Float64Array.from(m.data) }));
    const inline = createInlineMatrixService();
    const [fromWorker, fromInline] = await Promise.all([worker.eigh(copy(batch)), inline.eigh(copy(batch))]);
    expect(worker.mode).toBe('worker');
    fromWorker.forEach((r, i) => {
      const n = batch[i]!.n;
      const scale = Math.max(1, ...fixture.eigenvalues[i]!.map(Math.abs));
      expect(maxAbsDiff(r.values, fixture.eigenvalues[i]!)).toBeLessThan(1e-12 * scale);
      // Same eigensolver, same bits as inline and as src/linalg's eigh.
      expect(maxAbsDiff(r.values, fromInline[i]!.values)).toBeLessThanOrEqual(1e-12 * scale);
      expect(maxAbsDiff(r.vectors, fromInline[i]!.vectors)).toBeLessThanOrEqual(1e-12);
      const direct = eigh({ rows: n, cols: n, data: batch[i]!.data });
      expect(maxAbsDiff(r.vectors, direct.vectors.data)).toBeLessThanOrEqual(1e-12);
      // Orthonormal eigenvectors reconstructing A (independent of eigenvector signs).
      let rec = 0;
      for (let a = 0; a < n; a++) {
        for (let b = 0; b < n; b++) {
          let acc = 0;
          for (let k = 0; k < n; k++) acc += r.vectors[a * n + k]! * r.values[k]! * r.vectors[b * n + k]!;
          rec = Math.max(rec, Math.abs(acc - batch[i]!.data[a * n + b]!));
        }
      }
      expect(rec).toBeLessThan(1e-12 * scale);
    });
    const { p, epsilon, roots } = fixture.inverseRoot;
    const psd = copy(batch.slice(0, 2));
    const rw = await worker.inverseRoots(copy(psd), { p, epsilon });
    const ri = await inline.inverseRoots(copy(psd), { p, epsilon });
    rw.forEach((r, i) => {
      // numpy's LAPACK vs our eigensolver on a root with cond ~ 1e4: agreement to ~1e-12 relative.
      expect(maxAbsDiff(r.root, roots[i]!)).toBeLessThan(1e-10 * Math.max(...roots[i]!.map(Math.abs)));
      expect(maxAbsDiff(r.root, ri[i]!.root)).toBeLessThanOrEqual(1e-12);
      const direct = inverseRoot({ rows: r.n, cols: r.n, data: psd[i]!.data }, p, { epsilon });
      expect(maxAbsDiff(r.root, direct.root.data)).toBeLessThanOrEqual(1e-12);
      expect(r.epsilon).toBe(epsilon);
      expect(r.error).toBeLessThan(1e-9);
    });
  });

  it('a larger batch: the worker equals inline to 1e-12, the caller can block on it, buffers are transferred', () => {
    const worker = shared();
    const batch = [spd(96, 1), spd(64, 2, 0.1), spd(3, 3)];
    const expected = createInlineMatrixService().submitEigh(copy(batch)).poll()!;
    const sent = copy(batch);
    const job = worker.submitEigh(sent);
    expect(sent[0]!.data.length).toBe(0); // transferred, not copied
    const got = job.wait();
    expect(job.done).toBe(true);
    got.forEach((r, i) => {
      expect(maxAbsDiff(r.values, expected[i]!.values)).toBeLessThanOrEqual(1e-12);
      expect(maxAbsDiff(r.vectors, expected[i]!.vectors)).toBeLessThanOrEqual(1e-12);
    });
    const kept = copy(batch);
    const noTransfer = createMatrixWorker({ transfer: false });
    services.push(noTransfer);
    expect(noTransfer.submitEigh(kept).wait()[0]!.values).toEqual(expected[0]!.values);
    expect(kept[0]!.data.length).toBe(96 * 96);
  });

  it('a wait that times out throws and leaves the job running; it still resolves', async () => {
    const worker = shared();
    worker.submitEigh([spd(4, 1)]).wait(); // started
    // ~0.4 s of CPU in the worker (a cheap symmetric matrix; eigh does not need it PSD).
    const n = 1000;
    const data = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) data[i * n + j] = data[j * n + i] = Math.sin(i * j + i);
    const job = worker.submitEigh([{ n, data }]);
    expect(() => job.wait(1)).toThrow(/no result after 1 ms \(the job continues/);
    expect((await job.promise)[0]!.values.length).toBe(n);
  });
});

describe('matrix worker: errors and fallback', () => {
  it('NaN input, a bad shape and an indefinite matrix give clear errors; the worker keeps serving', async () => {
    const worker = shared();
    const bad = spd(8, 4);
    bad.data[3 * 8 + 5] = NaN;
    await expect(worker.eigh([spd(4, 1), { n: 8, data: bad.data.slice() }])).rejects.toThrow(
      /batch\[1\] \(n = 8\).*non-finite entry NaN at \(3, 5\)/,
    );
    const job = worker.submitEigh([bad]);
    expect(() => job.wait()).toThrow(/non-finite/);
    expect(() => job.poll()).toThrow(/non-finite/);
    expect(() => worker.submitEigh([{ n: 3, data: new Float64Array(8) }])).toThrow(/length 8, expected n\*n = 9/);
    expect(() => worker.submitInverseRoots([spd(3, 1)], { p: 0 })).toThrow(/p must be a positive integer/);
    const indefinite = { n: 2, data: Float64Array.from([1, 0, 0, -1]) };
    await expect(worker.inverseRoots([indefinite], { p: 2 })).rejects.toThrow(/inverseRoots: batch\[0\]/);
    // Still serving after errors.
    expect((await worker.eigh([spd(5, 5)]))[0]!.values.length).toBe(5);
    expect(worker.mode).toBe('worker');
  });

  it('a worker that cannot load falls back to inline with one explanation; the lost job rejects clearly', async () => {
    const messages: string[] = [];
    const service = createMatrixWorker({
      workerUrl: new URL('./fixtures/no-such-worker.js', import.meta.url),
      warn: (m) => messages.push(m),
    });
    services.push(service);
    const job = service.submitEigh([spd(6, 1)]);
    expect(() => job.wait()).toThrow(/matrix worker: the worker failed: .*(Cannot find module|ERR_MODULE_NOT_FOUND)/s);
    expect(service.mode).toBe('inline');
    expect(service.fallbackReason).toMatch(/the worker failed/);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatch(/computing inline on this thread instead/);
    // Later jobs are computed inline and equal the worker's results.
    const r = service.submitEigh([spd(6, 1)]);
    expect(r.done).toBe(true);
    expect(r.poll()![0]!.values).toEqual(eigh({ rows: 6, cols: 6, data: spd(6, 1).data }).values);
  });

  it('close() terminates the worker, rejects pending jobs and leaves no handles behind', async () => {
    await Promise.all(services.splice(0).map((s) => s.close()));
    await new Promise((ok) => setTimeout(ok, 50));
    const before = process.getActiveResourcesInfo().sort();
    const service = createMatrixWorker();
    const first = await service.eigh([spd(4, 1)]);
    expect(first[0]!.values.length).toBe(4);
    const pending = service.submitEigh([spd(200, 2)]);
    await service.close();
    await expect(pending.promise).rejects.toThrow(/closed/);
    expect(service.mode).toBe('inline');
    // Give the terminated thread's handles a turn to go.
    await new Promise((ok) => setTimeout(ok, 50));
    const after = process
      .getActiveResourcesInfo()
      .filter((r) => r !== 'Timeout')
      .sort();
    expect(after).toEqual(before.filter((r) => r !== 'Timeout'));
  });

  it('the node backend reports a crashed worker (uncaught error in the worker) instead of hanging', () => {
    const reasons: string[] = [];
    const code = 'data:text/javascript,' + encodeURIComponent('setTimeout(() => { throw new Error("boom") }, 10);');
    const backend = new NodeBackend({ entry: code, tsx: null }, (r) => reasons.push(r));
    const job = backend.submit<EighOutput[]>({ op: 'eigh', batch: [spd(3, 1)] }, [], 20_000);
    expect(() => job.wait()).toThrow(/the worker failed: .*boom/s);
    expect(reasons[0]).toMatch(/boom/);
    return backend.close('test done');
  });

  it('a script that forgets close() still exits: an idle worker holds no handle open', () => {
    const child = spawnSync(process.execPath, ['--import', 'tsx', 'test/helpers/async-exit-child.ts'], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      encoding: 'utf8',
      timeout: 40_000,
    });
    expect(child.signal, `child did not exit by itself; stderr: ${child.stderr}`).toBeNull();
    expect(child.status, child.stderr).toBe(0);
    expect(JSON.parse(child.stdout)).toEqual({ modes: ['worker', 'inline'], values: [1, 3, 1, 3] });
  });
});
