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

const f32 = (a: ArrayLike<number>): number[] => Array.from(Float32Array.from(a));

function startPoint(name: string, options: Record<string, unknown>): { shape: number[]; values: number[] }[] {
  const p = problems.get(name, options);
  const out = p.params.map((v) => ({ shape: v.shape.slice(), values: Array.from(v.dataSync()) }));
  p.dispose?.();
  return out;
}

const quadOptions = { dim: 10, condition: 100, seed: 0 };
// The construction of experiments/quadratic.ts createQuadratic (problemSeed 0, log-uniform).
const prng = new Rng(0, 101);
const lambda = quadraticSpectrum(quadOptions.dim, quadOptions.condition, 'log-uniform', prng, 0.9);
const Q = randomOrthogonal(quadOptions.dim, prng);
const A = rotateSpectrum(Q, lambda);
const xStar = prng.normalArray(quadOptions.dim);

const iris = problems.get('logreg-iris', { seed: 0 });
const all = Int32Array.from({ length: iris.data!.numTrain }, (_, i) => i);
const batch = iris.data!.batch(all);
const irisData = { X: Array.from(batch.x.dataSync()), Y: Array.from(batch.y.dataSync()), n: batch.size };
batch.x.dispose();
batch.y.dispose();
const irisStart = iris.params.map((v) => ({ shape: v.shape.slice(), values: Array.from(v.dataSync()) }));
iris.dispose?.();

const out = {
  generator: 'scripts/reference/lbfgs_problems.ts',
  problems: [
    {
      id: 'quadratic-10',
      harness: { name: 'quadratic', options: quadOptions },
      kind: 'quadratic',
      start: startPoint('quadratic', quadOptions),
      A: f32(A),
      xStar: f32(xStar),
    },
    {
      id: 'rosenbrock-2',
      harness: { name: 'rosenbrock', options: { dim: 2, seed: 0 } },
      kind: 'rosenbrock',
      start: startPoint('rosenbrock', { dim: 2, seed: 0 }),
    },
    {
      id: 'rosenbrock-10',
      harness: { name: 'rosenbrock', options: { dim: 10, seed: 0 } },
      kind: 'rosenbrock',
      start: startPoint('rosenbrock', { dim: 10, seed: 0 }),
    },
    {
      id: 'logreg-iris',
      harness: { name: 'logreg-iris', options: { seed: 0 } },
      kind: 'logreg',
      start: irisStart,
      ...irisData,
    },
  ],
};
writeFileSync(new URL('../../test/fixtures/lbfgs-problems.json', import.meta.url), JSON.stringify(out) + '\n');
console.log('wrote test/fixtures/lbfgs-problems.json');
