/**
 * async benchmark (issue 16, src/async): float64 eigendecompositions in the matrix worker against
 * inline on the main thread, the worker round trip, and whether the main thread's tfjs (wasm)
 * training step slows down while the worker computes (the machine has 2 cores).
 *
 *  - eigh and spdInverse (Cholesky) n x n: inline = on the main thread (src/linalg, wasm kernels);
 *    worker = submit to a warm worker and `job.wait()` (transfer out and back included). Median of
 *    the repetitions.
 *  - round trip: a 4 x 4 eigh through the worker, awaited (event loop) and waited (Atomics.wait +
 *    receiveMessageOnPort), median of 50: the fixed cost per job.
 *  - step time: an MLP 784-256-10 gradient + SGD step (batch 128, tfjs wasm) on the main thread,
 *    (a) alone, (b) while the worker computes 784 x 784 eighs back to back, (c) with the same eigh
 *    inline every 5 steps (the synchronous schedule's cost); wall time and the main thread's CPU
 *    time per step (from /proc), which tells interference apart from the scheduler's share.
 * The load average is printed: the machine is shared, so compare ratios within one run.
 *
 * Env ASYNC_BENCH_SIZES=256,784 (default), ASYNC_BENCH_REPS=3.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { createMatrixWorker, type MatrixService, type SymmetricMatrix64 } from '../../src/async/index.js';
import { eigh, matmulABt, spdInverse } from '../../src/linalg/index.js';
import { mulberry32 } from '../../src/rng.js';

function spd(n: number, seed: number): SymmetricMatrix64 {
  const r = mulberry32(seed);
  const k = n;
  const g = Float64Array.from({ length: n * k }, () => r() - 0.5);
  const data = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let acc = 0;
      for (let l = 0; l < k; l++) acc += g[i * k + l]! * g[j * k + l]!;
      data[i * n + j] = data[j * n + i] = acc / k + (i === j ? 1e-3 : 0);
    }
  }
  return { n, data };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};
const copy = (m: SymmetricMatrix64) => ({ n: m.n, data: m.data.slice() });

function mlpStep(): { step: () => void; dispose: () => void } {
  const r = mulberry32(3);
  const rand = (shape: number[], s: number) =>
    tf.tensor(
      Float32Array.from({ length: shape.reduce((a, b) => a * b) }, () => (r() - 0.5) * s),
      shape,
    );
  const w1 = tf.variable(rand([784, 256], 0.1));
  const b1 = tf.variable(tf.zeros([256]));
  const w2 = tf.variable(rand([256, 10], 0.1));
  const b2 = tf.variable(tf.zeros([10]));
  const x = rand([128, 784], 1);
  const y = tf.oneHot(
    tf.tensor1d(
      Array.from({ length: 128 }, (_, i) => i % 10),
      'int32',
    ),
    10,
  );
  const opt = tf.train.sgd(0.01);
  const step = () => {
    const cost = opt.minimize(
      () =>
        tf.losses.softmaxCrossEntropy(y, tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(x, w1), b1)), w2), b2)) as tf.Scalar,
      true,
    );
    cost!.dataSync();
    cost!.dispose();
  };
  return { step, dispose: () => tf.dispose([w1, b1, w2, b2, x, y]) };
}

/** CPU time (user + system) of the main thread so far, ms (Linux /proc; NaN elsewhere). */
function mainThreadCpuMs(): number {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return NaN;
  }
}

export async function run(): Promise<string> {
  if (tf.getBackend() === undefined || tf.getBackend() === '') await tf.ready();
  const sizes = (process.env.ASYNC_BENCH_SIZES ?? '256,784').split(',').map(Number);
  const reps = Number(process.env.ASYNC_BENCH_REPS ?? 3);
  const lines: string[] = [];
  const service: MatrixService = createMatrixWorker();
  const t0 = performance.now();
  service.submitEigh([spd(8, 1)]).wait();
  const startMs = performance.now() - t0;
  if (service.mode !== 'worker') throw new Error(`async bench: no worker (${service.fallbackReason})`);

  lines.push('## Matrix worker (src/async)', '');
  lines.push(
    'Float64 symmetric eigendecomposition (src/linalg eigh) and damped SPD inverse (spdInverse, Cholesky; ' +
      "K-FAC's factor inverses) in the worker against inline on the main thread, wasm kernels; load average " +
      `${loadavg()[0]!.toFixed(1)} at start. Worker start-up (first 8 x 8 job, loads the worker's module graph): ` +
      `${startMs.toFixed(0)} ms.`,
    '',
    '| operation | n | inline, wall (ms) | inline, main-thread CPU (ms) | worker, submit to result (ms) | overhead (ms) |',
    '|---|---|---|---|---|---|',
  );
  const big: Record<number, SymmetricMatrix64> = {};
  const ops = {
    eigh: {
      inline: (m: SymmetricMatrix64) => eigh({ rows: m.n, cols: m.n, data: m.data }),
      worker: (m: SymmetricMatrix64) => service.submitEigh([m]).wait(),
    },
    spdInverse: {
      inline: (m: SymmetricMatrix64) => spdInverse({ rows: m.n, cols: m.n, data: m.data }),
      worker: (m: SymmetricMatrix64) => service.submitSpdInverses([m]).wait(),
    },
  };
  for (const [name, op] of Object.entries(ops)) {
    for (const n of sizes) {
      const a = (big[n] ??= spd(n, n));
      op.inline(a); // warm-up
      op.worker(copy(a));
      const inl: number[] = [];
      const wrk: number[] = [];
      for (let r = 0; r < reps; r++) {
        let t = performance.now();
        op.inline(a);
        inl.push(performance.now() - t);
        const b = copy(a);
        t = performance.now();
        op.worker(b);
        wrk.push(performance.now() - t);
      }
      // CPU per inline call: repeat until >= 150 ms of CPU (10 ms ticks) or 60 calls.
      let calls = 0;
      const c0 = mainThreadCpuMs();
      while (calls < 60 && (calls === 0 || mainThreadCpuMs() - c0 < 150)) {
        op.inline(a);
        calls++;
      }
      const cpuMs = (mainThreadCpuMs() - c0) / calls;
      const [i, w] = [median(inl), median(wrk)];
      lines.push(
        `| ${name} | ${n} | ${i.toFixed(1)} | ${cpuMs.toFixed(1)} | ${w.toFixed(1)} | ${(w - i).toFixed(1)} |`,
      );
    }
  }

  // K-FAC's per-step statistics product A = a^T a / B (a: B x 784 activations): on the main
  // thread in tfjs (float32), against what moving it to the worker would leave on the main thread
  // (downloading a, dataSync) and cost the worker (float64 a^T a, src/linalg).
  {
    const r = mulberry32(5);
    const act = tf.tensor2d(
      Float32Array.from({ length: 128 * 784 }, () => r() - 0.5),
      [128, 784],
    );
    const perCall = (f: () => void) => {
      f();
      let calls = 0;
      const c0 = mainThreadCpuMs();
      const t0 = performance.now();
      while (calls < 200 && (calls === 0 || mainThreadCpuMs() - c0 < 150)) {
        f();
        calls++;
      }
      return { cpu: (mainThreadCpuMs() - c0) / calls, wall: (performance.now() - t0) / calls };
    };
    const tfProduct = perCall(() => {
      // As src/layers/dense.ts: an explicit transpose (matMul's transposeA is ~9x slower on wasm).
      const A = tf.tidy(() => tf.div(tf.matMul(tf.transpose(act), act), 128));
      A.dataSync();
      A.dispose();
    });
    let host: ArrayLike<number> = new Float32Array(0);
    const download = perCall(() => {
      host = act.dataSync();
    });
    const at = { rows: 784, cols: 128, data: new Float64Array(784 * 128) };
    for (let i = 0; i < 128; i++) for (let j = 0; j < 784; j++) at.data[j * 128 + i] = host[i * 784 + j]!;
    const f64 = perCall(() => matmulABt(at, at, true));
    act.dispose();
    lines.push(
      '',
      "K-FAC's statistics product A = a^T a / 128 for 128 x 784 activations, per call (CPU / wall ms): tfjs " +
        `float32 matMul + download on the main thread ${tfProduct.cpu.toFixed(2)} / ${tfProduct.wall.toFixed(2)}; ` +
        `downloading a alone (what would stay on the main thread) ${download.cpu.toFixed(2)} / ` +
        `${download.wall.toFixed(2)}; float64 a^T a (src/linalg, what the worker would spend) ${f64.cpu.toFixed(2)} / ` +
        `${f64.wall.toFixed(2)}.`,
    );
  }

  const tiny = spd(4, 2);
  const awaited: number[] = [];
  const waited: number[] = [];
  for (let i = 0; i < 50; i++) {
    let t = performance.now();
    await service.eigh([copy(tiny)]);
    awaited.push(performance.now() - t);
    t = performance.now();
    service.submitEigh([copy(tiny)]).wait();
    waited.push(performance.now() - t);
  }
  lines.push(
    '',
    `Round trip of a 4 x 4 job (median of 50): awaited ${median(awaited).toFixed(3)} ms, ` +
      `waited synchronously ${median(waited).toFixed(3)} ms.`,
    '',
  );

  // Main-thread training step: alone, while the worker computes, and with the eigh inline.
  // Conditions are interleaved in blocks of 10 steps (3 rounds) against drift in the machine's load.
  const n = sizes.at(-1)!;
  const { step, dispose } = mlpStep();
  for (let i = 0; i < 5; i++) step();
  const wall: Record<string, number[]> = { alone: [], busy: [], inline: [] };
  const cpu: Record<string, number> = { alone: 0, busy: 0, inline: 0 };
  let done = 0;
  for (let round = 0; round < 3; round++) {
    for (const cond of ['alone', 'busy', 'inline'] as const) {
      let stop = false;
      const pump =
        cond === 'busy'
          ? (async () => {
              while (!stop) {
                await service.eigh([copy(big[n]!)]);
                done++;
              }
            })()
          : null;
      if (pump) await new Promise((ok) => setTimeout(ok, 20));
      const c0 = mainThreadCpuMs();
      for (let i = 0; i < 10; i++) {
        const t = performance.now();
        step();
        if (cond === 'inline' && i % 5 === 0) eigh({ rows: n, cols: n, data: big[n]!.data });
        wall[cond]!.push(performance.now() - t);
        await new Promise((ok) => setImmediate(ok)); // lets the worker's responses in
      }
      cpu[cond]! += mainThreadCpuMs() - c0;
      stop = true;
      await pump;
    }
  }
  dispose();
  await service.close();
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const cpuCol = (c: string) => (Number.isFinite(cpu[c]!) ? (cpu[c]! / 30).toFixed(1) : 'n/a');
  lines.push(
    `MLP 784-256-10 gradient + SGD step (batch 128, tfjs ${tf.getBackend()}) on the main thread, 30 steps per ` +
      `condition interleaved; the worker did ${done} eighs of ${n} x ${n} during the "worker busy" steps. Main-thread ` +
      'CPU time is read from /proc (10 ms ticks): it separates interference (cache, memory bandwidth) from the ' +
      'share of a core the scheduler gives the thread.',
    '',
    '| condition | wall ms/step (median) | wall ms/step (mean) | main-thread CPU ms/step |',
    '|---|---|---|---|',
    `| alone | ${median(wall.alone!).toFixed(1)} | ${mean(wall.alone!).toFixed(1)} | ${cpuCol('alone')} |`,
    `| worker busy (${n} x ${n} eighs back to back) | ${median(wall.busy!).toFixed(1)} | ${mean(wall.busy!).toFixed(1)} | ${cpuCol('busy')} |`,
    `| eigh ${n} inline every 5 steps | ${median(wall.inline!).toFixed(1)} | ${mean(wall.inline!).toFixed(1)} | ${cpuCol('inline')} |`,
    '',
    `Load average ${loadavg()[0]!.toFixed(1)} at the end.`,
  );
  return lines.join('\n') + '\n';
}
