/**
 * The computation behind the matrix service, shared by the worker (./worker.ts) and the inline
 * service (./inline.ts) so that both give bit-identical results: src/linalg's float64 `eigh`,
 * `inverseRoot(..., { method: 'eigh' })` and `spdInverse` (Cholesky).
 */
import { eigh } from '../linalg/eigh.js';
import { inverseRoot } from '../linalg/roots.js';
import { spdInverse } from '../linalg/cholesky.js';
import type {
  EighOutput,
  InverseRootOutput,
  InverseRootsOptions,
  SpdInverseOutput,
  SpdInversesOptions,
  SymmetricMatrix64,
} from './types.js';

/** The operations of the matrix service. */
export type MatrixOp = 'eigh' | 'inverseRoots' | 'spdInverses';

/** A request as it travels to the worker. */
export interface MatrixRequest {
  id: number;
  op: MatrixOp;
  batch: SymmetricMatrix64[];
  options?: InverseRootsOptions | SpdInversesOptions;
}

type MatrixResult = EighOutput | InverseRootOutput | SpdInverseOutput;

/** A response as it travels back. */
export type MatrixResponse =
  { id: number; ok: true; results: MatrixResult[] } | { id: number; ok: false; error: string };

/** Shape checks done on the submitting thread (cheap, O(batch)); values are checked by linalg. */
export function checkBatch(batch: readonly SymmetricMatrix64[], where: string): void {
  if (!Array.isArray(batch)) throw new Error(`${where}: batch must be an array of { n, data }`);
  batch.forEach((m, i) => {
    if (m === null || typeof m !== 'object') throw new Error(`${where}: batch[${i}] must be { n, data }`);
    if (!(Number.isInteger(m.n) && m.n >= 1)) throw new Error(`${where}: batch[${i}].n must be a positive integer`);
    if (!(m.data instanceof Float64Array)) throw new Error(`${where}: batch[${i}].data must be a Float64Array`);
    if (m.data.length !== m.n * m.n) {
      const detached = m.data.length === 0 ? ' (a detached buffer? it was transferred by an earlier submission)' : '';
      throw new Error(`${where}: batch[${i}].data has length ${m.data.length}, expected n*n = ${m.n * m.n}${detached}`);
    }
  });
}

/** Option checks done on the submitting thread. */
export function checkOptions(op: MatrixOp, options: unknown, where: string): void {
  if (op === 'inverseRoots') {
    const o = options as InverseRootsOptions | undefined;
    if (o === null || typeof o !== 'object') throw new Error(`${where}: options { p } are required`);
    if (!(Number.isInteger(o.p) && o.p >= 1))
      throw new Error(`${where}: p must be a positive integer, got ${String(o.p)}`);
  } else if (op === 'spdInverses' && options !== undefined) {
    const d = (options as SpdInversesOptions).damping ?? 0;
    if (!(Number.isFinite(d) && d >= 0)) throw new Error(`${where}: damping must be finite and >= 0, got ${d}`);
  }
}

function computeOne(op: MatrixOp, m: SymmetricMatrix64, options: MatrixRequest['options']): MatrixResult {
  const a = { rows: m.n, cols: m.n, data: m.data };
  if (op === 'eigh') {
    const r = eigh(a);
    return { n: m.n, values: r.values, vectors: r.vectors.data };
  }
  if (op === 'inverseRoots') {
    const { p, ...spectral } = options as InverseRootsOptions;
    const r = inverseRoot(a, p, { ...spectral, method: 'eigh' });
    return { n: m.n, root: r.root.data, epsilon: r.epsilon, error: r.error, clamped: r.clamped };
  }
  const { damping = 0, ...cholesky } = (options ?? {}) as SpdInversesOptions;
  const data = m.data.slice();
  for (let i = 0; i < m.n; i++) data[i * m.n + i] += damping;
  const r = spdInverse({ rows: m.n, cols: m.n, data }, cholesky);
  return { n: m.n, inverse: r.inverse.data, jitter: r.jitter };
}

/** Run one request; throws an Error naming the operation and batch item on failure. */
export function compute(req: MatrixRequest): MatrixResult[] {
  return req.batch.map((m, i) => {
    try {
      return computeOne(req.op, m, req.options);
    } catch (e) {
      throw new Error(`${req.op}: batch[${i}] (n = ${m.n}): ${e instanceof Error ? e.message : String(e)}`);
    }
  });
}

/**
 * Buffers that can be transferred: each array owning its whole (non-shared) ArrayBuffer, each
 * buffer once. Anything else (a view on a larger buffer) is copied by the structured clone.
 */
export function transferables(arrays: readonly Float64Array[]): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const a of arrays) {
    const b = a.buffer;
    if (b instanceof ArrayBuffer && a.byteOffset === 0 && a.byteLength === b.byteLength) out.add(b);
  }
  return [...out];
}

function resultArrays(results: MatrixResult[]): Float64Array[] {
  return results.flatMap((r) => ('values' in r ? [r.values, r.vectors] : 'root' in r ? [r.root] : [r.inverse]));
}

/** Respond to a request without throwing. */
export function respond(req: MatrixRequest): { response: MatrixResponse; transfer: ArrayBuffer[] } {
  try {
    const results = compute(req);
    return { response: { id: req.id, ok: true, results }, transfer: transferables(resultArrays(results)) };
  } catch (e) {
    return { response: { id: req.id, ok: false, error: e instanceof Error ? e.message : String(e) }, transfer: [] };
  }
}
