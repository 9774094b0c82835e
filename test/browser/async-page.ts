// The page of test/async-browser.test.ts: the matrix worker (src/async) as a browser user gets
// it from the main entry, bundled by esbuild; the worker entry is served at /worker.js next to the
// page's bundle (where `new URL('./worker.js', import.meta.url)` points).
import {
  createEighRefresh,
  createInlineMatrixService,
  createMatrixWorker,
  type SymmetricMatrix64,
} from '../../src/index.js';

function matrix(n: number, seed: number): SymmetricMatrix64 {
  const data = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      data[i * n + j] = data[j * n + i] = Math.sin(seed + 0.7 * i * j + i - j) / n + (i === j ? 1 : 0);
    }
  }
  return { n, data };
}
const copy = (b: SymmetricMatrix64[]) => b.map((m) => ({ n: m.n, data: m.data.slice() }));
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

export interface AsyncPageResult {
  mode: string;
  maxDiff: number;
  waitError: string;
  refreshSteps: number[];
  refreshStats: { inline: number; submitted: number; blocked: number };
  swappedAt: number;
  fallbackMode: string;
  fallbackError: string;
  warnings: string[];
}

async function runAsync(): Promise<AsyncPageResult> {
  const service = createMatrixWorker();
  const batch = [matrix(48, 1), matrix(20, 2)];
  const inline = createInlineMatrixService().submitEigh(copy(batch)).poll()!;
  const fromWorker = await service.eigh(copy(batch));
  let maxDiff = 0;
  fromWorker.forEach((r, i) => {
    r.values.forEach((v, k) => (maxDiff = Math.max(maxDiff, Math.abs(v - inline[i]!.values[k]!))));
    r.vectors.forEach((v, k) => (maxDiff = Math.max(maxDiff, Math.abs(v - inline[i]!.vectors[k]!))));
  });
  const job = service.submitEigh(copy(batch));
  let waitError = '';
  try {
    job.wait();
  } catch (e) {
    waitError = String(e);
  }
  await job.promise;

  // The main thread cannot block: the staleness bound is not enforced, the stale result stays.
  const refresh = createEighRefresh(service, { maxStaleness: 1 });
  const refreshSteps: number[] = [];
  let t = 0;
  for (; t < 3; t++) {
    refresh.step(t, t === 1, () => [matrix(64, t)]);
    refreshSteps.push(refresh.currentStep);
  }
  for (; t < 300 && refresh.currentStep < 1; t++) {
    await sleep(10);
    refresh.step(t, false, () => [matrix(64, t)]);
  }
  const swappedAt = t - 1;
  await service.close();

  const warnings: string[] = [];
  const broken = createMatrixWorker({ workerUrl: '/broken-worker.js', warn: (m) => warnings.push(m) });
  let fallbackError = '';
  try {
    await broken.eigh([matrix(4, 1)]);
  } catch (e) {
    fallbackError = String(e);
  }
  const fallbackMode = broken.mode;
  await broken.close();
  return {
    mode: service.fallbackReason === 'the service was closed' ? 'worker' : `not a worker: ${service.fallbackReason}`,
    maxDiff,
    waitError,
    refreshSteps,
    refreshStats: refresh.stats,
    swappedAt,
    fallbackMode,
    fallbackError,
    warnings,
  };
}

(globalThis as unknown as { runAsync: typeof runAsync }).runAsync = runAsync;
(globalThis as unknown as { pageReady: boolean }).pageReady = true;
