/**
 * Classic deterministic test functions (no data; `loss()` is the objective itself).
 *
 * - rosenbrock (n-D, n >= 2): sum_{i<n-1} 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2; minimum 0 at
 *   (1, ..., 1); start at the classic (-1.2, 1, -1.2, 1, ...).
 * - beale (2-D): (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2; minimum 0 at
 *   (3, 0.5); start at (1, 1).
 * - himmelblau (2-D): (x^2 + y - 11)^2 + (x + y^2 - 7)^2; four minima, all 0; start at (0, 0).
 *
 * The run `seed` perturbs the start point by `initNoise * N(0, I)` (initNoise 0 gives the
 * classic start for every seed). Default target: 1e-6.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { Problem, ProblemEntry } from '../src/harness/problem.js';
import { Rng } from '../src/harness/rng.js';
import { optionDocs, parseOptions, seedOption } from './registry.js';

function makeFunctionProblem(
  name: string,
  description: string,
  options: Record<string, unknown>,
  start: Float32Array,
  initNoise: number,
  seed: number,
  objective: (x: tf.Tensor1D) => tf.Scalar,
): Problem {
  const rng = new Rng(seed, 2);
  const x0 = Float32Array.from(start, (v) => v + initNoise * rng.normal());
  const x = tf.tidy(() => tf.variable(tf.tensor1d(x0), true));
  const loss = (): tf.Scalar => tf.tidy(() => objective(x as tf.Tensor1D));
  return {
    name,
    description,
    options,
    params: [x],
    numParams: start.length,
    loss,
    evaluate: () => {
      const l = loss();
      const v = l.dataSync()[0];
      l.dispose();
      return { trainLoss: v };
    },
    optimum: 0,
    target: 1e-6,
    dispose: () => x.dispose(),
  };
}

const initNoise = z.number().min(0).default(0.1).describe('std of the seeded start perturbation');

const rosenbrockSchema = z
  .object({
    dim: z.number().int().min(2).max(100000).default(2).describe('dimension n'),
    initNoise,
    seed: seedOption,
  })
  .strict();

export function rosenbrockObjective(x: tf.Tensor1D): tf.Scalar {
  const n = x.shape[0];
  const head = tf.slice(x, 0, n - 1);
  const tail = tf.slice(x, 1, n - 1);
  return tf.add(
    tf.mul(100, tf.sum(tf.square(tf.sub(tail, tf.square(head))))),
    tf.sum(tf.square(tf.sub(1, head))),
  ) as tf.Scalar;
}

export const rosenbrockEntry: ProblemEntry = {
  name: 'rosenbrock',
  description: 'n-D Rosenbrock valley (minimum 0 at all ones)',
  options: optionDocs(rosenbrockSchema),
  create: (raw) => {
    const o = parseOptions('rosenbrock', rosenbrockSchema, raw);
    const start = Float32Array.from({ length: o.dim }, (_, i) => (i % 2 === 0 ? -1.2 : 1));
    return makeFunctionProblem(
      'rosenbrock',
      `Rosenbrock, n=${o.dim}`,
      o,
      start,
      o.initNoise,
      o.seed,
      rosenbrockObjective,
    );
  },
};

const twoDSchema = z.object({ initNoise, seed: seedOption }).strict();

export function bealeObjective(v: tf.Tensor1D): tf.Scalar {
  const x = tf.slice(v, 0, 1);
  const y = tf.slice(v, 1, 1);
  const xy = tf.mul(x, y);
  const xy2 = tf.mul(xy, y);
  const xy3 = tf.mul(xy2, y);
  const t1 = tf.add(tf.sub(1.5, x), xy);
  const t2 = tf.add(tf.sub(2.25, x), xy2);
  const t3 = tf.add(tf.sub(2.625, x), xy3);
  return tf.sum(tf.addN([tf.square(t1), tf.square(t2), tf.square(t3)])) as tf.Scalar;
}

export function himmelblauObjective(v: tf.Tensor1D): tf.Scalar {
  const x = tf.slice(v, 0, 1);
  const y = tf.slice(v, 1, 1);
  const a = tf.sub(tf.add(tf.square(x), y), 11);
  const b = tf.sub(tf.add(x, tf.square(y)), 7);
  return tf.sum(tf.add(tf.square(a), tf.square(b))) as tf.Scalar;
}

export const bealeEntry: ProblemEntry = {
  name: 'beale',
  description: 'Beale function (2-D, minimum 0 at (3, 0.5))',
  options: optionDocs(twoDSchema),
  create: (raw) => {
    const o = parseOptions('beale', twoDSchema, raw);
    return makeFunctionProblem('beale', 'Beale (2-D)', o, Float32Array.of(1, 1), o.initNoise, o.seed, bealeObjective);
  },
};

export const himmelblauEntry: ProblemEntry = {
  name: 'himmelblau',
  description: "Himmelblau's function (2-D, four minima of value 0)",
  options: optionDocs(twoDSchema),
  create: (raw) => {
    const o = parseOptions('himmelblau', twoDSchema, raw);
    return makeFunctionProblem(
      'himmelblau',
      'Himmelblau (2-D)',
      o,
      Float32Array.of(0, 0),
      o.initNoise,
      o.seed,
      himmelblauObjective,
    );
  },
};
