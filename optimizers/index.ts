/**
 * The optimizer registry: one entry per optimizer, by its CLI name
 * (sgd, rmsprop, adam, newton, hessian-free, lbfgs, kfac, shampoo, muon, adahessian, sophia, soap).
 *
 * The harness and CLI create optimizers only through this registry, so an optimizer becomes
 * available everywhere (run, compare, tune, list) by adding one entry here.
 */
import type * as tf from '@tensorflow/tfjs';
import type { OptionDoc } from '../src/optim/options.js';

/** What the harness knows about the problem an optimizer is created for. */
export interface OptimizerContext {
  /**
   * The problem being optimised (src/harness Problem). Second-order optimizers read what they
   * need from it: a tfjs-layers `model` (K-FAC), separate `outputs`/`lossFromOutputs`
   * (Gauss-Newton products), the parameter count (Newton's size guard).
   */
  problem?: unknown;
}

/** One option: name, default, description, type, and its checks (src/optim/options.ts). */
export type { OptionDoc };

export interface OptimizerEntry {
  /** CLI name, e.g. 'adam'. */
  name: string;
  /** Class name registered with tf.serialization, e.g. 'CurvatureAdam'. */
  className: string;
  description: string;
  /**
   * Every option with its default and type (`optionDocs(SPECS)`): `curvature list`, `--set`
   * parsing and the config files' check all read options through it.
   */
  options: OptionDoc[];
  /** Build a fresh optimizer; options are validated by the optimizer's constructor. */
  create(options: Record<string, unknown>, context?: OptimizerContext): tf.Optimizer;
}

export const optimizerRegistry = new Map<string, OptimizerEntry>();

export function registerOptimizer(entry: OptimizerEntry): void {
  optimizerRegistry.set(entry.name, entry);
}

export function getOptimizerEntry(name: string): OptimizerEntry {
  const entry = optimizerRegistry.get(name);
  if (!entry) {
    throw new Error(`Unknown optimizer '${name}': expected one of ${[...optimizerRegistry.keys()].join(', ')}.`);
  }
  return entry;
}

// ---- optimizers: one import and one registerOptimizer line each (keep alphabetical per group)
import { adamEntry } from './adam.js';
import { hessianFreeEntry } from './hessian-free.js';
import { kfacEntry } from './kfac.js';
import { lbfgsEntry } from './lbfgs.js';
import { muonEntry } from './muon.js';
import { newtonEntry } from './newton.js';
import { rmspropEntry } from './rmsprop.js';
import { sgdEntry } from './sgd.js';
import { shampooEntry } from './shampoo.js';
import { adaHessianEntry } from './adahessian.js';
import { sophiaEntry } from './sophia.js';
import { soapEntry } from './soap.js';

export { SGD, SGD_OPTIONS } from './sgd.js';
export type { SGDOptions } from './sgd.js';
export { RMSProp, RMSPROP_OPTIONS } from './rmsprop.js';
export type { RMSPropOptions } from './rmsprop.js';
export { Adam, ADAM_OPTIONS } from './adam.js';
export type { AdamOptions } from './adam.js';
export { KFAC, KFAC_OPTIONS } from './kfac.js';
export type {
  KFACOptions,
  KFACLossKind,
  KFACEstimation,
  DenseRegistration,
  Conv2dRegistration,
  KroneckerBlock,
} from './kfac.js';
export { Newton, NEWTON_OPTIONS } from './newton.js';
export type { NewtonOptions, NewtonStepInfo } from './newton.js';
export { HessianFree, HESSIAN_FREE_OPTIONS } from './hessian-free.js';
export type { HessianFreeOptions, HessianFreeStepInfo, CurvatureFunctions } from './hessian-free.js';
export { LBFGS, LBFGS_OPTIONS, cubicInterpolate, strongWolfe } from './lbfgs.js';
export type { LBFGSOptions, LBFGSStepInfo, LBFGSLineSearch, LinePoint, StrongWolfeOptions } from './lbfgs.js';
export { Shampoo, SHAMPOO_OPTIONS } from './shampoo.js';
export type { ShampooOptions } from './shampoo.js';
export { Muon, MUON_OPTIONS, newtonSchulz } from './muon.js';
export type { MuonOptions } from './muon.js';
export { AdaHessian, ADAHESSIAN_OPTIONS, spatialAverage } from './adahessian.js';
export type { AdaHessianOptions } from './adahessian.js';
export { Sophia, SOPHIA_OPTIONS } from './sophia.js';
export type { SophiaOptions, SophiaEstimator } from './sophia.js';
export { StepProbes, hutchinsonDiagonal, gnbDiagonal } from '../src/optim/diagonal-hessian.js';
export type { ProbeGenerator, ProbeSource, CurvatureOutputs } from '../src/optim/diagonal-hessian.js';
export { SOAP, SOAP_OPTIONS } from './soap.js';
export type { SOAPOptions } from './soap.js';

registerOptimizer(sgdEntry);
registerOptimizer(rmspropEntry);
registerOptimizer(adamEntry);
registerOptimizer(kfacEntry);
registerOptimizer(newtonEntry);
registerOptimizer(hessianFreeEntry);
registerOptimizer(lbfgsEntry);
registerOptimizer(shampooEntry);
registerOptimizer(muonEntry);
registerOptimizer(adaHessianEntry);
registerOptimizer(sophiaEntry);
registerOptimizer(soapEntry);
