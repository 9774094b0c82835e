/**
 * `curvature influence`: Koh & Liang influence of training examples on the loss of one example
 * of a data problem, with the solve's status reported (src/curvature/influence.ts), written as a
 * report (influence.json + influence.md). The CLI (src/cli.ts) parses flags and calls
 * `runInfluenceCommand`.
 *
 * The Problem interface exposes training examples only, so the "test" loss is the loss of
 * training example `testIndex` (default 0); the scored points are training examples
 * 0 .. points-1 (so the target example's self-influence is among them). The curvature is
 * averaged over the training set in batches of `data.batchSize` (or the first `maxBatches`).
 *
 * When the solve does not converge (CG out of iterations, non-positive curvature, LiSSA residual
 * above tol) the report says so first, with scipy's info code, because the values are then
 * unreliable.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Batch, Problem } from '../harness/problem.js';
import type { CurvatureKind } from '../curvature/operator.js';
import { influence, type InfluenceSolve } from '../curvature/influence.js';
import { defaultTrain } from './spectrum.js';
import { writeFileAtomic } from './results.js';

export interface InfluenceCommandOptions {
  /** A data problem (the caller owns it: the CLI resolves names with `problems.get`). */
  problem: Problem;
  /** 'init' (default) or 'trained' (Adam, `trainSteps` steps at `learningRate`, or `train`). */
  at?: 'init' | 'trained';
  train?: (problem: Problem) => void | Promise<void>;
  trainSteps?: number;
  learningRate?: number;
  /** 'hessian' (default, Koh & Liang) or 'ggn'. */
  curvature?: CurvatureKind;
  /** Damping added to the curvature (default 0.01). */
  damping?: number;
  solver?: 'cg' | 'lissa';
  maxIter?: number;
  tol?: number;
  /** Training examples scored: 0 .. points-1 (default 20, at most the training-set size). */
  points?: number;
  /** The training example whose loss is attributed (default 0). */
  testIndex?: number;
  maxBatches?: number;
  seed?: number;
  outDir?: string;
}

export interface InfluenceReport {
  problem: string;
  description: string;
  at: 'init' | 'trained';
  curvature: CurvatureKind;
  numParams: number;
  damping: number;
  testIndex: number;
  /** Scored examples, most influential (largest |influence|) first. */
  points: { index: number; influence: number; removalEffect: number }[];
  solve: InfluenceSolve;
  matvecs: number;
  batches: number;
  seconds: number;
  files: { json?: string; markdown?: string };
}

const g = (v: number, d = 4) => (Number.isFinite(v) ? v.toPrecision(d) : String(v));

/** One line: solver, iterations, residual, status and info code. */
export function solveLine(s: InfluenceSolve): string {
  return `${s.solver}, ${s.iterations} iteration(s), relative residual ${g(s.relativeResidual, 3)}: ${s.status} (info ${s.info})`;
}

function markdown(r: InfluenceReport): string {
  const lines = [`# Influence: ${r.problem} (${r.at})`, ''];
  if (r.solve.warning !== undefined)
    lines.push(`> **Warning: the influence values below are unreliable.** ${r.solve.warning}`, '');
  lines.push(
    `${r.description}; ${r.numParams} parameters; ${r.curvature === 'ggn' ? 'Gauss-Newton matrix' : 'Hessian'} ` +
      `averaged over ${r.batches} batch(es), damping ${r.damping}.`,
    '',
    `Solve: ${solveLine(r.solve)}; ${r.matvecs} curvature products.`,
    '',
    `I_up,loss(z_i, z_test) with z_test = training example ${r.testIndex}; removal effect = -I / n.`,
    '',
    '| example | influence | removal effect |',
    '| ---: | ---: | ---: |',
    ...r.points.map((p) => `| ${p.index} | ${g(p.influence)} | ${g(p.removalEffect)} |`),
    '',
  );
  return lines.join('\n');
}

export async function runInfluenceCommand(options: InfluenceCommandOptions): Promise<InfluenceReport> {
  const t0 = performance.now();
  const at = options.at ?? 'init';
  if (at !== 'init' && at !== 'trained')
    throw new Error(`influence: --at must be 'init' or 'trained', got '${String(at)}'.`);
  const curvature = options.curvature ?? 'hessian';
  const seed = options.seed ?? 0;
  const damping = options.damping ?? 0.01;
  const problem = options.problem;
  const batches: Batch[] = [];
  try {
    const data = problem.data;
    if (data === undefined) {
      throw new Error(
        `influence: '${problem.name}' has no training examples (a deterministic problem); use a data problem.`,
      );
    }
    if (curvature === 'ggn' && (problem.outputs === undefined || problem.lossFromOutputs === undefined)) {
      throw new Error(
        `influence: --curvature ggn needs a network problem (outputs + lossFromOutputs); '${problem.name}' has none.`,
      );
    }
    const numPoints = Math.min(options.points ?? 20, data.numTrain);
    const testIndex = options.testIndex ?? 0;
    if (!Number.isInteger(testIndex) || testIndex < 0 || testIndex >= data.numTrain) {
      throw new Error(`influence: --test-index must be an integer in [0, ${data.numTrain - 1}], got ${testIndex}.`);
    }
    if (at === 'trained') {
      if (options.train !== undefined) await options.train(problem);
      else await defaultTrain(problem, options.trainSteps ?? 200, options.learningRate ?? 1e-3, seed);
    }
    const size = Math.max(1, data.batchSize);
    const count = Math.min(Math.ceil(data.numTrain / size), options.maxBatches ?? Number.POSITIVE_INFINITY);
    for (let b = 0; b < count; b++) {
      const start = b * size;
      batches.push(data.batch(Int32Array.from({ length: Math.min(size, data.numTrain - start) }, (_, i) => start + i)));
    }
    const example = (i: number) => problem.loss(data.batch(Int32Array.of(i)));
    const r = influence((b?: Batch) => problem.loss(b), problem.params, {
      batches,
      curvature,
      outputs: problem.outputs?.bind(problem),
      lossFromOutputs: problem.lossFromOutputs?.bind(problem),
      testLoss: () => example(testIndex),
      points: Array.from({ length: numPoints }, (_, i) => i),
      pointLoss: example,
      numTrain: data.numTrain,
      damping,
      solver: options.solver,
      maxIter: options.maxIter,
      tol: options.tol,
      seed,
      warn: false, // the report and the CLI show the warning
    });
    tf.dispose(r.sTest);
    const points = Array.from(r.influence, (v, i) => ({ index: i, influence: v, removalEffect: r.removalEffect[i] }));
    points.sort((a, b) => Math.abs(b.influence) - Math.abs(a.influence));
    const report: InfluenceReport = {
      problem: problem.name,
      description: problem.description,
      at,
      curvature,
      numParams: problem.numParams,
      damping,
      testIndex,
      points,
      solve: r.solve,
      matvecs: r.matvecs,
      batches: batches.length,
      seconds: (performance.now() - t0) / 1000,
      files: {},
    };
    if (options.outDir !== undefined) {
      mkdirSync(options.outDir, { recursive: true });
      report.files = { json: join(options.outDir, 'influence.json'), markdown: join(options.outDir, 'influence.md') };
      writeFileAtomic(report.files.markdown!, markdown(report));
      writeFileAtomic(report.files.json!, `${JSON.stringify(report, null, 2)}\n`);
    }
    return report;
  } finally {
    batches.forEach((b) => tf.dispose([b.x, b.y]));
  }
}
