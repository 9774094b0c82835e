// tf.losses.sigmoidCrossEntropy (stock tfjs op, built from relu, mul, abs, exp, log1p) at second
// order with curvature imported: its only affected kernel is Exp, whose gradient curvature
// re-registers, so its Hessian-vector product is exact. Reference: PyTorch float64
// binary_cross_entropy_with_logits (mean) by double backward, test/fixtures/sigmoid-ce-hvp.json
// (scripts/reference/report_references.py). docs/autodiff.md states the result.
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { hvp, losses, valueAndGrad } from '../src/autodiff/index.js';

interface Case {
  y: number[][];
  loss: number;
  gradW: number[][];
  gradB: number[];
  hvpW: number[][];
  hvpB: number[];
}
const ref = JSON.parse(readFileSync(new URL('./fixtures/sigmoid-ce-hvp.json', import.meta.url), 'utf8')) as {
  x: number[][];
  W: number[][];
  b: number[];
  vW: number[][];
  vB: number[];
  cases: Record<'hard' | 'soft', Case>;
};

const relErr = (got: tf.Tensor, want: number[] | number[][]) => {
  const w = (want as number[]).flat() as number[];
  const g = got.dataSync();
  let num = 0;
  let den = 0;
  for (let i = 0; i < w.length; i++) {
    num = Math.max(num, Math.abs(g[i] - w[i]));
    den = Math.max(den, Math.abs(w[i]));
  }
  return num / den;
};

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`tf.losses.sigmoidCrossEntropy at second order (${backend})`, () => {
    for (const kind of ['hard', 'soft'] as const) {
      it(`${kind} labels: loss, gradient and HVP match PyTorch float64`, async () => {
        await initBackend(backend);
        const c = ref.cases[kind];
        const [x, W, b, vW, vB, y] = [ref.x, ref.W, ref.b, ref.vW, ref.vB, c.y].map((a) => tf.tensor(a));
        const stock = (w: tf.Tensor, bb: tf.Tensor) =>
          tf.losses.sigmoidCrossEntropy(y, tf.add(tf.matMul(x, w), bb)) as tf.Scalar;
        const ours = (w: tf.Tensor, bb: tf.Tensor) => losses.sigmoidCrossEntropy(y, tf.add(tf.matMul(x, w), bb));
        const before = tf.memory().numTensors;
        for (const f of [stock, ours]) {
          const { value, grads } = valueAndGrad(f, [W, b]);
          expect(Math.abs(value.dataSync()[0] - c.loss) / c.loss).toBeLessThan(1e-6);
          expect(relErr(grads[0], c.gradW)).toBeLessThan(1e-6);
          expect(relErr(grads[1], c.gradB)).toBeLessThan(1e-6);
          const [hW, hB] = hvp(f, [W, b], [vW, vB]);
          expect(relErr(hW, c.hvpW)).toBeLessThan(1e-6);
          expect(relErr(hB, c.hvpB)).toBeLessThan(1e-6);
          tf.dispose([value, ...grads, hW, hB]);
        }
        expect(tf.memory().numTensors).toBe(before);
        tf.dispose([x, W, b, vW, vB, y]);
      });
    }
  });
}
