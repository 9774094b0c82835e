/**
 * The 2-D test functions of the trajectory panel, each twice: as a tfjs objective (what the
 * optimizers minimise, with autodiff) and as plain JavaScript (the contour grid, evaluated
 * ~100k times per redraw). Browser-side versions of experiments/functions.ts (which is Node-only).
 */
import * as tf from '@tensorflow/tfjs';

export interface Function2D {
  name: string;
  label: string;
  /** Plot window [xmin, xmax] x [ymin, ymax]. */
  x: [number, number];
  y: [number, number];
  start: [number, number];
  minima: [number, number][];
  formula: string;
  value(x: number, y: number): number;
  objective(p: tf.Tensor1D): tf.Scalar;
}

function xy(p: tf.Tensor1D): [tf.Tensor, tf.Tensor] {
  return [tf.slice(p, 0, 1), tf.slice(p, 1, 1)];
}

// Ill-conditioned quadratic: f = 1/2 (u^2 + K v^2), (u, v) = the point rotated by -30 degrees.
const KAPPA = 50;
const C = Math.cos(Math.PI / 6);
const S = Math.sin(Math.PI / 6);

export const FUNCTIONS: Function2D[] = [
  {
    name: 'rosenbrock',
    label: 'Rosenbrock',
    x: [-2, 2],
    y: [-1, 3],
    start: [-1.2, 1],
    minima: [[1, 1]],
    formula: '100 (y − x²)² + (1 − x)²',
    value: (x, y) => 100 * (y - x * x) ** 2 + (1 - x) ** 2,
    objective: (p) =>
      tf.tidy(() => {
        const [x, y] = xy(p);
        return tf.sum(tf.add(tf.mul(100, tf.square(tf.sub(y, tf.square(x)))), tf.square(tf.sub(1, x)))) as tf.Scalar;
      }),
  },
  {
    name: 'beale',
    label: 'Beale',
    x: [-4.5, 4.5],
    y: [-4.5, 4.5],
    start: [1, 1.5],
    minima: [[3, 0.5]],
    formula: '(1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²',
    value: (x, y) => (1.5 - x + x * y) ** 2 + (2.25 - x + x * y * y) ** 2 + (2.625 - x + x * y ** 3) ** 2,
    objective: (p) =>
      tf.tidy(() => {
        const [x, y] = xy(p);
        const xy1 = tf.mul(x, y);
        const xy2 = tf.mul(xy1, y);
        const xy3 = tf.mul(xy2, y);
        const t1 = tf.add(tf.sub(1.5, x), xy1);
        const t2 = tf.add(tf.sub(2.25, x), xy2);
        const t3 = tf.add(tf.sub(2.625, x), xy3);
        return tf.sum(tf.addN([tf.square(t1), tf.square(t2), tf.square(t3)])) as tf.Scalar;
      }),
  },
  {
    name: 'himmelblau',
    label: 'Himmelblau',
    x: [-5, 5],
    y: [-5, 5],
    start: [-0.5, -4],
    minima: [
      [3, 2],
      [-2.805118, 3.131312],
      [-3.77931, -3.283186],
      [3.584428, -1.848126],
    ],
    formula: '(x² + y − 11)² + (x + y² − 7)²',
    value: (x, y) => (x * x + y - 11) ** 2 + (x + y * y - 7) ** 2,
    objective: (p) =>
      tf.tidy(() => {
        const [x, y] = xy(p);
        const a = tf.sub(tf.add(tf.square(x), y), 11);
        const b = tf.sub(tf.add(x, tf.square(y)), 7);
        return tf.sum(tf.add(tf.square(a), tf.square(b))) as tf.Scalar;
      }),
  },
  {
    name: 'quadratic',
    label: `Ill-conditioned quadratic (κ = ${KAPPA})`,
    x: [-3, 3],
    y: [-3, 3],
    start: [-2.5, 1.5],
    minima: [[0, 0]],
    formula: `½ (u² + ${KAPPA} v²), (u, v) = (x, y) rotated by 30°`,
    value: (x, y) => {
      const u = C * x + S * y;
      const v = -S * x + C * y;
      return 0.5 * (u * u + KAPPA * v * v);
    },
    objective: (p) =>
      tf.tidy(() => {
        const [x, y] = xy(p);
        const u = tf.add(tf.mul(C, x), tf.mul(S, y));
        const v = tf.add(tf.mul(-S, x), tf.mul(C, y));
        return tf.sum(tf.mul(0.5, tf.add(tf.square(u), tf.mul(KAPPA, tf.square(v))))) as tf.Scalar;
      }),
  },
];

export function getFunction(name: string): Function2D {
  const f = FUNCTIONS.find((g) => g.name === name);
  if (!f) throw new Error(`Unknown function '${name}': expected one of ${FUNCTIONS.map((g) => g.name).join(', ')}.`);
  return f;
}
