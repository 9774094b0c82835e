/**
 * Every use of tfjs-core engine internals, in one file (the kernel swaps are beside it:
 * wasm-matmul.ts, wasm-conv.ts). Each is pinned by test/tfjs-internals.test.ts, so a tfjs upgrade
 * that changes one fails there, by name. eslint.config.js forbids `tf.engine()` and the kernel
 * registry functions outside this folder.
 *
 * - the gradient tape (`state.activeTape`, its nodes' `inputs`, `outputs`, `gradient`) and the
 *   recording depth (`state.gradientDepth`): K-FAC's and HessianFree's capture (src/layers);
 * - `registeredVariables`: variables by name, the trainable ones;
 * - `keep`: intercepted by `releaseKept`, the one scope helper for re-evaluating a closure that
 *   keeps tensors (tfjs-layers' training closure keeps its metrics on every call);
 * - `runKernel` by name (gradients that call a kernel with no public op);
 * - the cpu backend's `firstUse` notice.
 */
import * as tf from '@tensorflow/tfjs';

/** A node of tfjs-core's gradient tape (tape.ts TapeNode), as far as the project reads it. */
export interface TapeNode {
  id: number;
  kernelName?: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  gradient?: (dys: (tf.Tensor | null)[]) => Record<string, () => tf.Tensor>;
  saved?: tf.Tensor[];
}

/** The part of tfjs-core's EngineState the project reads. */
export interface EngineState {
  activeTape: TapeNode[] | null;
  gradientDepth: number;
}

interface EngineInternals {
  state: EngineState;
  registeredVariables: Record<string, tf.Variable>;
  keep?: (t: tf.Tensor) => tf.Tensor;
}

function engine(): EngineInternals {
  return tf.engine() as unknown as EngineInternals;
}

/** The engine's state (the active tape while a gradient is recorded, else null). */
export function engineState(): EngineState {
  return engine().state;
}

/** Run fn without recording on the active tape (bookkeeping that is not part of the loss). */
export function untaped<T>(fn: () => T): T {
  const state = engineState();
  const depth = state.gradientDepth;
  state.gradientDepth = 0;
  try {
    return fn();
  } finally {
    state.gradientDepth = depth;
  }
}

/** The variable registered under `name`, if any. */
export function registeredVariable(name: string): tf.Variable | undefined {
  return engine().registeredVariables[name];
}

/** Every trainable registered variable (what tf.variableGrads differentiates without a varList). */
export function trainableVariables(): tf.Variable[] {
  return Object.values(engine().registeredVariables).filter((v) => v.trainable);
}

function collect(result: unknown, into: Set<tf.Tensor>): void {
  if (result instanceof tf.Tensor) into.add(result);
  else if (Array.isArray(result)) for (const r of result) collect(r, into);
  else if (result !== null && typeof result === 'object') {
    for (const r of Object.values(result as Record<string, unknown>)) collect(r, into);
  }
}

/**
 * Run fn; dispose afterwards whatever it `tf.keep`-ed that is not in its result. Second-order
 * methods call the user's loss closure many times per step; tfjs-layers' training closure keeps a
 * metric tensor on every call and reports only the first call's. The first closure call of a step
 * (the one whose metrics fit reports) must NOT be wrapped. Wrap fn's body in tf.tidy as well to
 * release what it did not keep.
 */
export function releaseKept<T>(fn: () => T): T {
  const e = engine();
  const hadOwn = Object.prototype.hasOwnProperty.call(e, 'keep');
  const previous = e.keep!;
  const kept: tf.Tensor[] = [];
  e.keep = (t: tf.Tensor): tf.Tensor => {
    kept.push(t);
    return previous.call(e, t);
  };
  let result: T;
  try {
    result = fn();
  } finally {
    if (hadOwn) e.keep = previous;
    else delete e.keep;
  }
  const keepAlive = new Set<tf.Tensor>();
  collect(result, keepAlive);
  for (const t of kept) if (!t.isDisposed && !keepAlive.has(t)) t.dispose();
  return result;
}

/** Run a kernel by name through the engine (differentiable: its registered gradient applies). */
export function runKernel(name: string, inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown>): tf.Tensor {
  return tf
    .engine()
    .runKernel(name, inputs as unknown as tf.NamedTensorMap, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
}

/** The cpu backend greets Node users with advice to install tfjs-node on its first use; silence it. */
export function silenceCpuFirstUseNotice(): void {
  const b = tf.backend() as unknown as { firstUse?: boolean };
  if ('firstUse' in b) b.firstUse = false;
}
