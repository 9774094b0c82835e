/**
 * The Hessian panel: top eigenvalues (Lanczos) and the stochastic Lanczos quadrature density of
 * the loss Hessian of one of the MNIST models, at its current weights, on a fixed batch.
 */
import { hessianSpectrum, hessianTopEigenvalues } from '../../src/index.js';
import type { MnistLab, ModelRun } from './mnist.js';

export interface SpectrumOutcome {
  model: string;
  step: number;
  batch: number;
  numParams: number;
  topEigenvalues: number[];
  residuals: number[];
  grid: number[];
  density: number[];
  lambdaMin: number;
  lambdaMax: number;
  trace: number;
  matvecs: number;
  ms: number;
}

export function computeSpectrum(
  lab: MnistLab,
  run: ModelRun,
  o: { k: number; steps: number; batch: number },
): SpectrumOutcome {
  const t0 = performance.now();
  const { loss, vars, dispose } = lab.lossClosure(run, o.batch);
  try {
    const top = hessianTopEigenvalues(loss, vars, {
      k: o.k,
      which: 'algebraic',
      maxIter: Math.max(60, 3 * o.k),
      tol: 1e-3,
      seed: 1,
    });
    const slq = hessianSpectrum(loss, vars, { runs: 1, steps: o.steps, seed: 2, grid: 400 });
    return {
      model: run.label,
      step: lab.step,
      batch: o.batch,
      numParams: vars.reduce((s, v) => s + v.size, 0),
      topEigenvalues: top.eigenvalues,
      residuals: top.residuals,
      grid: Array.from(slq.grid),
      density: Array.from(slq.density),
      lambdaMin: slq.lambdaMin,
      lambdaMax: slq.lambdaMax,
      trace: slq.trace,
      matvecs: top.matvecs + slq.matvecs,
      ms: performance.now() - t0,
    };
  } finally {
    dispose();
  }
}
