// Public surface of src/harness; re-exported by src/index.ts.
export * from './problem.js';
export * from './types.js';
export { Rng, randomOrthogonal, rotateSpectrum } from './rng.js';
export { runExperiment, BatchSampler, runId, stableStringify, shortHash } from './run.js';
export type { RunCallbacks, RunOptions } from './run.js';
export {
  compare,
  tune,
  planRuns,
  shardRuns,
  parseShard,
  assembleResults,
  mergeResults,
  logGrid,
  problemId,
  RESULTS_SCHEMA,
  RESULTS_VERSION,
} from './compare.js';
export type {
  ComparisonSpec,
  ComparisonResults,
  ProblemConfig,
  Shard,
  CompareOptions,
  TuneSpec,
  TuneResult,
} from './compare.js';
export { summarize, performanceProfile, mean, std, median } from './stats.js';
export type { SummaryRow, PerformanceProfile, ProfileMeasure } from './stats.js';
export { checkProblem } from './check.js';
export type { CheckResult } from './check.js';
export { planResume } from './resume.js';
export type { ResumePlan } from './resume.js';
export { EVALUATION_COSTS, gradientEquivalents, formatCounts } from './cost.js';
