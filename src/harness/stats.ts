/**
 * Summaries over seeds and Dolan-More performance profiles.
 */
import type { EvaluationCounters } from '../optim/base.js';
import type { RunResult } from './types.js';

export function mean(xs: number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((s, x) => s + x, 0) / xs.length;
}

/** Sample standard deviation (n - 1); 0 for a single value. */
export function std(xs: number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1));
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** One (problem, optimizer) cell of a comparison, aggregated over seeds. */
export interface SummaryRow {
  problemId: string;
  optimizer: string;
  seeds: number;
  /** Mean and sample std of the final training loss over runs that did not diverge. */
  finalLossMean: number | null;
  finalLossStd: number | null;
  testAccuracyMean: number | null;
  /** Runs that reached the target / diverged. */
  reached: number;
  diverged: number;
  /** Runs that threw (counted in `diverged` too). */
  failed: number;
  /**
   * Median over seeds of steps / seconds / gradient-equivalents (src/harness/cost.ts) to target
   * (null unless every seed reached it).
   */
  stepsToTarget: number | null;
  secondsToTarget: number | null;
  gradEquivalentsToTarget: number | null;
  /** Median over seeds of each raw count to target (null unless every seed reached it). */
  evalsToTarget: EvaluationCounters | null;
  /** Mean gradient-equivalents per step. */
  gradEquivalentsPerStep: number;
  /** Mean raw counts per step: loss values alone, gradients, curvature-vector products. */
  evalsPerStep: EvaluationCounters;
  /** Mean optimizer seconds per step. */
  secondsPerStep: number;
  target: number | null;
}

const nullIfNaN = (v: number): number | null => (Number.isFinite(v) ? v : null);
const perStep = (k: keyof EvaluationCounters) => (r: RunResult) => (r.final.steps > 0 ? r.final[k] / r.final.steps : 0);

/** Aggregate runs by (problemId, optimizer), in first-appearance order. */
export function summarize(runs: RunResult[]): SummaryRow[] {
  const groups = new Map<string, RunResult[]>();
  for (const r of runs) {
    const k = `${r.problemId}\u0000${r.optimizer}`;
    const g = groups.get(k);
    if (g) g.push(r);
    else groups.set(k, [r]);
  }
  const rows: SummaryRow[] = [];
  for (const g of groups.values()) {
    const ok = g.filter((r) => !r.final.diverged && r.final.trainLoss !== null);
    const losses = ok.map((r) => r.final.trainLoss as number);
    const acc = ok.map((r) => r.final.testAccuracy).filter((a): a is number => typeof a === 'number');
    const all = g.every((r) => r.final.reachedTarget);
    const pick = (f: (r: RunResult) => number | null) => (all ? nullIfNaN(median(g.map((r) => f(r) as number))) : null);
    rows.push({
      problemId: g[0].problemId,
      optimizer: g[0].optimizer,
      seeds: g.length,
      finalLossMean: nullIfNaN(mean(losses)),
      finalLossStd: losses.length > 0 ? std(losses) : null,
      testAccuracyMean: nullIfNaN(mean(acc)),
      reached: g.filter((r) => r.final.reachedTarget).length,
      diverged: g.filter((r) => r.final.diverged).length,
      failed: g.filter((r) => r.final.error !== undefined).length,
      stepsToTarget: pick((r) => r.final.stepsToTarget),
      secondsToTarget: pick((r) => r.final.secondsToTarget),
      gradEquivalentsToTarget: pick((r) => r.final.gradEquivalentsToTarget),
      evalsToTarget: all
        ? {
            lossEvals: median(g.map((r) => r.final.evalsToTarget?.lossEvals ?? NaN)),
            gradEvals: median(g.map((r) => r.final.evalsToTarget?.gradEvals ?? NaN)),
            hvpEvals: median(g.map((r) => r.final.evalsToTarget?.hvpEvals ?? NaN)),
          }
        : null,
      gradEquivalentsPerStep: mean(g.map((r) => r.final.gradEquivalentsPerStep)),
      evalsPerStep: {
        lossEvals: mean(g.map(perStep('lossEvals'))),
        gradEvals: mean(g.map(perStep('gradEvals'))),
        hvpEvals: mean(g.map(perStep('hvpEvals'))),
      },
      secondsPerStep: mean(g.map((r) => (r.final.steps > 0 ? r.final.seconds / r.final.steps : 0))),
      target: g[0].final.target,
    });
  }
  return rows;
}

/** Cost measures of the profiles: steps, optimizer seconds, gradient-equivalents (src/harness/cost.ts). */
export type ProfileMeasure = 'steps' | 'seconds' | 'gradEquivalents';

export interface PerformanceProfile {
  measure: ProfileMeasure;
  /** Problems that at least one optimizer solved (the others carry no information). */
  problems: string[];
  optimizers: string[];
  /** ratios[optimizer][problem]: cost / best cost on that problem (Infinity if unsolved). */
  ratios: Record<string, Record<string, number | null>>;
  /** rho(tau) curves: fraction of problems solved within a factor tau of the best. */
  curves: { optimizer: string; points: { tau: number; rho: number }[] }[];
}

/**
 * Dolan & More (2002) performance profile: for each problem p and solver s the cost t_{p,s} to
 * reach the target (median over seeds; infinite unless every seed reached it), the ratio
 * r_{p,s} = t_{p,s} / min_s t_{p,s}, and rho_s(tau) = |{p : r_{p,s} <= tau}| / |P|. The curve
 * is a step function evaluated at every distinct ratio (and tau = 1 and the largest ratio).
 */
export function performanceProfile(rows: SummaryRow[], measure: ProfileMeasure = 'seconds'): PerformanceProfile {
  const cost = (r: SummaryRow) =>
    (measure === 'steps' ? r.stepsToTarget : measure === 'seconds' ? r.secondsToTarget : r.gradEquivalentsToTarget) ??
    Infinity;
  const optimizers = [...new Set(rows.map((r) => r.optimizer))];
  const allProblems = [...new Set(rows.map((r) => r.problemId))];
  const best = new Map<string, number>();
  for (const p of allProblems) {
    const c = rows.filter((r) => r.problemId === p).map(cost);
    best.set(p, Math.min(...c));
  }
  const problems = allProblems.filter((p) => Number.isFinite(best.get(p) as number));
  const ratios: PerformanceProfile['ratios'] = {};
  for (const s of optimizers) {
    ratios[s] = {};
    for (const p of problems) {
      const row = rows.find((r) => r.problemId === p && r.optimizer === s);
      const b = best.get(p) as number;
      const c = row ? cost(row) : Infinity;
      // Zero-cost solves (target met at the start) count as ratio 1.
      const ratio = !Number.isFinite(c) ? Infinity : b === 0 ? (c === 0 ? 1 : Infinity) : c / b;
      ratios[s][p] = Number.isFinite(ratio) ? ratio : null;
    }
  }
  const finite = Object.values(ratios)
    .flatMap((m) => Object.values(m))
    .filter((v): v is number => v !== null);
  const taus = [...new Set([1, ...finite])].sort((a, b) => a - b);
  const maxTau = Math.max(2, ...finite) * 1.1;
  taus.push(maxTau);
  const curves = optimizers.map((s) => ({
    optimizer: s,
    points: taus.map((tau) => ({
      tau,
      rho:
        problems.length === 0
          ? 0
          : problems.filter((p) => ratios[s][p] !== null && (ratios[s][p] as number) <= tau * (1 + 1e-12)).length /
            problems.length,
    })),
  }));
  return { measure, problems, optimizers, ratios, curves };
}
