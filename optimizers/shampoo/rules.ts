/**
 * Shampoo's per-step rules, written once for every backend: the schedule (statistics every
 * statisticsComputeSteps, roots every preconditionFrequency from startPreconditioningStep), the
 * EMA coefficients of the statistics, first moment and grafting accumulator, their bias
 * corrections and the epsilon rule. The tfjs-ops backend, the host (WebAssembly / JavaScript)
 * backend and the root refresh all read a `StepPlan`; only the arithmetic's container differs.
 */
import { graftingRule, type EmaRule, type GraftingConfig, type GraftingRule } from '../../src/optim/grafting.js';

export { emaTensor, type EmaRule } from '../../src/optim/grafting.js';

export interface StepPlan {
  /** 1-based update count of this parameter. */
  t: number;
  /** Update the matrix statistics at this step (steps 1, 1 + s, 1 + 2s, ...). */
  updateStatistics: boolean;
  /** Recompute the inverse roots at this step. */
  refreshRoots: boolean;
  /** Shampoo directions (false: grafted first-order steps before startPreconditioningStep). */
  precondition: boolean;
  /** The statistics' EMA (matrix and diagonal). */
  statistics: EmaRule;
  /** Bias correction multiplier of the matrix statistics (their EMA has statisticsUpdates(t) terms). */
  statScale: number;
  /** Bias correction multiplier of the diagonal statistics (updated every step). */
  diagScale: number;
  /** First moment m = b1 m + c1 g, f = m / fdiv; undefined when beta1 = 0 (f = g). */
  moment?: { b1: number; c1: number; fdiv: number };
  /** The grafted method as a diagonal preconditioner (src/optim/grafting.ts); undefined: identity. */
  graft?: GraftingRule;
  /** Rescale each block to the grafted direction's block norm (grafting != 'none'). */
  graftNorms: boolean;
}

export interface RuleOptions {
  beta1: number;
  beta2: number;
  biasCorrection: boolean;
  preconditionFrequency: number;
  statisticsComputeSteps: number;
  startPreconditioningStep: number;
  rootExponent: number;
  epsilon: number;
  epsilonMode: 'absolute' | 'relative';
}

export class ShampooRules {
  constructor(
    private readonly o: RuleOptions,
    readonly grafting: GraftingConfig,
  ) {}

  /** The step at which Shampoo directions start (before it: grafted first-order steps). */
  get startStep(): number {
    const s = this.o.startPreconditioningStep;
    return s === -1 ? this.o.preconditionFrequency : s;
  }

  /** r in S^{-1/r} for a block of order k (rootExponent, or 2k). */
  rootExponent(order: number): number {
    return this.o.rootExponent > 0 ? this.o.rootExponent : 2 * order;
  }

  /** The epsilon added to a statistic whose largest eigenvalue (or entry, diagonal) is lambdaMax. */
  epsilonFor(lambdaMax: number): number {
    return this.o.epsilonMode === 'relative' ? lambdaMax * this.o.epsilon : this.o.epsilon;
  }

  get epsilon(): { epsilon: number; epsilonMode: 'absolute' | 'relative' } {
    return { epsilon: this.o.epsilon, epsilonMode: this.o.epsilonMode };
  }

  plan(t: number): StepPlan {
    const o = this.o;
    const b2 = o.beta2;
    const start = this.startStep;
    const updates = Math.floor((t - 1) / o.statisticsComputeSteps) + 1;
    const correct = o.biasCorrection && b2 < 1;
    return {
      t,
      updateStatistics: (t - 1) % o.statisticsComputeSteps === 0,
      refreshRoots: t === start || (t > start && t % o.preconditionFrequency === 0),
      precondition: t >= start,
      statistics: b2 === 1 ? { alpha: 1, beta: 1 } : { alpha: 1 - b2, beta: b2 },
      statScale: correct ? 1 / (1 - b2 ** updates) : 1,
      diagScale: correct ? 1 / (1 - b2 ** t) : 1,
      moment: o.beta1 > 0 ? { b1: o.beta1, c1: 1 - o.beta1, fdiv: o.biasCorrection ? 1 - o.beta1 ** t : 1 } : undefined,
      graft: graftingRule(this.grafting, t),
      graftNorms: this.grafting.type !== 'none',
    };
  }
}
