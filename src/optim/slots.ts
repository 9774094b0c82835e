/**
 * The optimizer state a CurvatureOptimizer saves (src/optim/base.ts): per-key tensor slots with an
 * update count, the restore-time matching of saved keys to variables, and the checkpoint format
 * of getWeights / setWeights ('iter' is the base's; here '__optimizer__/<name>' for the scalar
 * hyper-state, '<key>/step' and '<key>/<slot>').
 */
import * as tf from '@tensorflow/tfjs';

/** Per-key optimizer state: tensor slots plus an update count. */
export interface SlotState {
  /** Updates already applied to this variable (PyTorch `state['step']` before increment). */
  step: number;
  /** The slot's current value, or undefined before its first `set`. */
  get(slot: string): tf.Tensor | undefined;
  /** Create (first call) or overwrite the slot. The base keeps its own copy. */
  set(slot: string, value: tf.Tensor): void;
  has(slot: string): boolean;
  /** Slot names in creation order. */
  slots(): string[];
}

const GLOBAL_PREFIX = '__optimizer__';
const STEP_SLOT = 'step';

/**
 * Scalar hyper-state (damping, rho, counts) is saved bit-exactly: the float64 as its two 32-bit
 * halves in an int32 tensor of shape [2], in the platform's byte order (little-endian wherever
 * tfjs runs; tfjs weight files are native-order typed arrays too), since tfjs weights hold no
 * float64. Checkpoints written before this format held a float32 scalar, which `decodeNumber`
 * still reads.
 */
function encodeNumber(v: number): tf.Tensor {
  const words = new Int32Array(new Float64Array([v]).buffer);
  return tf.tensor1d(words, 'int32');
}

async function decodeNumber(t: tf.Tensor, name: string, owner: string): Promise<number> {
  const data = await t.data();
  if (t.dtype === 'int32' && t.size === 2) {
    return new Float64Array(Int32Array.from(data as Int32Array).buffer)[0]!;
  }
  if (t.size === 1) return data[0]! as number; // old format: a float32 scalar
  throw new Error(
    `${owner}.setWeights: '${name}' must be a float32 scalar or an int32 pair holding a float64, got ${t.dtype} of shape [${t.shape}]`,
  );
}

class StateEntry implements SlotState {
  step = 0;
  private readonly values = new Map<string, tf.Variable>();

  get(slot: string): tf.Tensor | undefined {
    return this.values.get(slot);
  }

  has(slot: string): boolean {
    return this.values.has(slot);
  }

  slots(): string[] {
    return [...this.values.keys()];
  }

  set(slot: string, value: tf.Tensor): void {
    if (slot.includes('/') || slot === STEP_SLOT) {
      throw new Error(`Invalid slot name '${slot}' (must not contain '/' nor be '${STEP_SLOT}')`);
    }
    const existing = this.values.get(slot);
    if (existing && existing.dtype === value.dtype && tf.util.arraysEqual(existing.shape, value.shape)) {
      existing.assign(value);
    } else {
      existing?.dispose();
      // tf.variable shares the data buffer (ref-counted), so disposing `value` later is safe.
      this.values.set(slot, tf.variable(value, false));
    }
  }

  adopt(slot: string, v: tf.Variable): void {
    this.values.get(slot)?.dispose();
    this.values.set(slot, v);
  }

  dispose(): void {
    for (const v of this.values.values()) v.dispose();
    this.values.clear();
  }
}

/**
 * The state entries by key, in creation (saved) order, and the restored keys not yet matched to
 * a variable (positional adoption, as tfjs does for a model reloaded with suffixed names).
 */
export class SlotStore {
  private readonly state = new Map<string, StateEntry>();
  /** Restored keys not yet matched to a variable, in saved order (positional adoption). */
  private unclaimed: string[] = [];

  /** State under an arbitrary key (non-variable keys should start with '@'). */
  stateFor(key: string): SlotState {
    let s = this.state.get(key);
    if (s === undefined) {
      s = new StateEntry();
      this.state.set(key, s);
    } else {
      this.unclaimed = this.unclaimed.filter((k) => k !== key);
    }
    return s;
  }

  /** State of a variable; a variable without state adopts the first unclaimed restored entry. */
  variableState(name: string): SlotState {
    if (!this.state.has(name)) {
      const donorKey = this.unclaimed.find((k) => !k.startsWith('@'));
      if (donorKey !== undefined) {
        const donor = this.state.get(donorKey)!;
        this.state.delete(donorKey);
        this.state.set(name, donor);
        this.unclaimed = this.unclaimed.filter((k) => k !== donorKey);
        return donor;
      }
    }
    return this.stateFor(name);
  }

  /** Mark restored entries whose variables are present by name, before positional adoption. */
  claimByName(names: string[]): void {
    if (this.unclaimed.length === 0) return;
    const present = new Set(names);
    this.unclaimed = this.unclaimed.filter((k) => !present.has(k));
  }

  /** Keys that currently hold state, in creation (saved) order. */
  keys(): string[] {
    return [...this.state.keys()];
  }

  /** '<key>/step' and '<key>/<slot>' per key, copies the caller owns. */
  toWeights(): NamedTensor[] {
    const out: NamedTensor[] = [];
    for (const [key, entry] of this.state) {
      out.push({ name: `${key}/${STEP_SLOT}`, tensor: tf.scalar(entry.step, 'int32') });
      for (const slot of entry.slots()) {
        out.push({ name: `${key}/${slot}`, tensor: tf.clone(entry.get(slot)!) });
      }
    }
    return out;
  }

  /** The entry under `key` while restoring (created on first use, not marked as claimed). */
  restoring(key: string): StateEntry {
    let e = this.state.get(key);
    if (e === undefined) {
      e = new StateEntry();
      this.state.set(key, e);
    }
    return e;
  }

  /** After a restore: every key waits for its variable. */
  markAllUnclaimed(): void {
    this.unclaimed = [...this.state.keys()];
  }

  dispose(): void {
    for (const e of this.state.values()) e.dispose();
    this.state.clear();
    this.unclaimed = [];
  }
}

interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

/** The scalar hyper-state and the slots as named tensors (after the base's 'iter'). */
export function encodeState(numeric: Record<string, number>, slots: SlotStore): NamedTensor[] {
  const out: NamedTensor[] = [];
  for (const [k, v] of Object.entries(numeric)) out.push({ name: `${GLOBAL_PREFIX}/${k}`, tensor: encodeNumber(v) });
  return [...out, ...slots.toWeights()];
}

/**
 * What getWeights produced, read back: the update count ('iter', when present), the scalar
 * hyper-state (`skippedSteps` 0 unless saved) and fresh slots (tensors copied; the caller keeps
 * its own). On a malformed name nothing is kept.
 */
export async function decodeState(
  weights: NamedTensor[],
  owner: string,
): Promise<{ iterations: number | undefined; numeric: Record<string, number>; slots: SlotStore }> {
  let iterations: number | undefined;
  const numeric: Record<string, number> = { skippedSteps: 0 };
  const slots = new SlotStore();
  try {
    for (const { name, tensor } of weights) {
      if (name === 'iter') {
        iterations = (await tensor.data())[0]!;
        continue;
      }
      const cut = name.lastIndexOf('/');
      if (cut <= 0) {
        throw new Error(`${owner}.setWeights: unexpected weight name '${name}'`);
      }
      const key = name.slice(0, cut);
      const slot = name.slice(cut + 1);
      if (key === GLOBAL_PREFIX) numeric[slot] = await decodeNumber(tensor, name, owner);
      else if (slot === STEP_SLOT) slots.restoring(key).step = (await tensor.data())[0]!;
      // The variable shares the (ref-counted) buffer; the caller may dispose `tensor`.
      else
        slots.restoring(key).adopt(
          slot,
          tf.tidy(() => tf.variable(tensor.toFloat(), false)),
        );
    }
  } catch (err) {
    slots.dispose();
    throw err;
  }
  slots.markAllUnclaimed();
  return { iterations, numeric, slots };
}
