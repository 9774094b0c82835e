/**
 * Issue 13: Shampoo at its defaults (only the learning rate tuned) vs tuned Adam on the
 * Kronecker-structured least-squares problem f(W) = 1/2 ||A W B - T||^2 / N, A 40x20, B 10x16,
 * W 20x10 (merged into one 200-dim preconditioner at the defaults), cond(A) = cond(B) = 100,
 * T = A W* B, N = 40 * 16. Each optimizer gets its best learning rate from the grid
 * 1e-4 .. 10 (half decades) by the final loss.
 *
 *   npx tsx scripts/shampoo-kron-ls.ts [--steps 200] [--backend cpu] [--scale 1] [--loss-scale 1] [--shampoo '{"epsilon":1e-5}']
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.js';
import { Adam } from '../optimizers/adam.js';
import { Shampoo, type ShampooOptions } from '../optimizers/shampoo.js';
import { kroneckerLeastSquares } from '../test/helpers/kron-ls.js';

const { values: args } = parseArgs({
  options: {
    steps: { type: 'string', default: '200' },
    backend: { type: 'string', default: 'cpu' },
    shampoo: { type: 'string', default: '{}' },
    scale: { type: 'string', default: '1' },
    'loss-scale': { type: 'string', default: '1' },
    grid: { type: 'string', default: '1e-4,3e-4,1e-3,3e-3,1e-2,3e-2,1e-1,3e-1,1,3,10' },
  },
});
await initBackend(args.backend);
const steps = Number(args.steps);
const grid = args.grid.split(',').map(Number);
const extra = JSON.parse(args.shampoo) as ShampooOptions;
const P = kroneckerLeastSquares(1, 100, Number(args.scale), Number(args['loss-scale']));
console.log(
  `f(W) = 1/2 ||A W B - T||^2 / N, A 40x20, B 10x16, cond 100 each, W* scale ${args.scale}, loss x ${args['loss-scale']}; initial loss ${P.initial.toExponential(3)}; ${steps} steps; backend ${tf.getBackend()}`,
);
for (const [name, make] of [
  ['Adam (defaults, lr tuned)', (lr: number) => new Adam({ learningRate: lr })],
  [
    `Shampoo (defaults${args.shampoo === '{}' ? '' : ' + ' + args.shampoo}, lr tuned)`,
    (lr: number) => new Shampoo({ ...extra, learningRate: lr }),
  ],
] as const) {
  const rows: string[] = [];
  let best = { lr: NaN, loss: Infinity };
  for (const lr of grid) {
    const t0 = performance.now();
    const loss = P.run(make(lr), steps);
    rows.push(
      `  lr ${lr.toExponential(0)}: final ${loss.toExponential(3)} (${(P.initial / loss).toPrecision(3)}x) ${(performance.now() - t0).toFixed(0)} ms`,
    );
    if (loss < best.loss) best = { lr, loss };
  }
  console.log(
    `${name}: best lr ${best.lr}, final loss ${best.loss.toExponential(3)}, reduction ${(P.initial / best.loss).toPrecision(3)}x\n${rows.join('\n')}`,
  );
}
P.dispose();
