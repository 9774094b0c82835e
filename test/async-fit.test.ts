// AsyncRefresh inside a synchronous tf.Optimizer step driven by tfjs-layers' model.fit (the way
// Shampoo and K-FAC will use it): full-matrix RMSProp on a linear model, whose inverse square
// root of the gradient second-moment matrix is refreshed in the matrix worker. In
// deterministic mode the trajectory is bit-identical to the inline service's; the loss falls.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createInlineMatrixService,
  createMatrixWorker,
  createInverseRootRefresh,
  type MatrixService,
} from '../src/async/index.js';
import { initBackend } from '../src/backend.js';

const D = 6;

/** Full-matrix RMSProp: w <- w - lr (C + 0.1 lambda_max I)^{-1/2} g, C = EMA of g g^T; the root comes from an AsyncRefresh. */
class PreconditionedSGD extends tf.Optimizer {
  static get className(): string {
    return 'TestPreconditionedSGD';
  }
  private readonly c = new Float64Array(D * D);
  private t = 0;
  readonly refresh;
  constructor(service: MatrixService, maxStaleness: number) {
    super();
    this.refresh = createInverseRootRefresh(
      service,
      { p: 2, epsilon: 0.1, epsilonMode: 'relative' },
      { maxStaleness, deterministic: true },
    );
  }
  override applyGradients(grads: tf.NamedTensorMap | { name: string; tensor: tf.Tensor }[]): void {
    const list = Array.isArray(grads) ? grads : Object.entries(grads).map(([name, tensor]) => ({ name, tensor }));
    for (const { name, tensor } of list) {
      const v = tf.engine().registeredVariables[name]!;
      const g = tensor.dataSync();
      if (g.length !== D) {
        v.assign(tf.tidy(() => tf.sub(v, tf.mul(0.1, tensor))));
        continue;
      }
      for (let i = 0; i < D; i++)
        for (let j = 0; j < D; j++) this.c[i * D + j] = 0.9 * this.c[i * D + j]! + 0.1 * g[i]! * g[j]!;
      const inv = this.refresh.step(this.t, this.t % 2 === 0, () => [{ n: D, data: this.c.slice() }])![0]!.root;
      const step = new Float32Array(D);
      for (let i = 0; i < D; i++) for (let j = 0; j < D; j++) step[i] += 0.1 * inv[i * D + j]! * g[j]!;
      v.assign(tf.tidy(() => tf.sub(v, tf.tensor(step, v.shape))));
    }
    this.t++;
  }
  override getConfig(): tf.serialization.ConfigDict {
    return {};
  }
}

function data(): { xs: tf.Tensor2D; ys: tf.Tensor2D } {
  const x: number[] = [];
  const y: number[] = [];
  for (let i = 0; i < 64; i++) {
    const row = Array.from({ length: D }, (_, j) => Math.sin(1.7 * i + 0.9 * j) * (1 + j));
    x.push(...row);
    y.push(row.reduce((a, r, j) => a + r * (j - 2.5) * 0.2, 0));
  }
  return { xs: tf.tensor2d(x, [64, D]), ys: tf.tensor2d(y, [64, 1]) };
}

async function train(service: MatrixService): Promise<{ losses: number[]; weights: number[]; swapped: number }> {
  const model = tf.sequential({
    layers: [tf.layers.dense({ inputShape: [D], units: 1, useBias: false, kernelInitializer: 'zeros' })],
  });
  const opt = new PreconditionedSGD(service, 3);
  model.compile({ optimizer: opt, loss: 'meanSquaredError' });
  const { xs, ys } = data();
  const h = await model.fit(xs, ys, { epochs: 3, batchSize: 8, shuffle: false, verbose: 0 });
  const weights = Array.from(model.getWeights()[0]!.dataSync());
  tf.dispose([xs, ys]);
  model.dispose();
  return { losses: h.history.loss as number[], weights, swapped: opt.refresh.stats.swapped };
}

const services: MatrixService[] = [];
beforeAll(() => initBackend('cpu'));
afterAll(() => Promise.all(services.map((s) => s.close())));

describe('AsyncRefresh in an optimizer under model.fit', () => {
  it('worker and inline trajectories are identical in deterministic mode; the loss falls', async () => {
    const worker = createMatrixWorker();
    services.push(worker);
    const before = tf.memory().numTensors;
    const fromWorker = await train(worker);
    expect(tf.memory().numTensors).toBe(before);
    const inline = await train(createInlineMatrixService());
    expect(worker.mode).toBe('worker');
    expect(fromWorker.swapped).toBeGreaterThanOrEqual(4); // 24 steps, a request every 2, due 3 later
    expect(fromWorker.weights).toEqual(inline.weights);
    expect(fromWorker.losses).toEqual(inline.losses);
    expect(fromWorker.losses.at(-1)!).toBeLessThan(0.1 * fromWorker.losses[0]!);
  });
});
