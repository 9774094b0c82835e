/**
 * The shared optimizer machinery: the drop-in base class, option validation, learning-rate
 * schedules and the reusable update pieces (momentum, weight decay).
 */
export { CurvatureOptimizer, BASE_OPTION_SPECS } from './base.js';
export type {
  CurvatureOptionSpecs,
  EvaluationCounters,
  GradientEntry,
  NamedTensorLike,
  SkipEvent,
  SkipListener,
  SlotState,
  StepContext,
} from './base.js';
export { option, resolveOptions, optionDocs, optionFromText, invalidOption } from './options.js';
export type { OptionDoc, OptionSpec, OptionSpecs, OptionsInput, ResolvedOptions, NumberBounds } from './options.js';
// Schedules are reached through the `schedules` namespace (schedules.cosineDecay, ...) so that
// short names like `linear` or `join` do not crowd the package's top level.
export { schedules, scheduleFromConfig, learningRateAt, isSchedule } from './schedules.js';
export type { Schedule, ScheduleConfig, LearningRate } from './schedules.js';
export { ema, addL2WeightDecay, decoupledWeightDecay, momentumDirection, descend } from './transforms.js';
export type { MomentumConfig } from './transforms.js';
