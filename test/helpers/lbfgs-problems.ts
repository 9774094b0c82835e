/** The L-BFGS fixture problems (test/fixtures/lbfgs-problems.json) rebuilt in tfjs. */
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { losses } from '../../src/autodiff/index.js';
import { bealeObjective, himmelblauObjective, rosenbrockObjective } from '../../experiments/functions.js';

export interface FixtureProblem {
  id: string;
  harness: { name: string; options: Record<string, unknown> };
  kind: 'quadratic' | 'rosenbrock' | 'beale' | 'himmelblau' | 'logreg';
  start: { shape: number[]; values: number[] }[];
  A?: number[];
  xStar?: number[];
  X?: number[];
  Y?: number[];
  n?: number;
}

export function readFixture<T>(name: string): T {
  return JSON.parse(readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8')) as T;
}

export function fixtureProblems(): FixtureProblem[] {
  return readFixture<{ problems: FixtureProblem[] }>('lbfgs-problems.json').problems;
}

/** Variables at the fixture's start point and the loss over them (same formula as the harness). */
export function buildProblem(p: FixtureProblem): { vars: tf.Variable[]; loss: () => tf.Scalar; dispose: () => void } {
  const vars = p.start.map((s) => tf.variable(tf.tensor(s.values, s.shape), true));
  const owned: tf.Tensor[] = [];
  let loss: () => tf.Scalar;
  if (p.kind === 'quadratic') {
    const d = p.xStar!.length;
    const A = tf.tensor2d(p.A!, [d, d]);
    const xs = tf.tensor2d(p.xStar!, [d, 1]);
    owned.push(A, xs);
    loss = () =>
      tf.tidy(() => {
        const r = tf.sub(vars[0]!, xs);
        return tf.mul(0.5, tf.sum(tf.mul(r, tf.matMul(A, r)))) as tf.Scalar;
      });
  } else if (p.kind === 'rosenbrock' || p.kind === 'beale' || p.kind === 'himmelblau') {
    const objective = { rosenbrock: rosenbrockObjective, beale: bealeObjective, himmelblau: himmelblauObjective }[
      p.kind
    ];
    loss = () => tf.tidy(() => objective(vars[0] as tf.Tensor1D));
  } else {
    const X = tf.tensor2d(p.X!, [p.n!, 4]);
    const Y = tf.tensor2d(p.Y!, [p.n!, 3]);
    owned.push(X, Y);
    loss = () => tf.tidy(() => losses.softmaxCrossEntropy(Y, tf.add(tf.matMul(X, vars[0] as tf.Tensor2D), vars[1]!)));
  }
  return { vars, loss, dispose: () => tf.dispose([...vars, ...owned]) };
}

export function flatValues(vars: tf.Variable[]): number[] {
  return vars.flatMap((v) => Array.from(v.dataSync()));
}
