// The page of test/browser.test.ts: the library as a browser user imports it (main entry only),
// bundled by esbuild for the browser. `window.runSuite(backend)` trains a small tfjs-layers model
// with five optimizers through model.fit and computes a Hessian-vector product.
import * as tf from '@tensorflow/tfjs';
import { Adam, HessianFree, KFAC, SGD, Shampoo, hvp, initBackend } from '../../src/index.js';

const N = 48;

function data(): { xs: tf.Tensor2D; ys: tf.Tensor2D } {
  const x: number[] = [];
  const labels: number[] = [];
  for (let i = 0; i < N; i++) {
    const row = [Math.sin(i), Math.cos(1.3 * i), Math.sin(0.7 * i + 1), Math.cos(2.1 * i)];
    x.push(...row);
    const scores = [row[0]! + row[1]!, row[2]! - row[0]!, row[3]! - row[1]!];
    labels.push(scores.indexOf(Math.max(...scores)));
  }
  return { xs: tf.tensor2d(x, [N, 4]), ys: tf.oneHot(tf.tensor1d(labels, 'int32'), 3).toFloat() as tf.Tensor2D };
}

function model(): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.dense({
        inputShape: [4],
        units: 8,
        activation: 'tanh',
        kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
      }),
      tf.layers.dense({
        units: 3,
        activation: 'softmax',
        kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
      }),
    ],
  });
}

const optimizers: Record<string, (m: tf.LayersModel) => tf.Optimizer> = {
  sgd: () => new SGD({ learningRate: 0.5 }),
  adam: () => new Adam({ learningRate: 0.05 }),
  kfac: (m) => new KFAC({ model: m }),
  shampoo: () => new Shampoo({ learningRate: 0.05 }),
  'hessian-free': () => new HessianFree({}),
};

export interface SuiteResult {
  backend: string;
  losses: Record<string, number[]>;
  hvp: number[];
}

async function runSuite(backend: string): Promise<SuiteResult> {
  const used = await initBackend(backend, { wasmPaths: '/wasm/' });
  const losses: Record<string, number[]> = {};
  for (const [name, make] of Object.entries(optimizers)) {
    const { xs, ys } = data();
    const m = model();
    m.compile({ optimizer: make(m), loss: 'categoricalCrossentropy' });
    const h = await m.fit(xs, ys, { epochs: 6, batchSize: 16, shuffle: false, verbose: 0 });
    losses[name] = h.history.loss as number[];
    m.optimizer.dispose();
    m.dispose();
    tf.dispose([xs, ys]);
  }
  const x = tf.tensor1d([0.3, -0.7, 1.2, 0.05]);
  const v = tf.tensor1d([1, -2, 0.5, 3]);
  const [hv] = hvp((y: tf.Tensor) => tf.sum(tf.square(tf.tanh(tf.mul(y, tf.sigmoid(y))))) as tf.Scalar, [x], [v]);
  const out = Array.from(await hv!.data());
  tf.dispose([x, v, hv!]);
  return { backend: used, losses, hvp: out };
}

(globalThis as unknown as { runSuite: typeof runSuite }).runSuite = runSuite;
(globalThis as unknown as { pageReady: boolean }).pageReady = true;
