/**
 * Runs the closure optimizers below on a 2-D function from one start point, recording the iterates
 * (K-FAC needs the layers of a network; Muon on a 2-vector is AdamW; L-BFGS is not drawn yet).
 */
import * as tf from '@tensorflow/tfjs';
import { getOptimizerEntry } from '../../src/index.js';
import type { Function2D } from './functions.js';

export interface TrajectoryOptimizer {
  /** Registry name (optimizers/index.ts). */
  name: string;
  label: string;
  color: string;
  /** The playground's starting values (editable); everything else is the library default. */
  overrides: Record<string, unknown>;
  note?: string;
}

export const TRAJECTORY_OPTIMIZERS: TrajectoryOptimizer[] = [
  { name: 'sgd', label: 'SGD', color: '#4e79a7', overrides: { learningRate: 1e-3, momentum: 0.9 } },
  { name: 'rmsprop', label: 'RMSProp', color: '#17becf', overrides: { learningRate: 0.02 } },
  { name: 'adam', label: 'Adam', color: '#f28e2b', overrides: { learningRate: 0.05 } },
  {
    name: 'newton',
    label: 'Newton',
    color: '#d62728',
    overrides: {},
    note: 'exact 2x2 Hessian, damped, Armijo line search',
  },
  {
    name: 'hessian-free',
    label: 'HessianFree',
    color: '#2ca02c',
    overrides: { curvature: 'hessian' },
    note: 'CG on Hessian-vector products, Levenberg-Marquardt damping',
  },
  {
    name: 'shampoo',
    label: 'Shampoo',
    color: '#9467bd',
    overrides: { learningRate: 0.3, preconditionFrequency: 1 },
    note: 'a 2-vector gets diagonal statistics; the step is grafted onto Adam',
  },
];

export interface Trajectory {
  name: string;
  /** Iterates, the start first. */
  points: [number, number][];
  losses: number[];
  /** Evaluations so far: Newton, HessianFree (and K-FAC) count them; first-order methods take one gradient per step. */
  evals: { lossEvals: number; gradEvals: number; hvpEvals: number };
  error?: string;
}

/** Parses the editors' text into option values: numbers, booleans, otherwise strings. */
export function parseOptionValue(text: string): unknown {
  const t = text.trim();
  if (t === 'true') return true;
  if (t === 'false') return false;
  if (t !== '' && Number.isFinite(Number(t))) return Number(t);
  return t;
}

/**
 * One optimizer at a time would draw the paths one after the other; instead all advance in
 * lockstep, `onProgress` after every `chunk` steps (the page redraws and yields there).
 */
export async function runTrajectories(
  fn: Function2D,
  start: [number, number],
  steps: number,
  optimizers: { name: string; options: Record<string, unknown> }[],
  onProgress: (t: Trajectory[], step: number) => Promise<void>,
  chunk = 5,
  shouldStop: () => boolean = () => false,
): Promise<Trajectory[]> {
  const runs = optimizers.map(({ name, options }) => {
    const traj: Trajectory = {
      name,
      points: [[start[0], start[1]]],
      losses: [fn.value(start[0], start[1])],
      evals: { lossEvals: 0, gradEvals: 0, hvpEvals: 0 },
    };
    let opt: tf.Optimizer | undefined;
    try {
      opt = getOptimizerEntry(name).create(options);
    } catch (e) {
      traj.error = e instanceof Error ? e.message : String(e);
    }
    const x = tf.tidy(() => tf.variable(tf.tensor1d(start), true));
    return { traj, opt, x };
  });
  const loss = (x: tf.Variable) => () => fn.objective(x as tf.Tensor1D);
  for (let s = 1; s <= steps && !shouldStop(); s++) {
    for (const r of runs) {
      if (!r.opt || r.traj.error) continue;
      try {
        tf.tidy(() => {
          r.opt!.minimize(loss(r.x), false, [r.x]);
        });
        const [px, py] = r.x.dataSync();
        if (!Number.isFinite(px) || !Number.isFinite(py)) throw new Error('the iterate is not finite');
        r.traj.points.push([px, py]);
        r.traj.losses.push(fn.value(px, py));
        const counted = (r.opt as { counters?: Trajectory['evals'] }).counters;
        r.traj.evals = counted
          ? { ...counted }
          : { lossEvals: r.traj.evals.lossEvals + 1, gradEvals: r.traj.evals.gradEvals + 1, hvpEvals: 0 };
      } catch (e) {
        r.traj.error = e instanceof Error ? e.message : String(e);
      }
    }
    if (s % chunk === 0 || s === steps)
      await onProgress(
        runs.map((r) => r.traj),
        s,
      );
  }
  for (const r of runs) {
    r.opt?.dispose();
    r.x.dispose();
  }
  return runs.map((r) => r.traj);
}
