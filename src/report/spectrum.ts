/**
 * `curvature spectrum`: top eigenvalues, trace and spectral density of a problem's Hessian (or
 * Gauss-Newton matrix) at initialisation or after a short training run, written as a report
 * (JSON + SVG density plot + Markdown). The CLI (src/cli.ts) parses flags and calls
 * `runSpectrumCommand`; everything else lives here.
 *
 * Curvature of a data problem is averaged over the whole training set, in batches of
 * `data.batchSize` (or over the first `maxBatches` of them); deterministic problems use `loss()`.
 * The density plot follows PyHessian's density_plot.py: log-scale density (+1e-7) against
 * eigenvalue.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Batch, Problem } from '../harness/problem.js';
import { curvatureOperator } from '../curvature/operator.js';
import type { CurvatureKind, CurvatureSourceOptions } from '../curvature/operator.js';
import { hessianTopEigenvalues } from '../curvature/eigenvalues.js';
import { hessianTrace } from '../curvature/trace.js';
import { hessianSpectrum } from '../curvature/spectrum.js';
import { ProbeRng } from '../curvature/random.js';
import { writeFileAtomic } from './results.js';

export interface SpectrumCommandOptions {
  /** The problem (the caller owns it: the CLI resolves names with `problems.get`). */
  problem: Problem;
  /** 'init' (default): at the initial parameters; 'trained': after `train` (default: Adam). */
  at?: 'init' | 'trained';
  /** Custom training for --at trained (e.g. the harness run loop); default: Adam, see below. */
  train?: (problem: Problem) => void | Promise<void>;
  /** Default training: Adam steps (default 200) and learning rate (default 1e-3). */
  trainSteps?: number;
  learningRate?: number;
  /** 'hessian' (default) or 'ggn' (network problems only). */
  curvature?: CurvatureKind;
  /** Top eigenvalues (default 10, capped at the parameter count). */
  k?: number;
  /** SLQ runs (default 3) and Lanczos steps per run (default 80). */
  runs?: number;
  steps?: number;
  /** Hutchinson probes for the trace (default 50). */
  traceSamples?: number;
  /** Average curvature over at most this many training batches (default: all). */
  maxBatches?: number;
  /** Seed of probes and training batches (default 0). */
  seed?: number;
  /** Write spectrum.json, spectrum.svg and spectrum.md here (default: no files). */
  outDir?: string;
  /** Called as each phase starts ('training', 'top eigenvalues', 'trace', 'density'), for progress. */
  onPhase?: (phase: string) => void;
}

export interface SpectrumReport {
  problem: string;
  description: string;
  at: 'init' | 'trained';
  curvature: CurvatureKind;
  numParams: number;
  loss: number;
  topEigenvalues: number[];
  eigenvaluesConverged: boolean;
  trace: { estimate: number; standardError: number };
  density: { grid: number[]; density: number[]; sigma: number; lambdaMin: number; lambdaMax: number };
  /** Curvature-vector products (one per application over the averaged batches). */
  matvecs: number;
  batches: number;
  seconds: number;
  files: { json?: string; svg?: string; markdown?: string };
}

export async function defaultTrain(problem: Problem, steps: number, learningRate: number, seed: number): Promise<void> {
  const opt = tf.train.adam(learningRate);
  const rng = new ProbeRng(seed + 7919);
  const data = problem.data;
  for (let s = 0; s < steps; s++) {
    tf.tidy(() => {
      let batch: Batch | undefined;
      if (data !== undefined) {
        const idx = new Int32Array(Math.min(data.batchSize, data.numTrain));
        for (let i = 0; i < idx.length; i++) idx[i] = rng.int(data.numTrain);
        batch = data.batch(idx);
      }
      opt.minimize(() => problem.loss(batch), false, problem.params);
    });
  }
  opt.dispose();
}

/** Density plot (SVG) with vega-lite: log-scale density against eigenvalue. */
export async function densitySvg(grid: ArrayLike<number>, density: ArrayLike<number>, title: string): Promise<string> {
  const vl = await import('vega-lite');
  const vega = await import('vega');
  const values = Array.from(grid, (x, i) => ({ eigenvalue: x, density: density[i] + 1e-7 }));
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 560,
    height: 300,
    data: { values },
    mark: { type: 'line' as const, strokeWidth: 1.5 },
    encoding: {
      x: { field: 'eigenvalue', type: 'quantitative' as const, title: 'eigenvalue' },
      y: {
        field: 'density',
        type: 'quantitative' as const,
        scale: { type: 'log' as const },
        title: 'density (log scale)',
      },
    },
  };
  const compiled = vl.compile(spec as Parameters<typeof vl.compile>[0]).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

function markdown(r: SpectrumReport): string {
  const lines = [
    `# Curvature spectrum: ${r.problem} (${r.at})`,
    '',
    `${r.description}; ${r.numParams} parameters; ${r.curvature === 'ggn' ? 'Gauss-Newton matrix' : 'Hessian'} ` +
      `averaged over ${r.batches} batch(es); loss ${r.loss.toPrecision(6)}.`,
    '',
    '| rank | eigenvalue |',
    '| ---: | ---: |',
    ...r.topEigenvalues.map((l, i) => `| ${i + 1} | ${l.toPrecision(6)} |`),
    '',
    `Trace (Hutchinson): ${r.trace.estimate.toPrecision(6)} ± ${r.trace.standardError.toPrecision(3)} (standard error).`,
    `Eigenvalue range (SLQ Ritz values): [${r.density.lambdaMin.toPrecision(4)}, ${r.density.lambdaMax.toPrecision(4)}]; ` +
      `Gaussian broadening sigma ${r.density.sigma.toPrecision(3)}.`,
    `${r.matvecs} curvature-vector products, ${r.seconds.toFixed(1)} s.` +
      (r.eigenvaluesConverged ? '' : ' Warning: the top eigenvalues did not meet the tolerance.'),
    '',
    '![spectral density](spectrum.svg)',
    '',
  ];
  return lines.join('\n');
}

/**
 * Compute the top eigenvalues, trace and SLQ density of a problem's curvature and (with
 * `outDir`) write spectrum.json, spectrum.svg and spectrum.md. The problem stays the caller's
 * (its parameters are trained in place with --at trained).
 */
export async function runSpectrumCommand(options: SpectrumCommandOptions): Promise<SpectrumReport> {
  const t0 = performance.now();
  const at = options.at ?? 'init';
  if (at !== 'init' && at !== 'trained')
    throw new Error(`spectrum: --at must be 'init' or 'trained', got '${String(at)}'.`);
  const curvature = options.curvature ?? 'hessian';
  const seed = options.seed ?? 0;
  const problem = options.problem;
  const batches: Batch[] = [];
  try {
    if (curvature === 'ggn' && (problem.outputs === undefined || problem.lossFromOutputs === undefined)) {
      throw new Error(
        `spectrum: --curvature ggn needs a network problem (outputs + lossFromOutputs); '${problem.name}' has none.`,
      );
    }
    if (at === 'trained') {
      options.onPhase?.('training');
      if (options.train !== undefined) await options.train(problem);
      else await defaultTrain(problem, options.trainSteps ?? 200, options.learningRate ?? 1e-3, seed);
    }
    const data = problem.data;
    if (data !== undefined) {
      const size = Math.max(1, data.batchSize);
      const count = Math.min(Math.ceil(data.numTrain / size), options.maxBatches ?? Number.POSITIVE_INFINITY);
      for (let b = 0; b < count; b++) {
        const start = b * size;
        const idx = Int32Array.from({ length: Math.min(size, data.numTrain - start) }, (_, i) => start + i);
        batches.push(data.batch(idx));
      }
    }
    const source: CurvatureSourceOptions<Batch> =
      data !== undefined
        ? {
            batches,
            curvature,
            outputs: problem.outputs?.bind(problem),
            lossFromOutputs: problem.lossFromOutputs?.bind(problem),
          }
        : { curvature };
    const op = curvatureOperator((b?: Batch) => problem.loss(b), problem.params, source);
    const lossValue = tf.tidy(() => {
      if (batches.length === 0) return problem.loss().dataSync()[0];
      let total = 0;
      let n = 0;
      for (const b of batches) {
        total += problem.loss(b).dataSync()[0] * b.size;
        n += b.size;
      }
      return total / n;
    });
    const k = Math.min(options.k ?? 10, op.dim);
    options.onPhase?.('top eigenvalues');
    const top = hessianTopEigenvalues(op, problem.params, {
      k,
      maxIter: Math.min(op.dim, Math.max(100, 3 * k)),
      tol: 1e-4,
      seed,
      which: 'algebraic',
    });
    options.onPhase?.('trace');
    const trace = hessianTrace(op, problem.params, { samples: options.traceSamples ?? 50, seed: seed + 1 });
    options.onPhase?.('density');
    const spectrum = hessianSpectrum(op, problem.params, {
      runs: options.runs ?? 3,
      steps: options.steps ?? 80,
      seed: seed + 2,
    });
    const report: SpectrumReport = {
      problem: problem.name,
      description: problem.description,
      at,
      curvature,
      numParams: op.dim,
      loss: lossValue,
      topEigenvalues: top.eigenvalues,
      eigenvaluesConverged: top.converged,
      trace: { estimate: trace.trace, standardError: trace.standardError },
      density: {
        grid: Array.from(spectrum.grid),
        density: Array.from(spectrum.density),
        sigma: spectrum.sigma,
        lambdaMin: spectrum.lambdaMin,
        lambdaMax: spectrum.lambdaMax,
      },
      matvecs: op.matvecs,
      batches: Math.max(1, batches.length),
      seconds: (performance.now() - t0) / 1000,
      files: {},
    };
    if (options.outDir !== undefined) {
      mkdirSync(options.outDir, { recursive: true });
      report.files = {
        json: join(options.outDir, 'spectrum.json'),
        svg: join(options.outDir, 'spectrum.svg'),
        markdown: join(options.outDir, 'spectrum.md'),
      };
      writeFileAtomic(
        report.files.svg!,
        await densitySvg(spectrum.grid, spectrum.density, `${problem.name} (${at}): ${curvature} spectral density`),
      );
      writeFileAtomic(report.files.markdown!, markdown(report));
      writeFileAtomic(report.files.json!, JSON.stringify(report, null, 2));
    }
    return report;
  } finally {
    batches.forEach((b) => tf.dispose([b.x, b.y]));
  }
}
