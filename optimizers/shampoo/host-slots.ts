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

type Slots = Map<SlotState, Map<string, { buf: HostBuffer; shape: number[]; dirty: boolean }>>;

function releaseAll(slots: Slots): void {
  for (const m of slots.values()) for (const rec of m.values()) releaseBuffer(rec.buf);
  slots.clear();
}

/** Releases the kernel buffers of an optimizer that was never disposed. */
const registry = new FinalizationRegistry<Slots>(releaseAll);

export class HostSlotStore {
  private readonly slots: Slots = new Map();

  /** `owner`: the optimizer, whose collection releases the buffers. */
  constructor(owner: object) {
    registry.register(owner, this.slots);
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
    slots.set(slot, { buf, shape: t.shape, dirty: false });
    return buf;
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
    slots.set(slot, { buf, shape, dirty: !write });
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
    releaseAll(this.slots);
  }
}
