// Problems and dataset loaders; re-exported by src/index.ts.
import { getOptimizerEntry } from '../optimizers/index.js';
import type { HarnessRegistry } from '../src/harness/types.js';
import { problems } from './registry.js';
import { quadraticEntry, quadraticDeepEntry } from './quadratic.js';
import { rosenbrockEntry, bealeEntry, himmelblauEntry } from './functions.js';
import { logregIrisEntry, softmaxMnistEntry, mlpMnistEntry, autoencoderMnistEntry } from './networks.js';
import { cnnMnistEntry, cnnShapesEntry } from './images.js';

for (const e of [
  quadraticEntry,
  quadraticDeepEntry,
  rosenbrockEntry,
  bealeEntry,
  himmelblauEntry,
  logregIrisEntry,
  softmaxMnistEntry,
  mlpMnistEntry,
  autoencoderMnistEntry,
  cnnMnistEntry,
  cnnShapesEntry,
]) {
  problems.register(e);
}

/**
 * The project's optimizers and problems as the harness's factories: pass it as `registry` to
 * runExperiment, compare and tune (the harness itself imports no concrete optimizer or problem).
 */
export const harnessRegistry: HarnessRegistry = {
  createProblem: (name, options) => problems.get(name, options),
  createOptimizer: (name, options, problem) => getOptimizerEntry(name).create(options, { problem }),
};

export { problems, ProblemRegistry, formatZodIssues } from './registry.js';
export { loadMnist, loadIris, loadShapes, SHAPE_CLASSES } from './datasets.js';
export type { ClassificationData } from './datasets.js';
export { quadraticSpectrum, quadraticDeepHessian } from './quadratic.js';
export { rosenbrockObjective, bealeObjective, himmelblauObjective } from './functions.js';
export type { Activation } from './networks.js';
export type { ConvActivation, Pooling } from './images.js';
export { suites, getSuite, suiteComparison, quickSuite, fullSuite } from './suites.js';
export type { Suite } from './suites.js';
