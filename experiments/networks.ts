/**
 * Network problems: dense networks on Iris and MNIST.
 *
 * - logreg-iris: multinomial logistic regression, 4 -> 3 (15 parameters), full batch (120).
 * - softmax-mnist: multinomial logistic regression, 784 -> 10 (7,850 parameters).
 * - mlp-mnist: 784 -> hidden... -> 10, softmax cross-entropy (default hidden [128], relu).
 * - autoencoder-mnist: 784 -> hidden... -> 784 with a sigmoid cross-entropy reconstruction loss
 *   (mean over pixels and batch; default hidden [128, 32, 128], relu; the code layer is linear,
 *   as in Hinton & Salakhutdinov 2006).
 *
 * Every network problem is a tfjs-layers `model` (tf.sequential of Dense layers) whose trainable
 * weights ARE `params` (kernel, bias for each layer, in order), plus the split
 * `outputs(batch)` (logits) / `lossFromOutputs(outputs, batch)` / `lossKind` for Gauss-Newton
 * products. Weights are initialised with a seeded Glorot-uniform draw (biases zero), so runs are
 * bit-reproducible across backends. Losses are src/autodiff's `losses` (differentiable to any
 * order): softmax cross-entropy summed over classes and averaged over the batch; sigmoid
 * cross-entropy averaged over every element. Importing src/autodiff installs the higher-order
 * gradient registrations, so tanh and sigmoid hidden layers are twice differentiable too.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type {
  Batch,
  LossKind,
  NetworkProblem,
  ProblemData,
  ProblemEntry,
  ProblemMetrics,
} from '../src/harness/problem.js';
import { Rng } from '../src/harness/rng.js';
import { loadIris, loadMnist, type ClassificationData } from './datasets.js';
import { losses } from '../src/autodiff/index.js';
import { accuracy } from './losses.js';
import { optionDocs, parseOptions, seedOption } from './registry.js';

export type Activation = 'relu' | 'tanh' | 'sigmoid' | 'linear';

interface NetworkSpec {
  name: string;
  description: string;
  options: Record<string, unknown>;
  dataset: ClassificationData;
  trainSize: number;
  testSize: number;
  batchSize: number;
  /** Layer widths including input and output, e.g. [784, 128, 10]. */
  widths: number[];
  /** Activation of each hidden layer (the last layer is always linear: logits). */
  activations: Activation[];
  lossKind: Extract<LossKind, 'softmax-cross-entropy' | 'sigmoid-cross-entropy'>;
  seed: number;
  target?: number;
}

function activate(h: tf.Tensor, a: Activation): tf.Tensor {
  switch (a) {
    case 'relu':
      return tf.relu(h);
    case 'tanh':
      return tf.tanh(h);
    case 'sigmoid':
      return tf.sigmoid(h);
    default:
      return h;
  }
}

const EVAL_CHUNK = 2000;

function makeNetworkProblem(spec: NetworkSpec): NetworkProblem {
  const { dataset: ds, widths, activations } = spec;
  const nTrain = Math.min(spec.trainSize, ds.numTrain);
  const nTest = Math.min(spec.testSize, ds.numTest);
  const f = ds.numFeatures;
  const autoencoder = spec.lossKind === 'sigmoid-cross-entropy';

  const model = tf.sequential();
  for (let l = 0; l + 1 < widths.length; l++) {
    model.add(
      tf.layers.dense({
        units: widths[l + 1],
        activation: l + 1 < widths.length - 1 ? activations[l] : 'linear',
        useBias: true,
        ...(l === 0 ? { inputShape: [widths[0]] } : {}),
      }),
    );
  }
  const params = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const rng = new Rng(spec.seed, 3);
  for (let l = 0; l + 1 < widths.length; l++) {
    const [fanIn, fanOut] = [widths[l], widths[l + 1]];
    const limit = Math.sqrt(6 / (fanIn + fanOut));
    tf.tidy(() => {
      params[2 * l].assign(tf.tensor2d(rng.uniformArray(fanIn * fanOut, -limit, limit), [fanIn, fanOut]));
      params[2 * l + 1].assign(tf.zeros([fanOut]));
    });
  }

  const trainX = tf.tensor2d(ds.trainX.subarray(0, nTrain * f), [nTrain, f]);
  const testX = tf.tensor2d(ds.testX.subarray(0, nTest * f), [nTest, f]);
  const oneHot = (labels: Int32Array, n: number) =>
    tf.tidy(() => tf.oneHot(tf.tensor1d(labels.subarray(0, n), 'int32'), ds.numClasses).toFloat());
  const trainY = autoencoder ? trainX : oneHot(ds.trainLabels, nTrain);
  const testY = autoencoder ? testX : oneHot(ds.testLabels, nTest);

  const outputs = (batch: Batch): tf.Tensor =>
    tf.tidy(() => {
      let h: tf.Tensor = batch.x;
      for (let l = 0; l + 1 < widths.length; l++) {
        h = tf.add(tf.matMul(h as tf.Tensor2D, params[2 * l] as tf.Tensor2D), params[2 * l + 1]);
        if (l + 1 < widths.length - 1) h = activate(h, activations[l]);
      }
      return h;
    });
  const lossFromOutputs = (out: tf.Tensor, batch: Batch): tf.Scalar =>
    autoencoder ? losses.sigmoidCrossEntropy(batch.y, out) : losses.softmaxCrossEntropy(batch.y, out);
  return trainedNetworkProblem({
    spec: { ...spec, target: spec.target },
    params,
    model,
    outputs,
    lossFromOutputs,
    train: { x: trainX, y: trainY, n: nTrain },
    test: { x: testX, y: testY, n: nTest },
    reconstruct: autoencoder,
    evalChunk: EVAL_CHUNK,
  });
}

/** What `trainedNetworkProblem` needs: a model, its forward pass, the loss, the data splits. */
export interface NetworkParts {
  spec: {
    name: string;
    description: string;
    options: Record<string, unknown>;
    batchSize: number;
    lossKind: LossKind;
    target?: number;
  };
  params: tf.Variable[];
  model: tf.LayersModel;
  outputs: (batch: Batch) => tf.Tensor;
  lossFromOutputs: (out: tf.Tensor, batch: Batch) => tf.Scalar;
  train: { x: tf.Tensor; y: tf.Tensor; n: number };
  test: { x: tf.Tensor; y: tf.Tensor; n: number };
  /** An autoencoder: the targets are the inputs (y is x), no accuracy. */
  reconstruct: boolean;
  /** Examples per chunk when a whole split is evaluated. */
  evalChunk: number;
}

/**
 * The Problem of a network trained on a data set (MLP, autoencoder, conv net): mini-batches by
 * index, the full-batch loss, chunked evaluation of loss and accuracy, disposal.
 */
export function trainedNetworkProblem(p: NetworkParts): NetworkProblem {
  const { spec, params, model, outputs, lossFromOutputs, train, test, reconstruct } = p;
  const full = (x: tf.Tensor, y: tf.Tensor): Batch => ({ x, y, size: x.shape[0]! });
  const loss = (batch?: Batch): tf.Scalar =>
    tf.tidy(() => {
      const b = batch ?? full(train.x, train.y);
      return lossFromOutputs(outputs(b), b);
    });

  /** Loss and accuracy over a whole split, in chunks (sum of chunk means weighted by size). */
  const metricsOn = (X: tf.Tensor, Y: tf.Tensor): { loss: number; accuracy: number } => {
    const n = X.shape[0]!;
    let lossSum = 0;
    let correct = 0;
    for (let s = 0; s < n; s += p.evalChunk) {
      const m = Math.min(p.evalChunk, n - s);
      tf.tidy(() => {
        const b = full(tf.slice(X, s, m), tf.slice(Y, s, m));
        const out = outputs(b);
        lossSum += lossFromOutputs(out, b).dataSync()[0]! * m;
        if (!reconstruct) correct += accuracy(b.y, out) * m;
      });
    }
    return { loss: lossSum / n, accuracy: correct / n };
  };

  const data: ProblemData = {
    numTrain: train.n,
    numTest: test.n,
    batchSize: Math.min(spec.batchSize, train.n),
    batch: (indices: Int32Array): Batch =>
      tf.tidy(() => {
        const idx = tf.tensor1d(indices, 'int32');
        const x = tf.gather(train.x, idx);
        const y = reconstruct ? x.clone() : tf.gather(train.y, idx);
        return { x, y, size: indices.length };
      }),
  };

  return {
    name: spec.name,
    description: spec.description,
    options: spec.options,
    params,
    numParams: params.reduce((s, v) => s + v.size, 0),
    data,
    loss,
    outputs,
    lossFromOutputs,
    lossKind: spec.lossKind,
    model,
    target: spec.target,
    evaluate: (): ProblemMetrics => {
      const tr = metricsOn(train.x, train.y);
      const te = test.n > 0 ? metricsOn(test.x, test.y) : undefined;
      const m: ProblemMetrics = { trainLoss: tr.loss };
      if (te) m.testLoss = te.loss;
      if (!reconstruct) {
        m.trainAccuracy = tr.accuracy;
        if (te) m.testAccuracy = te.accuracy;
      }
      return m;
    },
    dispose: () => {
      // An autoencoder's targets are its inputs: dispose each tensor once.
      tf.dispose([...new Set([train.x, test.x, train.y, test.y])]);
      model.dispose();
    },
  };
}

const batchSize = (d: number) => z.number().int().min(1).default(d).describe('mini-batch size');
const trainSize = z.number().int().min(1).default(8000).describe('training examples used (of 8,000)');
const testSize = z.number().int().min(0).default(2000).describe('test examples used (of 2,000)');
const activation = z.enum(['relu', 'tanh', 'sigmoid', 'linear']).default('relu').describe('hidden activation');
const widths = (d: number[]) => z.array(z.number().int().min(1)).default(d).describe('hidden layer widths');

const logregIrisSchema = z.object({ batchSize: batchSize(120), seed: seedOption }).strict();
const softmaxMnistSchema = z.object({ batchSize: batchSize(128), trainSize, testSize, seed: seedOption }).strict();
const mlpMnistSchema = z
  .object({ hidden: widths([128]), activation, batchSize: batchSize(128), trainSize, testSize, seed: seedOption })
  .strict();
const autoencoderMnistSchema = z
  .object({
    hidden: widths([128, 32, 128]),
    activation,
    batchSize: batchSize(128),
    trainSize,
    testSize,
    seed: seedOption,
  })
  .strict();

export const logregIrisEntry: ProblemEntry = {
  name: 'logreg-iris',
  description: 'Multinomial logistic regression on Iris (4 -> 3, 15 parameters)',
  options: optionDocs(logregIrisSchema),
  create: (raw) => {
    const o = parseOptions('logreg-iris', logregIrisSchema, raw);
    const ds = loadIris();
    return makeNetworkProblem({
      name: 'logreg-iris',
      description: `logistic regression on Iris, ${ds.numTrain} train / ${ds.numTest} test, batch ${o.batchSize}`,
      options: o,
      dataset: ds,
      trainSize: ds.numTrain,
      testSize: ds.numTest,
      batchSize: o.batchSize,
      widths: [4, 3],
      activations: [],
      lossKind: 'softmax-cross-entropy',
      seed: o.seed,
      target: 0.1,
    });
  },
};

export const softmaxMnistEntry: ProblemEntry = {
  name: 'softmax-mnist',
  description: 'Multinomial logistic regression on MNIST (784 -> 10, 7,850 parameters)',
  options: optionDocs(softmaxMnistSchema),
  create: (raw) => {
    const o = parseOptions('softmax-mnist', softmaxMnistSchema, raw);
    return makeNetworkProblem({
      name: 'softmax-mnist',
      description: `softmax regression on MNIST, ${o.trainSize} train, batch ${o.batchSize}`,
      options: o,
      dataset: loadMnist(),
      trainSize: o.trainSize,
      testSize: o.testSize,
      batchSize: o.batchSize,
      widths: [784, 10],
      activations: [],
      lossKind: 'softmax-cross-entropy',
      seed: o.seed,
      target: 0.35,
    });
  },
};

export const mlpMnistEntry: ProblemEntry = {
  name: 'mlp-mnist',
  description: 'Multi-layer perceptron on MNIST (784 -> hidden... -> 10)',
  options: optionDocs(mlpMnistSchema),
  create: (raw) => {
    const o = parseOptions('mlp-mnist', mlpMnistSchema, raw);
    const w = [784, ...o.hidden, 10];
    return makeNetworkProblem({
      name: 'mlp-mnist',
      description: `MLP ${w.join('-')} (${o.activation}) on MNIST, ${o.trainSize} train, batch ${o.batchSize}`,
      options: o,
      dataset: loadMnist(),
      trainSize: o.trainSize,
      testSize: o.testSize,
      batchSize: o.batchSize,
      widths: w,
      activations: o.hidden.map(() => o.activation),
      lossKind: 'softmax-cross-entropy',
      seed: o.seed,
      target: 0.2,
    });
  },
};

export const autoencoderMnistEntry: ProblemEntry = {
  name: 'autoencoder-mnist',
  description: 'Dense autoencoder on MNIST with a sigmoid cross-entropy reconstruction loss',
  options: optionDocs(autoencoderMnistSchema),
  create: (raw) => {
    const o = parseOptions('autoencoder-mnist', autoencoderMnistSchema, raw);
    const w = [784, ...o.hidden, 784];
    // The narrowest layer is the code: linear, as in deep autoencoders.
    const code = o.hidden.indexOf(Math.min(...o.hidden));
    const acts = o.hidden.map((_, i): Activation => (i === code && o.hidden.length > 1 ? 'linear' : o.activation));
    return makeNetworkProblem({
      name: 'autoencoder-mnist',
      description: `autoencoder ${w.join('-')} (${o.activation}) on MNIST, ${o.trainSize} train, batch ${o.batchSize}`,
      options: o,
      dataset: loadMnist(),
      trainSize: o.trainSize,
      testSize: o.testSize,
      batchSize: o.batchSize,
      widths: w,
      activations: acts,
      lossKind: 'sigmoid-cross-entropy',
      seed: o.seed,
    });
  },
};
