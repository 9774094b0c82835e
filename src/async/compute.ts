/**
 * The computation behind the matrix service, shared by the worker (./worker.ts) and the inline
 * service (./inline.ts) so that both give bit-identical results: src/linalg's float64 `eighRows`
 * and `inverseRoot(..., { method: 'eigh' })`.
 */
import { eigh } from '../linalg/eigh.js';
import { inverseRoot } from '../linalg/roots.js';
import type { EighOutput, InverseRootOutput, InverseRootsOptions, SymmetricMatrix64 } from './types.js';

/** A request as it travels to the worker. */
export type MatrixRequest =
  | { id: number; op: 'eigh'; batch: SymmetricMatrix64[] }
  | { id: number; op: 'inverseRoots'; batch: SymmetricMatrix64[]; options: InverseRootsOptions };

/** A response as it travels back. */
export type MatrixResponse =
  { id: number; ok: true; results: EighOutput[] | InverseRootOutput[] } | { id: number; ok: false; error: string };

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

export function checkInverseRootsOptions(options: InverseRootsOptions, where: string): void {
  if (options === null || typeof options !== 'object') throw new Error(`${where}: options { p } are required`);
  if (!(Number.isInteger(options.p) && options.p >= 1)) {
    throw new Error(`${where}: p must be a positive integer, got ${String(options.p)}`);
  }
}

/** Run one request; throws an Error naming the batch item on failure. */
export function compute(req: MatrixRequest): EighOutput[] | InverseRootOutput[] {
  const name = req.op === 'eigh' ? 'eigh' : 'inverseRoots';
  return req.batch.map((m, i) => {
    try {
      const a = { rows: m.n, cols: m.n, data: m.data };
      if (req.op === 'eigh') {
        const r = eigh(a);
        return { n: m.n, values: r.values, vectors: r.vectors.data };
      }
      const { p, ...spectral } = req.options;
      const r = inverseRoot(a, p, { ...spectral, method: 'eigh' });
      return { n: m.n, root: r.root.data, epsilon: r.epsilon, error: r.error, clamped: r.clamped };
    } catch (e) {
      throw new Error(`${name}: batch[${i}] (n = ${m.n}): ${e instanceof Error ? e.message : String(e)}`);
    }
  }) as EighOutput[] | InverseRootOutput[];
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

function resultArrays(results: EighOutput[] | InverseRootOutput[]): Float64Array[] {
  return results.flatMap((r) => ('values' in r ? [r.values, r.vectors] : [r.root]));
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
