/**
 * Shampoo's preconditioners on the host, for the wasm and cpu tfjs backends (tensors live in
 * JavaScript or WebAssembly memory, so reading a gradient is one copy):
 *
 * - HostKronecker (2-D merged parameters): the statistics' Gram products with the EMA fused in,
 *   the first moment and grafting accumulator, and W_L^T (W_L f_b W_R^T) W_R with per-block
 *   grafting, in the float32 WebAssembly SIMD kernels (src/optim/shampoo-kernels.ts) instead of
 *   ~50 tfjs kernels per parameter with tens of microseconds of overhead each;
 * - HostDiagonal (vectors): the diagonal statistic, moments and direction in a JavaScript loop,
 *   in float64 on the float32 slots (as tfjs ops it is ~30 kernels on a few hundred numbers).
 *
 * The coefficients are the StepPlan's (./rules.ts), the arithmetic the tfjs backend's up to
 * float32 summation order (tested against each other). Slots stay in host buffers between steps
 * (./host-slots.ts).
 */
import * as tf from '@tensorflow/tfjs';
import type { SlotState } from '../../src/optim/base.js';
import {
  allocBuffer,
  bufferView,
  hostValues,
  type HostBuffer,
  type RootPair,
  type ShampooKernels,
} from '../../src/optim/shampoo-kernels.js';
import type { HostSlotStore } from './host-slots.js';
import { grid2d, type Layout } from './layout.js';
import type { ShampooPreconditioner } from './preconditioner.js';
import type { StatisticSnapshot } from './roots.js';
import type { ShampooRules, StepPlan } from './rules.js';

export class HostKronecker implements ShampooPreconditioner {
  readonly diagonal = false;
  /**
   * `products`: apply the roots as P = W^T W (float32, formed once per root refresh: a host-only
   * buffer derived from the W slot) in two products per block instead of the factors in four;
   * the caller enables it only where float32 P is safe (shampoo.ts `productFormSafe`).
   */
  constructor(
    private readonly L: Layout,
    private readonly K: ShampooKernels,
    private readonly store: HostSlotStore,
    private readonly products = false,
  ) {}

  private root(state: SlotState, b: number, i: number): HostBuffer | undefined {
    const slot = `W${b}_${i}`;
    if (!this.products) return this.store.get(state, slot);
    const n = this.L.blocks[b]![i]!;
    return this.store.derived(state, slot, `P${b}_${i}`, n * n, (W, out) => this.K.gramInto(W, n, out));
  }

  updateStatistics(state: SlotState, g: tf.Tensor, plan: StepPlan): void {
    const L = this.L;
    const [onL, onR] = L.preconditioned;
    if (!onL || !onR) {
      // One-sided: only the preconditioned side's Gram products.
      if (!onL && !onR) return;
      const side = onL ? 0 : 1;
      const prevSide = L.blocks.map((_, b) => this.store.get(state, `L${b}_${side}`));
      const { alpha, beta } = plan.statistics;
      const bufs = this.K.statisticsSide(hostValues(g), grid2d(L), side, prevSide, alpha, beta);
      bufs.forEach((buf, b) => {
        const n = L.blocks[b]![side]!;
        this.store.commit(state, `L${b}_${side}`, buf, [n, n]);
      });
      return;
    }
    const prev = L.blocks.map((_, b) => {
      const sl = this.store.get(state, `L${b}_0`);
      const sr = this.store.get(state, `L${b}_1`);
      return sl === undefined || sr === undefined ? undefined : ([sl, sr] as const);
    });
    const { alpha, beta } = plan.statistics;
    const stats = this.K.statistics(hostValues(g), grid2d(L), prev as never, alpha, beta);
    stats.forEach(([sl, sr], b) => {
      const [h, w] = L.blocks[b]!;
      this.store.commit(state, `L${b}_0`, sl, [h!, h!]);
      this.store.commit(state, `L${b}_1`, sr, [w!, w!]);
    });
  }

  statistics(state: SlotState): StatisticSnapshot[] {
    const on = this.L.preconditioned;
    return this.L.blocks.flatMap((sizes, b) =>
      sizes.flatMap((n, i) =>
        on[i] ? [{ block: b, dim: i, n, values: bufferView(this.store.get(state, `L${b}_${i}`)!).slice() }] : [],
      ),
    );
  }

  setRoot(state: SlotState, b: number, i: number, factor: Float32Array, n: number): void {
    const slot = `W${b}_${i}`;
    const buf = this.store.held(state, slot) ?? allocBuffer(n * n);
    bufferView(buf).set(factor);
    this.store.commit(state, slot, buf, [n, n], true); // written to the variable now
  }

  direction(state: SlotState, g: tf.Tensor, plan: StepPlan, shape: number[]): tf.Tensor {
    const r = plan.graft;
    const m = plan.moment;
    const roots = plan.precondition
      ? this.L.blocks.map((_, b) => [this.root(state, b, 0), this.root(state, b, 1)] as RootPair)
      : undefined; // before the start step: the grafted first-order direction
    const out = this.K.direction(
      hostValues(g),
      r === undefined ? undefined : { buf: this.store.get(state, 'graft'), ...r },
      m === undefined ? undefined : { buf: this.store.get(state, 'expAvg'), ...m },
      grid2d(this.L),
      roots,
      plan.graftNorms,
      // The wasm backend copies a new tensor's values at once; the cpu backend keeps the array.
      tf.getBackend() !== 'wasm',
      this.products,
    );
    if (out.a !== undefined) this.store.commit(state, 'graft', out.a, shape);
    if (out.m !== undefined) this.store.commit(state, 'expAvg', out.m, shape);
    return tf.tensor(out.d, shape);
  }
}

export class HostDiagonal implements ShampooPreconditioner {
  readonly diagonal = true;
  constructor(
    private readonly rules: ShampooRules,
    private readonly store: HostSlotStore,
  ) {}

  updateStatistics(state: SlotState, g: tf.Tensor, plan: StepPlan): void {
    const gv = hostValues(g);
    const vb = this.store.getOrAlloc(state, 'diag', gv.length);
    const v = bufferView(vb);
    const { alpha, beta } = plan.statistics; // zeros before the first update
    for (let i = 0; i < gv.length; i++) v[i] = beta * v[i]! + alpha * (gv[i]! * gv[i]!);
    this.store.commit(state, 'diag', vb, g.shape);
  }

  statistics(): StatisticSnapshot[] {
    return [];
  }

  setRoot(): void {
    throw new Error('Shampoo: a diagonal preconditioner has no roots');
  }

  direction(state: SlotState, g: tf.Tensor, plan: StepPlan, shape: number[]): tf.Tensor {
    const gv = hostValues(g);
    const n = gv.length;
    const r = plan.graft;
    const mo = plan.moment;
    // All buffers before any view (an allocation may grow the memory and detach views).
    const ab = r === undefined ? undefined : this.store.getOrAlloc(state, 'graft', n);
    const mb = mo === undefined ? undefined : this.store.getOrAlloc(state, 'expAvg', n);
    const v = bufferView(this.store.get(state, 'diag')!);
    const a = ab === undefined ? undefined : bufferView(ab);
    const m = mb === undefined ? undefined : bufferView(mb);
    const f = new Float64Array(n);
    const gr = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const gi = gv[i]!;
      let fi = gi;
      if (m !== undefined) {
        m[i] = mo!.b1 * m[i]! + mo!.c1 * gi;
        fi = m[i]! / mo!.fdiv;
      }
      f[i] = fi;
      if (a !== undefined) {
        a[i] = r!.ka * a[i]! + r!.kg * (gi * gi);
        gr[i] = fi / (Math.sqrt(a[i]! / r!.adiv) + r!.eps);
      } else {
        gr[i] = fi;
      }
    }
    if (ab !== undefined) this.store.commit(state, 'graft', ab, shape);
    if (mb !== undefined) this.store.commit(state, 'expAvg', mb, shape);
    const d = new Float32Array(n);
    if (!plan.precondition) {
      d.set(gr);
      return tf.tensor(d, shape);
    }
    const scale = plan.diagScale;
    let vmax = -Infinity;
    for (let i = 0; i < n; i++) vmax = Math.max(vmax, Math.fround(v[i]! * scale));
    const eps = this.rules.epsilonFor(vmax);
    const power = -1 / this.rules.rootExponent(1);
    let dn = 0;
    let gn = 0;
    const dd = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      // The 1e-30 floor keeps a zero statistic (zero gradient) from giving 0 * Inf.
      dd[i] = f[i]! * (Math.fround(v[i]! * scale) + eps + 1e-30) ** power;
      dn += dd[i]! * dd[i]!;
      gn += gr[i]! * gr[i]!;
    }
    const s = plan.graftNorms ? Math.sqrt(gn) / (Math.sqrt(dn) + 1e-16) : 1;
    for (let i = 0; i < n; i++) d[i] = dd[i]! * s;
    return tf.tensor(d, shape);
  }
}
