/**
 * Dump the harness's deterministic problems for the L-BFGS reference (step 1 of 2).
 *
 * Writes test/fixtures/lbfgs-problems.json: for each problem the harness options, the start
 * point (the problem's own seeded initialisation) and the data that define the loss, as the
 * float32 values tfjs uses:
 *   - quadratic {dim 10, condition 100, seed 0}: A (row-major), x*; f = 1/2 (x - x*)^T A (x - x*)
 *   - rosenbrock {dim 2, seed 0} and {dim 10, seed 0}: the start point (classic start + 0.1 N(0, I))
 *   - logreg-iris {seed 0}: the 120 standardised training rows, one-hot labels, W0 [4, 3], b0 [3];
 *     f = mean softmax cross-entropy of X W + b
 *   - for the evidence table only: quadratic {dim 50, condition 1000} (the harness default),
 *     beale and himmelblau {seed 0}
 * Step 2, scripts/reference/lbfgs_reference.py, reads this file and runs torch.optim.LBFGS on
 * the same losses. test/lbfgs.test.ts checks that the harness still builds these exact problems.
 *
 * Run: npx tsx scripts/reference/lbfgs_problems.ts
 */
import { writeFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { problems } from '../../experiments/index.js';
import { quadraticSpectrum } from '../../experiments/quadratic.js';
import { Rng, randomOrthogonal, rotateSpectrum } from '../../src/rng.js';

await tf.setBackend('cpu');

// float32 values written with 9 significant digits: enough to read back the same float32.
const f32 = (a: ArrayLike<number>): number[] => Array.from(Float32Array.from(a), (v) => Number(v.toPrecision(9)));

function startPoint(name: string, options: Record<string, unknown>): { shape: number[]; values: number[] }[] {
  const p = problems.get(name, options);
  const out = p.params.map((v) => ({ shape: v.shape.slice(), values: Array.from(v.dataSync()) }));
  p.dispose?.();
  return out;
}

/** The construction of experiments/quadratic.ts createQuadratic (problemSeed 0, log-uniform). */
function quadratic(id: string, options: { dim: number; condition: number; seed: number }) {
  const prng = new Rng(0, 101);
  const lambda = quadraticSpectrum(options.dim, options.condition, 'log-uniform', prng, 0.9);
  const Q = randomOrthogonal(options.dim, prng);
  const A = rotateSpectrum(Q, lambda);
  const xStar = prng.normalArray(options.dim);
  return {
    id,
    harness: { name: 'quadratic', options },
    kind: 'quadratic',
    start: startPoint('quadratic', options),
    A: f32(A),
    xStar: f32(xStar),
  };
}

function fn(id: string, name: 'rosenbrock' | 'beale' | 'himmelblau', options: Record<string, unknown>) {
  return { id, harness: { name, options }, kind: name, start: startPoint(name, options) };
}

const iris = problems.get('logreg-iris', { seed: 0 });
const all = Int32Array.from({ length: iris.data!.numTrain }, (_, i) => i);
const batch = iris.data!.batch(all);
const irisData = { X: f32(batch.x.dataSync()), Y: f32(batch.y.dataSync()), n: batch.size };
batch.x.dispose();
batch.y.dispose();
const irisStart = iris.params.map((v) => ({ shape: v.shape.slice(), values: Array.from(v.dataSync()) }));
iris.dispose?.();

const out = {
  generator: 'scripts/reference/lbfgs_problems.ts',
  problems: [
    quadratic('quadratic-10', { dim: 10, condition: 100, seed: 0 }),
    fn('rosenbrock-2', 'rosenbrock', { dim: 2, seed: 0 }),
    fn('rosenbrock-10', 'rosenbrock', { dim: 10, seed: 0 }),
    {
      id: 'logreg-iris',
      harness: { name: 'logreg-iris', options: { seed: 0 } },
      kind: 'logreg',
      start: irisStart,
      ...irisData,
    },
    // evidence only (scripts/lbfgs-vs.ts): the harness defaults of the other deterministic problems
    quadratic('quadratic-50', { dim: 50, condition: 1000, seed: 0 }),
    fn('beale', 'beale', { seed: 0 }),
    fn('himmelblau', 'himmelblau', { seed: 0 }),
  ],
};
writeFileSync(new URL('../../test/fixtures/lbfgs-problems.json', import.meta.url), JSON.stringify(out) + '\n');
console.log('wrote test/fixtures/lbfgs-problems.json');
