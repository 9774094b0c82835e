/**
 * Shampoo's root refresh off the training thread (Anil et al. 2020: roots on the host CPU,
 * asynchronously, while the accelerator trains), on src/async's MatrixService and AsyncRefresh.
 *
 * Per parameter, a snapshot of its statistics (the symmetrised, bias-corrected float64 matrices
 * that ./roots.ts would root, all-zero ones left out) is submitted at the root schedule; the
 * worker computes their eigendecompositions (src/linalg eigh); when a result is swapped in, the
 * factors W = diag(w) V^T are made on this thread from src/linalg inverseRootFromEigen (n^2 work)
 * and installed. Staleness: a snapshot taken at step s is in use from step s + rootStaleness at
 * the latest (the step blocks only then); a refresh requested while one is in flight is skipped.
 * With `deterministic` the result of s is installed exactly at s + rootStaleness (timing-free,
 * reproducible). The first roots of a parameter are computed inline at the start step, so
 * training never waits for the worker's start-up. Checkpoints: the installed W slots are saved;
 * work in flight is dropped by setWeights (the next refresh recomputes from the restored
 * statistics).
 */
import { AsyncRefresh, createInlineMatrixService, sharedMatrixWorker } from '../../src/async/index.js';
import type { EighOutput, MatrixService, SymmetricMatrix64 } from '../../src/async/index.js';
import { inverseRootFromEigen } from '../../src/linalg/index.js';
import type { SlotState } from '../../src/optim/base.js';
import type { ShampooPreconditioner } from './preconditioner.js';
import type { RootRules, StatisticSnapshot } from './roots.js';

/** First roots of a parameter, due at their own step: the worker's computation, on this thread. */
const inlineService = createInlineMatrixService();

interface Snapshot {
  step: number;
  meta: { block: number; dim: number; n: number }[];
  mats: SymmetricMatrix64[];
  rules: RootRules;
}

/** The symmetrised, scaled float64 matrices of the non-zero statistics. */
function toSnapshot(step: number, stats: StatisticSnapshot[], rules: RootRules): Snapshot {
  const meta: Snapshot['meta'] = [];
  const mats: SymmetricMatrix64[] = [];
  for (const { block, dim, n, values } of stats) {
    const a = new Float64Array(n * n);
    let zero = true;
    for (let p = 0; p < n; p++) {
      for (let q = 0; q < n; q++) {
        const x = 0.5 * rules.scale * (values[p * n + q]! + values[q * n + p]!);
        a[p * n + q] = x;
        if (x !== 0) zero = false;
      }
    }
    if (zero) continue; // no gradient seen along this block yet: the previous factor stays
    meta.push({ block, dim, n });
    mats.push({ n, data: a });
  }
  return { step, meta, mats, rules };
}

export interface AsyncRootsOptions {
  maxStaleness: number;
  deterministic: boolean;
  service?: MatrixService;
}

/** The outcome of installing one result: roots computed and failed. */
export interface InstallCount {
  roots: number;
  failed: number;
}

export class AsyncRoots {
  private readonly refreshes = new Map<
    SlotState,
    { refresh: AsyncRefresh<Snapshot, EighOutput[]>; installed: number }
  >();
  /** Snapshot metadata by submission step (the job's result carries only the decompositions). */
  private readonly pending = new Map<SlotState, Map<number, Snapshot>>();

  constructor(
    private readonly options: AsyncRootsOptions,
    private readonly onFailure: () => void,
  ) {}

  /**
   * Step t of one parameter (t >= the start step): submit on `request`, install a new result
   * when one is swapped in. Returns the roots installed and failed at this step.
   */
  step(state: SlotState, pc: ShampooPreconditioner, t: number, request: boolean, rules: () => RootRules): InstallCount {
    const entry = this.entryFor(state);
    const snaps = this.pending.get(state)!;
    const result = entry.refresh.step(t, request, () => {
      const s = toSnapshot(t, pc.statistics(state), rules());
      snaps.set(t, s);
      return s;
    });
    const at = entry.refresh.currentStep;
    if (result === null || at === entry.installed) return { roots: 0, failed: 0 };
    entry.installed = at;
    const snap = snaps.get(at);
    for (const k of snaps.keys()) if (k <= at) snaps.delete(k);
    return snap === undefined ? { roots: 0, failed: 0 } : install(state, pc, snap, result);
  }

  /** Drop every result and job in flight (the state was replaced). */
  reset(): void {
    for (const e of this.refreshes.values()) e.refresh.reset();
    this.refreshes.clear();
    this.pending.clear();
  }

  private entryFor(state: SlotState) {
    let e = this.refreshes.get(state);
    if (e === undefined) {
      const service = this.options.service ?? sharedMatrixWorker();
      const refresh = new AsyncRefresh<Snapshot, EighOutput[]>({
        submit: (s) => service.submitEigh(s.mats),
        inline: (s) => inlineService.submitEigh(s.mats).wait(),
        maxStaleness: this.options.maxStaleness,
        deterministic: this.options.deterministic,
        onError: () => this.onFailure(),
      });
      e = { refresh, installed: -1 };
      this.refreshes.set(state, e);
      this.pending.set(state, new Map());
    }
    return e;
  }
}

/** W = diag(w) V^T for every decomposition (vectors are columns), installed; failures counted. */
function install(state: SlotState, pc: ShampooPreconditioner, snap: Snapshot, out: EighOutput[]): InstallCount {
  let failed = 0;
  snap.meta.forEach(({ block, dim, n }, k) => {
    const { values, vectors } = out[k]!;
    try {
      const { weights } = inverseRootFromEigen(values, 2 * snap.rules.exponent, snap.rules);
      const w = new Float32Array(n * n);
      for (let r = 0; r < n; r++) for (let j = 0; j < n; j++) w[r * n + j] = weights[r]! * vectors[j * n + r]!;
      for (let i = 0; i < w.length; i++) if (!Number.isFinite(w[i]!)) throw new Error('non-finite root');
      pc.setRoot(state, block, dim, w, n);
    } catch {
      failed++;
    }
  });
  return { roots: snap.meta.length, failed };
}
