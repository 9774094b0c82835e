/** Shared fixtures for the optimizer tests: seeded data, a small MLP, least squares. */
import * as tf from '@tensorflow/tfjs';
import { mulberry32 } from '../src/rng.js';

/** Deterministic uniform [-1, 1) numbers (mulberry32). */
export function rng(seed: number): () => number {
  const u = mulberry32(seed);
  return () => u() * 2 - 1;
}

export function randomArray(n: number, seed: number, scale = 1): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => r() * scale);
}

let counter = 0;

/** A 8-16-4 tanh MLP with squared loss; `clone` gives identical initial weights, new names. */
export class Mlp {
  readonly vars: tf.Variable[];
  constructor(
    readonly x: tf.Tensor2D,
    readonly y: tf.Tensor2D,
    init: number[][],
  ) {
    const id = counter++;
    const shapes = [[8, 16], [16], [16, 4], [4]];
    this.vars = init.map((v, i) => tf.variable(tf.tensor(v, shapes[i]), true, `mlp${id}_v${i}`));
  }
  static create(seed = 1): Mlp {
    const x = tf.tensor2d(randomArray(32 * 8, seed), [32, 8]);
    const y = tf.tensor2d(randomArray(32 * 4, seed + 1), [32, 4]);
    const sizes = [8 * 16, 16, 16 * 4, 4];
    return new Mlp(
      x,
      y,
      sizes.map((n, i) => randomArray(n, seed + 10 + i, 0.5)),
    );
  }
  clone(): Mlp {
    return new Mlp(
      this.x,
      this.y,
      this.vars.map((v) => Array.from(v.dataSync())),
    );
  }
  loss = (): tf.Scalar =>
    tf.tidy(() => {
      const [w1, b1, w2, b2] = this.vars as [tf.Variable, tf.Variable, tf.Variable, tf.Variable];
      const h = tf.tanh(tf.add(tf.matMul(this.x, w1), b1));
      const out = tf.add(tf.matMul(h, w2), b2);
      return tf.mean(tf.square(tf.sub(out, this.y))) as tf.Scalar;
    });
  flat(): number[] {
    return this.vars.flatMap((v) => Array.from(v.dataSync()));
  }
  dispose(): void {
    tf.dispose(this.vars);
  }
}

/** ||a - b|| / ||b|| */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-300));
}
