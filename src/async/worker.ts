/**
 * The matrix worker's entry (docs/async.md). Runs as a Node `worker_threads` worker (started by
 * ./node-worker.ts through a small bootstrap that reports load failures) or as a browser module
 * Web Worker (./service.ts). Requests arrive as messages and are computed one at a time, in order,
 * by ./compute.ts; each response transfers its result buffers back.
 *
 * Node: responses go to a dedicated MessagePort (workerData.port) and every response increments
 * workerData.signal[0] (Int32Array on a SharedArrayBuffer) with Atomics.notify, so that the main
 * thread can block on it with Atomics.wait and collect the response with receiveMessageOnPort
 * while its event loop is not running (a synchronous optimizer step). signal[1] = 1 once loaded.
 *
 * No Node built-in is imported (process.getBuiltinModule instead), so the file also bundles for
 * the browser.
 */
import { respond, type MatrixRequest, type MatrixResponse } from './compute.js';

interface NodePort {
  postMessage(message: unknown, transfer?: ArrayBuffer[]): void;
  on(event: 'message', listener: (message: MatrixRequest) => void): void;
}

interface NodeWorkerThreads {
  parentPort: NodePort | null;
  workerData: { port: NodePort; signal: Int32Array } | undefined;
}

interface WebWorkerScope {
  postMessage(message: unknown, transfer?: ArrayBuffer[]): void;
  onmessage: ((event: { data: MatrixRequest }) => void) | null;
}

const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
const threads = proc?.getBuiltinModule?.('node:worker_threads') as NodeWorkerThreads | undefined;

if (threads?.parentPort && threads.workerData?.signal) {
  const { port, signal } = threads.workerData;
  threads.parentPort.on('message', (req) => {
    const { response, transfer } = respond(req);
    send(port, response, transfer);
    Atomics.add(signal, 0, 1);
    Atomics.notify(signal, 0);
  });
  Atomics.store(signal, 1, 1);
  Atomics.notify(signal, 0);
} else {
  const scope = globalThis as unknown as WebWorkerScope;
  scope.onmessage = (event) => {
    const { response, transfer } = respond(event.data);
    send(scope, response, transfer);
  };
  scope.postMessage({ id: -1, ok: true, results: [] } satisfies MatrixResponse);
}

function send(
  port: { postMessage(message: unknown, transfer?: ArrayBuffer[]): void },
  r: MatrixResponse,
  t: ArrayBuffer[],
) {
  try {
    port.postMessage(r, t);
  } catch (e) {
    // A result that cannot be cloned or transferred is reported, never lost.
    port.postMessage({ id: r.id, ok: false, error: `matrix worker: cannot send the result: ${String(e)}` });
  }
}
