/**
 * CurvatureOptimizer: the drop-in `tf.Optimizer` base of every curvature optimizer
 * (SGD, RMSProp, Adam, Newton, HessianFree, KFAC, Shampoo).
 *
 * What a subclass gets for free: option validation, `minimize` / `applyGradients` exactly as
 * tfjs calls them (tfjs-layers' fit calls `minimize(lossFn, true, trainableWeights)`), state
 * slots keyed by variable name, `getWeights`/`setWeights` carrying all of it plus the step
 * counts, `getConfig`/`fromConfig`, the non-finite guard, leak-free steps and `dispose`.
 *
 * ## Writing a subclass
 *
 * ```ts
 * const SPECS = {
 *   ...BASE_OPTION_SPECS,
 *   learningRate: option.learningRate(1e-3, 'step size (number or schedule)'),
 *   beta: option.decay(0.9, 'EMA coefficient'),
 * };
 * export type MyOptions = OptionsInput<typeof SPECS>;
 *
 * export class MyOpt extends CurvatureOptimizer<typeof SPECS> {
 *   static get className() { return 'CurvatureMyOpt'; }   // never a tfjs name
 *   constructor(options: MyOptions = {}) {
 *     super('MyOpt', SPECS, options);      // validates; this.options is typed and filled
 *     // cross-option checks: throw invalidOption('beta', ...) here
 *   }
 *   protected override updateVariable(param, grad, state, ctx) {
 *     const m = state.get('m') ?? tf.zerosLike(param);   // slot read (undefined before first set)
 *     const mNew = ema(m, grad, this.options.beta);
 *     state.set('m', mNew);                                 // creates or assigns the slot
 *     return param.sub(mNew.mul(ctx.learningRate));         // the new parameter value
 *   }
 * }
 * tf.serialization.registerClass(MyOpt);
 * ```
 *
 * - **Per-variable update** (first-order methods, Shampoo): override `updateVariable`. It runs
 *   inside a `tf.tidy` once per variable that has a gradient; return the new parameter value
 *   (the base assigns it). `state.step` is the number of updates already applied to that
 *   variable (PyTorch's `state['step']` before its increment), so bias corrections use
 *   `state.step + 1`. `ctx.learningRate` is the schedule's value at `ctx.iteration`.
 * - **Whole-step update** (K-FAC: factors per layer, several variables at once): override
 *   `applyUpdate(entries, ctx)`; it runs inside a tidy after the guard has passed. Use
 *   `this.stateFor(key)` for any state (keys for non-variable state must start with '@',
 *   e.g. '@kfac/dense_1'), `this.variableState(name)` for per-variable state, and assign to
 *   `entry.variable` yourself; increment `state.step` for the variables you updated.
 * - **Closure-based methods** (Newton, HessianFree): override `minimize(f, returnCost, varList)`.
 *   Compute with `this.computeGradients(f, varList)` (or your own tape), then
 *   `if (!this.allFinite([loss, ...grads])) { this.recordSkip('loss', names); return ...; }`,
 *   update inside `tf.tidy`, and finish with `this.incrementIterations()`. Override
 *   `applyGradients` to throw a clear error if a gradient alone is not enough.
 *
 * ## State registration (what getWeights/setWeights carry; the store and format: ./slots.ts)
 * Everything written through `state.set(slot, tensor)` (a non-trainable tf.Variable the base
 * owns), every `state.step`, `this.iterations`, and every number in `this.numericState`
 * (scalar hyper-state such as damping; `skippedSteps` lives there; saved bit-exactly as a
 * float64, an int32 pair). Nothing else is saved, so
 * keep all trajectory-relevant state in these places. Saved names: 'iter',
 * '__optimizer__/<key>', '<variable>/step', '<variable>/<slot>' (slot names contain no '/').
 * Restoring matches state to variables by name; state whose variable name no longer exists
 * (a model reloaded from disk gets suffixed variable names) is adopted by the first new
 * variables in the saved order, as tfjs does positionally. Lazily created state restores the
 * same way: a fresh optimizer given `setWeights` holds the state until the variable's first
 * step claims it.
 *
 * ## The non-finite guard
 * Before any write, the loss (in `minimize`) and every gradient are checked with one
 * reduction and one scalar read. If anything is NaN/Inf (or a gradient's float32 sum
 * overflows), the step is skipped: variables, slots, step counts and `iterations` are left
 * untouched, `skippedSteps` is incremented, `onNonFinite(event)` is called (override it to
 * raise damping: `this.numericState.damping *= 10`, then call super), then the `onSkip`
 * option callback and every listener added with `addSkipListener`. `skipNonFinite: false`
 * turns the guard off (no sync per step).
 */
import * as tf from '@tensorflow/tfjs';
import { registeredVariable } from '../tfjs-internals/engine.js';
import { installWasmKernels } from '../tfjs-internals/wasm-kernels.js';
import { decodeState, encodeState, SlotStore, type SlotState } from './slots.js';
import { option, resolveOptions, type OptionSpecs, type ResolvedOptions } from './options.js';
import { learningRateAt, learningRateFromConfig, learningRateToConfig, type LearningRate } from './schedules.js';

/** Passed to `onSkip` and skip listeners when the guard skips a step. */
export interface SkipEvent {
  /** `iterations` at the skipped step (the update count, not incremented by skips). */
  iteration: number;
  /** What was non-finite: 'loss', 'gradient', or a subclass-specific reason. */
  reason: string;
  /** The variables the step would have updated. */
  variables: string[];
  /** Total skipped steps so far, including this one. */
  skippedSteps: number;
}

export type SkipListener = (event: SkipEvent) => void;

/** Options every curvature optimizer accepts; spread into each optimizer's specs. */
export const BASE_OPTION_SPECS = {
  skipNonFinite: option.boolean(
    true,
    'Skip a step whose loss or gradient is NaN/Inf, leaving variables and state untouched',
  ),
  onSkip: option.callback<SkipListener>('Called with a SkipEvent after each skipped step'),
};

/** The specs a subclass must provide: the base options and a learning rate. */
export type CurvatureOptionSpecs = OptionSpecs &
  typeof BASE_OPTION_SPECS & { learningRate: ReturnType<typeof option.learningRate> };

export type { SlotState } from './slots.js';

export interface StepContext {
  /** The update count before this step (0 for the first update). */
  iteration: number;
  /** The learning rate at `iteration` (schedule evaluated). */
  learningRate: number;
}

/** A variable with its gradient, as the base hands them to `applyUpdate`. */
export interface GradientEntry {
  name: string;
  variable: tf.Variable;
  grad: tf.Tensor;
}

export interface NamedTensorLike {
  name: string;
  tensor: tf.Tensor;
}

/**
 * Cumulative evaluation counts an optimizer exposes as `counters` (the harness reads them):
 * loss evaluations, gradients, and curvature-vector products.
 */
export interface EvaluationCounters {
  lossEvals: number;
  gradEvals: number;
  hvpEvals: number;
}

export abstract class CurvatureOptimizer<S extends CurvatureOptionSpecs = CurvatureOptionSpecs> extends tf.Optimizer {
  /** Validated options with defaults filled in. */
  readonly options: ResolvedOptions<S>;
  /** Steps skipped by the non-finite guard since construction (saved with the state). */
  get skippedSteps(): number {
    return this.numericState.skippedSteps ?? 0;
  }
  /** Scalar hyper-state saved by getWeights (e.g. damping). */
  protected numericState: Record<string, number> = { skippedSteps: 0 };

  private readonly displayName: string;
  private readonly specs: S;
  private slots = new SlotStore();
  private readonly skipListeners = new Set<SkipListener>();

  protected constructor(displayName: string, specs: S, given: object | undefined) {
    super();
    // The wasm kernel swaps, for users who chose wasm with tf.setBackend (wasm-kernels.ts).
    installWasmKernels();
    this.displayName = displayName;
    this.specs = specs;
    this.options = resolveOptions(displayName, specs, given);
  }

  // ---------------------------------------------------------------- learning rate

  /** The learning rate (number or schedule) in use. */
  get learningRate(): LearningRate {
    return this.options.learningRate as LearningRate;
  }

  /** Replace the learning rate (validated like the constructor option). */
  setLearningRate(lr: LearningRate): void {
    (this.options as Record<string, unknown>).learningRate = this.specs.learningRate.parse(lr, 'learningRate');
  }

  /** The learning rate the next update will use. */
  currentLearningRate(): number {
    return learningRateAt(this.learningRate, this.iterations);
  }

  // ---------------------------------------------------------------- tfjs Optimizer API

  override minimize(f: () => tf.Scalar, returnCost = false, varList?: tf.Variable[]): tf.Scalar | null {
    const { value, grads } = this.computeGradients(f, varList);
    const named: tf.NamedTensorMap | NamedTensorLike[] =
      varList != null ? varList.map((v) => ({ name: v.name, tensor: grads[v.name]! })) : grads;
    this.guardedStep(named, value);
    tf.dispose(grads);
    if (returnCost) return value;
    value.dispose();
    return null;
  }

  /**
   * tfjs's computeGradients, with the loss closure checked first so that a bad closure is named
   * here rather than deep inside tfjs (`variableGrads`).
   */
  override computeGradients(
    f: () => tf.Scalar,
    varList?: tf.Variable[],
  ): { value: tf.Scalar; grads: tf.NamedTensorMap } {
    if (typeof f !== 'function') {
      throw new TypeError(
        `${this.displayName}.minimize: the loss must be a function returning a scalar tf.Tensor, got ${typeof f}.`,
      );
    }
    const checked = (): tf.Scalar => {
      const y = f();
      if (!(y instanceof tf.Tensor)) {
        throw new TypeError(
          `${this.displayName}.minimize: the loss closure must return a tf.Tensor, got ${y === null ? 'null' : typeof y}.`,
        );
      }
      if (y.rank !== 0) {
        throw new Error(
          `${this.displayName}.minimize: the loss closure must return a scalar (rank 0) but returned shape [${y.shape}]; reduce it (e.g. tf.mean).`,
        );
      }
      return y;
    };
    return super.computeGradients(checked, varList);
  }

  override applyGradients(variableGradients: tf.NamedTensorMap | NamedTensorLike[]): void {
    this.guardedStep(variableGradients, undefined);
  }

  /** Guard, then `applyUpdate` inside a tidy, then count the update. */
  protected guardedStep(
    variableGradients: tf.NamedTensorMap | NamedTensorLike[],
    loss: tf.Tensor | undefined,
  ): boolean {
    const entries = this.gradientEntries(variableGradients);
    const names = entries.map((e) => e.name);
    if (this.options.skipNonFinite) {
      // One reduction and one read on the common path; which one failed is found only then.
      const grads = entries.map((e) => e.grad);
      if (!this.allFinite(loss !== undefined ? [loss, ...grads] : grads)) {
        this.recordSkip(loss !== undefined && !this.allFinite([loss]) ? 'loss' : 'gradient', names);
        return false;
      }
    }
    const ctx: StepContext = { iteration: this.iterations, learningRate: this.currentLearningRate() };
    tf.tidy(() => this.applyUpdate(entries, ctx));
    this.incrementIterations();
    return true;
  }

  /** Default whole-step update: `updateVariable` for each variable, then assign. */
  protected applyUpdate(entries: GradientEntry[], ctx: StepContext): void {
    this.claimByName(entries.map((e) => e.name));
    for (const e of entries) {
      const state = this.variableState(e.name);
      const next = this.updateVariable(e.variable, e.grad, state, ctx);
      e.variable.assign(next);
      state.step += 1;
    }
  }

  /**
   * The per-variable update: return the new value of `param`. Runs inside a tidy. Slots are
   * read and written through `state`. Subclasses that override applyUpdate or minimize need
   * not implement it.
   */
  protected updateVariable(_param: tf.Variable, _grad: tf.Tensor, _state: SlotState, _ctx: StepContext): tf.Tensor {
    throw new Error(`${this.displayName} must implement updateVariable or override applyUpdate`);
  }

  private gradientEntries(vg: tf.NamedTensorMap | NamedTensorLike[]): GradientEntry[] {
    const pairs: [string, tf.Tensor | undefined | null][] = Array.isArray(vg)
      ? vg.map((x) => [x.name, x.tensor])
      : Object.entries(vg);
    const out: GradientEntry[] = [];
    for (const [name, grad] of pairs) {
      if (grad == null) continue; // tfjs convention: a variable without gradient is left alone
      const variable = registeredVariable(name);
      if (variable === undefined) {
        throw new Error(`${this.displayName}.applyGradients: no variable named '${name}' is registered`);
      }
      out.push({ name, variable, grad });
    }
    return out;
  }

  // ---------------------------------------------------------------- guard

  /**
   * True when every tensor is finite: one fused reduction and one scalar read. A tensor
   * whose float32 sum overflows counts as non-finite (its values are ~1e33 or larger).
   */
  protected allFinite(tensors: tf.Tensor[]): boolean {
    if (tensors.length === 0) return true;
    const flag = tf.tidy(() => {
      const sums = tensors.map((t) => tf.sum(t));
      return tf.sum(tf.mul(tf.stack(sums), 0));
    });
    const v = flag.dataSync()[0]!;
    flag.dispose();
    return Number.isFinite(v);
  }

  /** Count a skipped step and notify; called by the guard or by a subclass's own checks. */
  protected recordSkip(reason: string, variables: string[]): void {
    this.numericState.skippedSteps = this.skippedSteps + 1;
    const event: SkipEvent = {
      iteration: this.iterations,
      reason,
      variables,
      skippedSteps: this.skippedSteps,
    };
    this.onNonFinite(event);
    const cb = this.options.onSkip as SkipListener | undefined;
    cb?.(event);
    for (const l of this.skipListeners) l(event);
  }

  /** Hook for subclasses (raise damping here). Runs before the callbacks. */
  protected onNonFinite(_event: SkipEvent): void {}

  /** Observe skipped steps; returns a function that removes the listener. */
  addSkipListener(listener: SkipListener): () => void {
    this.skipListeners.add(listener);
    return () => this.skipListeners.delete(listener);
  }

  // ---------------------------------------------------------------- state

  /** State under an arbitrary key (non-variable keys should start with '@'). */
  protected stateFor(key: string): SlotState {
    return this.slots.stateFor(key);
  }

  /**
   * State of a variable; a variable without state adopts the first unclaimed restored entry
   * (restores into a reloaded model whose variable names got suffixes).
   */
  protected variableState(name: string): SlotState {
    return this.slots.variableState(name);
  }

  /** Mark restored entries whose variables are present by name, before positional adoption. */
  protected claimByName(names: string[]): void {
    this.slots.claimByName(names);
  }

  /** Keys that currently hold state, in creation (saved) order. */
  protected stateKeys(): string[] {
    return this.slots.keys();
  }

  /**
   * All state as named tensors: 'iter', '__optimizer__/<key>', then per key '<key>/step' and
   * '<key>/<slot>'. Returns copies that the caller owns (dispose them when done).
   */
  override async getWeights(): Promise<NamedTensorLike[]> {
    return [
      { name: 'iter', tensor: tf.scalar(this.iterations, 'int32') },
      ...encodeState(this.numericState, this.slots),
    ];
  }

  /** Replace all state by what getWeights produced (tensors are copied; caller keeps its own). */
  override async setWeights(weights: NamedTensorLike[]): Promise<void> {
    const restored = await decodeState(weights, this.displayName);
    this.slots.dispose();
    this.slots = restored.slots;
    this.numericState = { ...this.numericState, ...restored.numeric };
    if (restored.iterations !== undefined) this.iterations_ = restored.iterations;
  }

  /** Serialisable options (callbacks omitted, schedules as their config). */
  override getConfig(): tf.serialization.ConfigDict {
    const config: tf.serialization.ConfigDict = {};
    for (const [key, spec] of Object.entries(this.specs)) {
      if (spec.serializable === false) continue;
      const v = (this.options as Record<string, unknown>)[key];
      // An unset optional option is omitted (JSON and tfjs-layers' config conversion cannot
      // hold undefined); fromConfig then gives it its default, which is what it was.
      if (v === undefined) continue;
      if (key === 'learningRate') config[key] = learningRateToConfig(v as LearningRate);
      else config[key] = v as tf.serialization.ConfigDictValue;
    }
    return config;
  }

  static override fromConfig<T extends tf.serialization.Serializable>(
    cls: tf.serialization.SerializableConstructor<T>,
    config: tf.serialization.ConfigDict,
  ): T {
    // tfjs-layers adds `customObjects` to the config it passes; it is not an option.
    const { customObjects: _ignored, ...rest } = config as Record<string, unknown>;
    if (rest.learningRate !== undefined) rest.learningRate = learningRateFromConfig(rest.learningRate);
    return new cls(rest);
  }

  /** Dispose every state variable; the optimizer can keep stepping (state restarts). */
  override dispose(): void {
    this.slots.dispose();
  }
}
