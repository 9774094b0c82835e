/**
 * Slots the host backend (./host-backend.ts) updates in place, in persistent buffers of the
 * Shampoo WebAssembly module's memory: statistics, grafting accumulator and first moment
 * (updated every step) and the roots. Writing the per-step ones back to tfjs every step costs
 * more than updating them, so a `dirty` slot is written to its state variable only by `flush`
 * (getWeights / setWeights). Slots are created at their first update, so the slot order in
 * getWeights is unchanged. Buffers are released by `reset`, or when the owner is
 * garbage-collected.
 */
import * as tf from '@tensorflow/tfjs';
import type { SlotState } from '../../src/optim/base.js';
import {
  allocBuffer,
  bufferView,
  hostTensor,
  hostValues,
  releaseBuffer,
  type HostBuffer,
} from '../../src/optim/shampoo-kernels.js';

/** `version` changes whenever the slot's value does (a new record or a commit). */
type Slots = Map<SlotState, Map<string, { buf: HostBuffer; shape: number[]; dirty: boolean; version: number }>>;
/** Host-only buffers computed from a slot (`derived`), with the slot version they were computed from. */
type Derived = Map<SlotState, Map<string, { buf: HostBuffer; version: number }>>;

function releaseAll({ slots, derived }: { slots: Slots; derived: Derived }): void {
  for (const m of slots.values()) for (const rec of m.values()) releaseBuffer(rec.buf);
  for (const m of derived.values()) for (const rec of m.values()) releaseBuffer(rec.buf);
  slots.clear();
  derived.clear();
}

/** Releases the kernel buffers of an optimizer that was never disposed. */
const registry = new FinalizationRegistry<{ slots: Slots; derived: Derived }>(releaseAll);

let versions = 0;

export class HostSlotStore {
  private readonly slots: Slots = new Map();
  private readonly derivedBufs: Derived = new Map();

  /** `owner`: the optimizer, whose collection releases the buffers. */
  constructor(owner: object) {
    registry.register(owner, { slots: this.slots, derived: this.derivedBufs });
  }

  /** A slot's persistent buffer (updated in place by the kernels), or undefined before its first value. */
  get(state: SlotState, slot: string): HostBuffer | undefined {
    let slots = this.slots.get(state);
    const rec = slots?.get(slot);
    if (rec !== undefined) return rec.buf;
    const t = state.get(slot);
    if (t === undefined) return undefined;
    const buf = allocBuffer(t.size);
    bufferView(buf).set(hostValues(t));
    if (slots === undefined) this.slots.set(state, (slots = new Map()));
    slots.set(slot, { buf, shape: t.shape, dirty: false, version: ++versions });
    return buf;
  }

  /**
   * A host-only buffer of `length` float32s computed from slot `slot` by `compute(src, out)`
   * (never saved: a function of the slot), recomputed only when the slot's value has changed
   * since; undefined while the slot has no value.
   */
  derived(
    state: SlotState,
    slot: string,
    name: string,
    length: number,
    compute: (src: HostBuffer, out: HostBuffer) => void,
  ): HostBuffer | undefined {
    const src = this.get(state, slot);
    if (src === undefined) return undefined;
    const version = this.slots.get(state)!.get(slot)!.version;
    let m = this.derivedBufs.get(state);
    if (m === undefined) this.derivedBufs.set(state, (m = new Map()));
    let rec = m.get(name);
    if (rec !== undefined && rec.version === version) return rec.buf;
    if (rec === undefined || rec.buf.length !== length) {
      if (rec !== undefined) releaseBuffer(rec.buf);
      rec = { buf: allocBuffer(length), version };
      m.set(name, rec);
    }
    rec.version = version;
    compute(src, rec.buf);
    return rec.buf;
  }

  /** The slot's buffer, or a new zero-filled one of `length` (not yet committed). */
  getOrAlloc(state: SlotState, slot: string, length: number): HostBuffer {
    return this.get(state, slot) ?? allocBuffer(length);
  }

  /** The buffer already holding this slot, if any (no load from the state variable). */
  held(state: SlotState, slot: string): HostBuffer | undefined {
    return this.slots.get(state)?.get(slot)?.buf;
  }

  /**
   * `buf` (from get, updated in place, or new) holds the slot's new value. A new slot is
   * created at once; `sync`: the variable is written now (else it is marked dirty).
   */
  commit(state: SlotState, slot: string, buf: HostBuffer, shape: number[], sync = false): void {
    let slots = this.slots.get(state);
    if (slots === undefined) this.slots.set(state, (slots = new Map()));
    const prev = slots.get(slot);
    if (prev !== undefined && prev.buf !== buf) releaseBuffer(prev.buf);
    const write = sync || !state.has(slot);
    if (write) state.set(slot, hostTensor(bufferView(buf).slice(), shape));
    slots.set(slot, { buf, shape, dirty: !write, version: ++versions });
  }

  /** Write every dirty slot to its variable. */
  flush(): void {
    for (const [state, slots] of this.slots) {
      tf.tidy(() => {
        for (const [slot, rec] of slots) {
          if (rec.dirty) state.set(slot, hostTensor(bufferView(rec.buf).slice(), rec.shape));
          rec.dirty = false;
        }
      });
    }
  }

  /** Forget (and release) every buffer: the state was replaced or the optimizer disposed. */
  reset(): void {
    releaseAll({ slots: this.slots, derived: this.derivedBufs });
  }
}
