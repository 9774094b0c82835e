/**
 * Learning-rate schedules, optax-style: a schedule is a pure function of the update count
 * `t` (0 for the first update; skipped steps do not count), accepted by every curvature
 * optimizer as `learningRate: number | Schedule`.
 *
 * The built-in schedules carry a JSON `config`, so an optimizer that uses one can be saved
 * with a tfjs-layers model (`includeOptimizer`) and rebuilt by `scheduleFromConfig`. A plain
 * user function `(t) => number` also works but cannot be serialised (getConfig throws).
 *
 *   constant(v)                               v
 *   stepDecay({ initial, stepSize, gamma })   initial * gamma^floor(t / stepSize)   (torch StepLR)
 *   exponentialDecay({ initial, gamma })      initial * gamma^t                     (torch ExponentialLR)
 *   cosineDecay({ initial, decaySteps, alpha })
 *       initial * ((1 - alpha) * (1 + cos(pi * min(t, T) / T)) / 2 + alpha)        (optax cosine_decay_schedule)
 *   linear({ from, to, steps })               from + (to - from) * min(t, steps) / steps (optax linear_schedule)
 *   join([s0, s1, ...], [b1, ...])            s_i(t - b_i) on [b_i, b_{i+1})          (optax join_schedules)
 *   warmupCosine({ peak, warmupSteps, decaySteps, initial?, alpha? })
 *       join([linear(initial -> peak over warmupSteps), cosineDecay(peak, decaySteps - warmupSteps)])
 */
import type * as tf from '@tensorflow/tfjs';

export type ScheduleConfig =
  | { kind: 'constant'; value: number }
  | { kind: 'step'; initial: number; stepSize: number; gamma: number }
  | { kind: 'exponential'; initial: number; gamma: number }
  | { kind: 'cosine'; initial: number; decaySteps: number; alpha: number }
  | { kind: 'linear'; from: number; to: number; steps: number }
  | { kind: 'join'; schedules: ScheduleConfig[]; boundaries: number[] };

/** A learning rate as a function of the update count t = 0, 1, 2, ... */
export interface Schedule {
  (t: number): number;
  /** Present on built-in schedules; what getConfig saves. */
  readonly config?: ScheduleConfig;
}

export type LearningRate = number | Schedule;

export function isSchedule(x: unknown): x is Schedule {
  return typeof x === 'function';
}

function make(config: ScheduleConfig, fn: (t: number) => number): Schedule {
  return Object.assign((t: number) => fn(t), { config });
}

function finite(name: string, v: number, min = -Infinity): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min) {
    throw new Error(`Invalid ${name}: ${v} (must be a finite number >= ${min})`);
  }
}

export function constant(value: number): Schedule {
  finite('value', value, 0);
  return make({ kind: 'constant', value }, () => value);
}

export function stepDecay(o: { initial: number; stepSize: number; gamma: number }): Schedule {
  finite('initial', o.initial, 0);
  finite('stepSize', o.stepSize, 1);
  finite('gamma', o.gamma, 0);
  return make({ kind: 'step', ...o }, (t) => o.initial * o.gamma ** Math.floor(t / o.stepSize));
}

export function exponentialDecay(o: { initial: number; gamma: number }): Schedule {
  finite('initial', o.initial, 0);
  finite('gamma', o.gamma, 0);
  return make({ kind: 'exponential', ...o }, (t) => o.initial * o.gamma ** t);
}

export function cosineDecay(o: { initial: number; decaySteps: number; alpha?: number }): Schedule {
  const alpha = o.alpha ?? 0;
  finite('initial', o.initial, 0);
  finite('decaySteps', o.decaySteps, 1);
  finite('alpha', alpha, 0);
  return make({ kind: 'cosine', initial: o.initial, decaySteps: o.decaySteps, alpha }, (t) => {
    const frac = Math.min(t, o.decaySteps) / o.decaySteps;
    return o.initial * ((1 - alpha) * 0.5 * (1 + Math.cos(Math.PI * frac)) + alpha);
  });
}

export function linear(o: { from: number; to: number; steps: number }): Schedule {
  finite('from', o.from, 0);
  finite('to', o.to, 0);
  finite('steps', o.steps, 1);
  return make({ kind: 'linear', ...o }, (t) => o.from + ((o.to - o.from) * Math.min(t, o.steps)) / o.steps);
}

/** Schedule i runs on [boundaries[i-1], boundaries[i]) with its own clock restarted at 0. */
export function join(schedules: Schedule[], boundaries: number[]): Schedule {
  if (schedules.length !== boundaries.length + 1) {
    throw new Error(
      `Invalid boundaries: ${JSON.stringify(boundaries)} (join needs one boundary fewer than schedules, got ${schedules.length} schedules)`,
    );
  }
  for (let i = 1; i < boundaries.length; i++) {
    if (!(boundaries[i]! > boundaries[i - 1]!)) {
      throw new Error(`Invalid boundaries: ${JSON.stringify(boundaries)} (must be increasing)`);
    }
  }
  const configs = schedules.map((s) => s.config);
  const config: ScheduleConfig | undefined = configs.every((c) => c !== undefined)
    ? { kind: 'join', schedules: configs as ScheduleConfig[], boundaries: [...boundaries] }
    : undefined;
  const fn = (t: number): number => {
    let i = 0;
    while (i < boundaries.length && t >= boundaries[i]!) i++;
    return schedules[i]!(i === 0 ? t : t - boundaries[i - 1]!);
  };
  return config ? make(config, fn) : fn;
}

export function warmupCosine(o: {
  peak: number;
  warmupSteps: number;
  decaySteps: number;
  initial?: number;
  alpha?: number;
}): Schedule {
  if (!(o.decaySteps > o.warmupSteps)) {
    throw new Error(`Invalid decaySteps: ${o.decaySteps} (must be > warmupSteps = ${o.warmupSteps})`);
  }
  return join(
    [
      linear({ from: o.initial ?? 0, to: o.peak, steps: o.warmupSteps }),
      cosineDecay({ initial: o.peak, decaySteps: o.decaySteps - o.warmupSteps, alpha: o.alpha ?? 0 }),
    ],
    [o.warmupSteps],
  );
}

export function scheduleFromConfig(c: ScheduleConfig): Schedule {
  switch (c.kind) {
    case 'constant':
      return constant(c.value);
    case 'step':
      return stepDecay(c);
    case 'exponential':
      return exponentialDecay(c);
    case 'cosine':
      return cosineDecay(c);
    case 'linear':
      return linear(c);
    case 'join':
      return join(c.schedules.map(scheduleFromConfig), c.boundaries);
    default:
      throw new Error(`Unknown schedule kind '${(c as { kind: string }).kind}'`);
  }
}

/** The value getConfig stores for a learning rate; throws for unserialisable user functions. */
export function learningRateToConfig(lr: LearningRate): number | tf.serialization.ConfigDict {
  if (typeof lr === 'number') return lr;
  if (lr.config === undefined) {
    throw new Error(
      'Invalid learningRate: a function (a user-defined schedule cannot be serialised; ' +
        'use a built-in schedule from curvature, or save without includeOptimizer)',
    );
  }
  return lr.config as unknown as tf.serialization.ConfigDict;
}

export function learningRateFromConfig(v: unknown): LearningRate {
  if (typeof v === 'number') return v;
  if (v !== null && typeof v === 'object' && 'kind' in v) return scheduleFromConfig(v as ScheduleConfig);
  throw new Error(`Invalid learningRate: ${JSON.stringify(v)} (expected a number or a schedule config)`);
}

export function learningRateAt(lr: LearningRate, t: number): number {
  return typeof lr === 'number' ? lr : lr(t);
}

/** Namespace-style access: `schedules.cosineDecay(...)`. */
export const schedules = {
  constant,
  stepDecay,
  exponentialDecay,
  cosineDecay,
  linear,
  join,
  warmupCosine,
  fromConfig: scheduleFromConfig,
};
