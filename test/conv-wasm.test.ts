/**
 * Convolutional nets on the wasm backend (issue 18): the conv gradient kernels curvature
 * registers (src/tfjs-internals/wasm-conv.ts) against the cpu backend's values, the higher-order
 * gradients of conv/pooling backprops (src/autodiff/conv-gradients.ts) against central
 * differences and a float64 PyTorch fixture (scripts/reference/conv_reference.py), and a
 * tfjs-layers CNN trained through model.fit on wasm with every optimizer.
 */
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { gradcheck, hvp } from '../src/autodiff/index.js';
import { Adam, HessianFree, KFAC, LBFGS, Muon, Newton, RMSProp, SGD, Shampoo } from '../optimizers/index.js';
import { randomTensor, seededRandom } from './helpers/fd.js';

beforeAll(async () => {
  expect(await initBackend('wasm')).toBe('wasm');
});

type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];
type Shape4 = [number, number, number, number];

/** Run fn on `backend` and return its outputs' values (tensors created inside are disposed). */
function on(backend: 'cpu' | 'wasm', fn: () => tf.Tensor[]): Float32Array[] {
  const previous = tf.getBackend();
  tf.setBackend(backend);
  try {
    return tf.tidy(fn).map((t) => {
      const v = t.dataSync() as Float32Array;
      t.dispose();
      return v;
    });
  } finally {
    tf.setBackend(previous);
  }
}

function relMax(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let err = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    err = Math.max(err, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return err / scale;
}

function values(shape: number[], seed: number): Float32Array {
  const rand = seededRandom(seed);
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => 2 * rand() - 1);
}

// [x shape, filter shape, stride, padding]: odd sizes, batch > 1, channels > 1.
const CASES: [Shape4, Shape4, number | [number, number], Pad][] = [
  [[2, 7, 9, 3], [3, 3, 3, 4], 1, 'same'],
  [[2, 7, 9, 3], [3, 3, 3, 4], 2, 'same'],
  [[3, 7, 9, 3], [3, 2, 3, 4], 1, 'valid'],
  [[3, 8, 7, 2], [3, 3, 2, 5], 2, 'valid'],
  [[2, 9, 9, 2], [5, 5, 2, 3], 3, 'same'],
  [[2, 6, 7, 2], [2, 3, 2, 3], [2, 1], 'valid'],
  [[2, 7, 6, 2], [3, 3, 2, 3], 2, 1],
  [
    [2, 7, 6, 2],
    [3, 2, 2, 3],
    [1, 2],
    [
      [0, 0],
      [2, 1],
      [0, 1],
      [0, 0],
    ],
  ],
  [
    [2, 5, 6, 2],
    [3, 3, 2, 3],
    1,
    [
      [0, 0],
      [3, 4],
      [1, 2],
      [0, 0],
    ],
  ],
];

describe('wasm conv gradient kernels against the cpu backend', () => {
  for (const [xs, fs, stride, pad] of CASES) {
    for (const depthwise of [false, true]) {
      const f: Shape4 = depthwise ? [fs[0], fs[1], fs[2], 2] : fs;
      const name = `${depthwise ? 'depthwise' : 'conv2d'} x [${xs}] filter [${f}] stride ${stride} pad ${JSON.stringify(pad)}`;
      it(`${name}: dx and dW match cpu`, () => {
        const x = values(xs, 1);
        const w = values(f, 2);
        const forward = (a: tf.Tensor, b: tf.Tensor): tf.Tensor =>
          depthwise
            ? tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, pad)
            : tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, pad);
        const outShape = on('cpu', () => [forward(tf.tensor(x, xs), tf.tensor(w, f))])[0]!.length;
        const dy = values([outShape], 3);
        const grads = (): tf.Tensor[] => {
          const xt = tf.tensor(x, xs);
          const wt = tf.tensor(w, f);
          const y = forward(xt, wt);
          const u = tf.tensor(dy, y.shape);
          return tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(forward(a, b), u)))([xt, wt]);
        };
        const [dxCpu, dwCpu] = on('cpu', grads);
        const before = tf.memory().numTensors;
        const [dxWasm, dwWasm] = on('wasm', grads);
        expect(tf.memory().numTensors).toBe(before);
        expect(relMax(dxWasm!, dxCpu!)).toBeLessThan(1e-5);
        expect(relMax(dwWasm!, dwCpu!)).toBeLessThan(1e-5);
      });
    }
  }

  it('the kernels are leak-free in wasm memory and registered for wasm', () => {
    for (const k of [
      'Conv2DBackpropFilter',
      'Conv2DBackpropInput',
      'DepthwiseConv2dNativeBackpropFilter',
      'DepthwiseConv2dNativeBackpropInput',
    ]) {
      expect(tf.getKernel(k, 'wasm'), k).toBeDefined();
    }
    const x = tf.tensor(values([2, 9, 9, 3], 4), [2, 9, 9, 3]) as tf.Tensor4D;
    const w = tf.tensor(values([3, 3, 3, 4], 5), [3, 3, 3, 4]) as tf.Tensor4D;
    const step = (): void =>
      tf.tidy(() => {
        tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same'))),
        )([x, w]);
      });
    step();
    const backend = tf.backend() as unknown as { numDataIds(): number };
    const ids = backend.numDataIds();
    const tensors = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) step();
    expect(backend.numDataIds()).toBe(ids);
    expect(tf.memory().numTensors).toBe(tensors);
    tf.dispose([x, w]);
  });

  it('pooling gradients (max, average; same and valid) match cpu', () => {
    const xs: Shape4 = [2, 7, 7, 3];
    const x = values(xs, 6);
    for (const pad of ['same', 'valid'] as const) {
      for (const max of [true, false]) {
        const grads = (): tf.Tensor[] => {
          const xt = tf.tensor(x, xs) as tf.Tensor4D;
          const pool = (a: tf.Tensor): tf.Tensor =>
            max ? tf.maxPool(a as tf.Tensor4D, 3, 2, pad) : tf.avgPool(a as tf.Tensor4D, 3, 2, pad);
          const u = tf.tensor(values(pool(xt).shape, 7), pool(xt).shape);
          return tf.grads((a: tf.Tensor) => tf.sum(tf.mul(tf.square(pool(a)), u)))([xt]);
        };
        expect(relMax(on('wasm', grads)[0]!, on('cpu', grads)[0]!), `${max ? 'max' : 'avg'} ${pad}`).toBeLessThan(1e-5);
      }
    }
  });

  it('maxPoolWithArgmax on wasm matches cpu on all-negative windows (the stock kernel returns 0)', () => {
    const xs: Shape4 = [2, 5, 6, 3];
    const x = values(xs, 8).map((v) => v - 1.5);
    for (const pad of ['same', 'valid'] as const) {
      const run = (): tf.Tensor[] => {
        const r = tf.maxPoolWithArgmax(tf.tensor4d(x, xs), 2, 2, pad, true);
        return [r.result, tf.cast(r.indexes, 'float32')];
      };
      const [yc, ic] = on('cpu', run);
      const [yw, iw] = on('wasm', run);
      expect(Array.from(yw!)).toEqual(Array.from(yc!));
      expect(Array.from(iw!)).toEqual(Array.from(ic!));
    }
  });

  it('an NCHW backprop on wasm is refused with an error naming the problem', () => {
    const x = tf.zeros([1, 2, 5, 5]);
    const dy = tf.zeros([1, 2, 5, 5]);
    expect(() =>
      tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, {
        strides: 1,
        pad: 'same',
        dataFormat: 'NCHW',
        filterShape: [3, 3, 2, 2],
      } as unknown as tf.NamedAttrMap),
    ).toThrow(/dataFormat 'NHWC'/);
    tf.dispose([x, dy]);
  });
});

// ---- the PyTorch fixture's conv net, written with tf ops
interface Fixture {
  x: number[];
  xShape: number[];
  labels: number[];
  shapes: Record<string, number[]>;
  theta: Record<string, number[]>;
  v: Record<string, number[]>;
  loss: number;
  grad: Record<string, number[]>;
  hvp: Record<string, number[]>;
}
const fixture = JSON.parse(readFileSync(new URL('./fixtures/conv-hvp.json', import.meta.url), 'utf8')) as Fixture;
const KEYS = ['W1', 'b1', 'W2', 'b2', 'W3', 'b3'] as const;

function fixtureLoss(x: tf.Tensor4D, labels: tf.Tensor): (...p: tf.Tensor[]) => tf.Scalar {
  return (W1, b1, W2, b2, W3, b3) => {
    let h = tf.tanh(tf.add(tf.conv2d(x, W1 as tf.Tensor4D, 1, 'same'), b1!)) as tf.Tensor4D;
    h = tf.maxPool(h, 2, 2, 'valid');
    h = tf.tanh(tf.add(tf.conv2d(h, W2 as tf.Tensor4D, 2, 'same'), b2!)) as tf.Tensor4D;
    h = tf.avgPool(h, 2, 1, 'valid');
    const logits = tf.add(tf.matMul(tf.reshape(h, [h.shape[0], -1]), W3 as tf.Tensor2D), b3!);
    const logp = tf.sub(logits, tf.logSumExp(logits, 1, true));
    return tf.neg(tf.mean(tf.sum(tf.mul(logp, labels), 1))) as tf.Scalar;
  };
}

describe('conv net derivatives against independent references', () => {
  const setup = (): { f: (...p: tf.Tensor[]) => tf.Scalar; theta: tf.Tensor[]; v: tf.Tensor[] } => {
    const x = tf.tensor4d(fixture.x, fixture.xShape as Shape4);
    const labels = tf.oneHot(tf.tensor1d(fixture.labels, 'int32'), 3);
    return {
      f: fixtureLoss(x, labels),
      theta: KEYS.map((k) => tf.tensor(fixture.theta[k]!, fixture.shapes[k])),
      v: KEYS.map((k) => tf.tensor(fixture.v[k]!, fixture.shapes[k])),
    };
  };

  for (const backend of ['wasm', 'cpu'] as const) {
    it(`${backend}: loss, gradient and Hessian-vector product equal float64 PyTorch`, () => {
      tf.setBackend(backend);
      try {
        const before = tf.memory().numTensors;
        tf.tidy(() => {
          const { f, theta, v } = setup();
          const { value, grads } = tf.valueAndGrads((...p: tf.Tensor[]) => f(...p))(theta);
          expect(Math.abs(value.dataSync()[0]! - fixture.loss)).toBeLessThan(1e-5);
          const hv = hvp(f, theta, v);
          KEYS.forEach((k, i) => {
            const g = Float32Array.from(fixture.grad[k]!);
            const h = Float32Array.from(fixture.hvp[k]!);
            expect(relMax(grads[i]!.dataSync() as Float32Array, g), `grad ${k}`).toBeLessThan(1e-4);
            expect(relMax(hv[i]!.dataSync() as Float32Array, h), `hvp ${k}`).toBeLessThan(1e-4);
          });
        });
        expect(tf.memory().numTensors).toBe(before);
      } finally {
        tf.setBackend('wasm');
      }
    });
  }

  it('wasm: the conv net gradient matches central differences (gradcheck)', () => {
    tf.tidy(() => {
      const { f, theta } = setup();
      // Check W1, W2 (the conv filters) with the other parameters held fixed.
      const r = gradcheck(
        (W1: tf.Tensor, W2: tf.Tensor) => f(W1, theta[1]!, W2, theta[3]!, theta[4]!, theta[5]!),
        [theta[0]!, theta[2]!],
        {
          eps: 1e-2,
          atol: 2e-3,
          rtol: 2e-2,
        },
      );
      expect(r.ok, JSON.stringify(r)).toBe(true);
      expect(r.checked).toBeGreaterThan(100);
    });
  });

  it('wasm: a depthwise + strided conv net HVP matches central differences of its gradient', () => {
    tf.tidy(() => {
      const rand = seededRandom(11);
      const x = randomTensor([2, 7, 7, 2], rand) as tf.Tensor4D;
      const f = (D: tf.Tensor, W: tf.Tensor): tf.Scalar => {
        const h = tf.tanh(tf.depthwiseConv2d(x, D as tf.Tensor4D, 2, 'same'));
        const g = tf.sigmoid(tf.conv2d(h, W as tf.Tensor4D, 1, 'valid'));
        return tf.sum(tf.square(tf.avgPool(g, 2, 1, 'valid')));
      };
      const theta = [randomTensor([3, 3, 2, 2], rand, 0.7), randomTensor([2, 2, 4, 3], rand, 0.7)];
      const v = [randomTensor([3, 3, 2, 2], rand), randomTensor([2, 2, 4, 3], rand)];
      const hv = hvp(f, theta, v);
      // Central differences of the gradient along v: (g(theta + h v) - g(theta - h v)) / 2h.
      const h = 1e-2;
      const gAt = (s: number): tf.Tensor[] => tf.grads(f)(theta.map((t, i) => tf.add(t, tf.mul(v[i]!, s))));
      const gp = gAt(h);
      const gm = gAt(-h);
      hv.forEach((t, i) => {
        const fd = tf.div(tf.sub(gp[i]!, gm[i]!), 2 * h).dataSync() as Float32Array;
        expect(relMax(t.dataSync() as Float32Array, fd)).toBeLessThan(5e-3);
      });
    });
  });
});

// ---- tfjs-layers CNN through model.fit on wasm
const N = 24;
function dataset(size: number): { xs: tf.Tensor4D; ys: tf.Tensor2D } {
  // Three classes: a bright 3x3 square at a class-dependent place, on noise.
  const rand = seededRandom(5);
  const labels = Array.from({ length: N }, (_, i) => i % 3);
  const img = new Float32Array(N * size * size);
  const at = [
    [1, 1],
    [size - 4, 2],
    [2, size - 4],
  ];
  for (let n = 0; n < N; n++) {
    const [r0, c0] = at[labels[n]!]!;
    for (let i = 0; i < size * size; i++) {
      const r = Math.floor(i / size);
      const c = i % size;
      const inside = r >= r0! && r < r0! + 3 && c >= c0! && c < c0! + 3;
      img[n * size * size + i] = 0.3 * (2 * rand() - 1) + (inside ? 1 : 0);
    }
  }
  return {
    xs: tf.tensor4d(img, [N, size, size, 1]),
    ys: tf.oneHot(tf.tensor1d(labels, 'int32'), 3).toFloat() as tf.Tensor2D,
  };
}

function cnn(tiny: boolean): tf.LayersModel {
  const init = (seed: number): ReturnType<typeof tf.initializers.glorotUniform> =>
    tf.initializers.glorotUniform({ seed });
  if (tiny) {
    // 47 parameters, for Newton's explicit Hessian.
    return tf.sequential({
      layers: [
        tf.layers.conv2d({
          inputShape: [6, 6, 1],
          filters: 2,
          kernelSize: 3,
          activation: 'tanh',
          kernelInitializer: init(1),
        }),
        tf.layers.averagePooling2d({ poolSize: 2 }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: init(2) }),
      ],
    });
  }
  return tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: [8, 8, 1],
        filters: 4,
        kernelSize: 3,
        padding: 'same',
        activation: 'tanh',
        kernelInitializer: init(1),
      }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({ filters: 3, kernelSize: 3, strides: 2, activation: 'tanh', kernelInitializer: init(2) }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: init(3) }),
    ],
  });
}

describe('a tfjs-layers CNN trains through model.fit on wasm', () => {
  const cases: [string, (m: tf.LayersModel) => tf.Optimizer, boolean][] = [
    ['SGD', () => new SGD({ learningRate: 0.5 }), false],
    ['RMSProp', () => new RMSProp({ learningRate: 0.01 }), false],
    ['Adam', () => new Adam({ learningRate: 0.02 }), false],
    ['tfjs Adam', () => tf.train.adam(0.02), false],
    // Preconditioning from step 2 (the default starts at step 10, after this test's 8 steps).
    ['Shampoo', () => new Shampoo({ learningRate: 0.02, preconditionFrequency: 2 }), false],
    ['HessianFree', () => new HessianFree({}), false],
    ['Newton (tiny model)', () => new Newton({}), true],
    ['KFAC (KFC blocks on the conv layers)', (m) => new KFAC({ model: m, ...KFAC.FAST_SETTINGS }), false],
    ['KFAC defaults', (m) => new KFAC({ model: m }), false],
    ['Muon (AdamW for the conv kernels)', () => new Muon({}), false],
    // One minimize = up to maxIter L-BFGS iterations; on 2 mini-batches per epoch its pairs mix batches.
    ['LBFGS (strong Wolfe)', () => new LBFGS({ lineSearchFn: 'strong_wolfe', maxIter: 5 }), false],
  ];
  for (const [name, make, tiny] of cases) {
    it(`${name}: the loss falls, steps are leak-free`, async () => {
      expect(tf.getBackend()).toBe('wasm');
      const { xs, ys } = dataset(tiny ? 6 : 8);
      const m = cnn(tiny);
      m.compile({ optimizer: make(m), loss: 'categoricalCrossentropy' });
      const h = await m.fit(xs, ys, { epochs: 4, batchSize: 12, shuffle: false, verbose: 0 });
      const loss = h.history.loss as number[];
      expect(loss.every(Number.isFinite)).toBe(true);
      expect(loss[loss.length - 1]!).toBeLessThan(0.85 * loss[0]!);
      // Optimizer state exists now: one more epoch must not add tensors.
      const n = tf.memory().numTensors;
      await m.fit(xs, ys, { epochs: 1, batchSize: 12, shuffle: false, verbose: 0 });
      expect(tf.memory().numTensors).toBe(n);
      tf.dispose([xs, ys]);
      m.dispose();
    });
  }

  it('separable, depthwise and transposed conv layers train with SGD', async () => {
    const { xs, ys } = dataset(8);
    const init = (seed: number): ReturnType<typeof tf.initializers.glorotUniform> =>
      tf.initializers.glorotUniform({ seed });
    const m = tf.sequential({
      layers: [
        tf.layers.conv2dTranspose({
          inputShape: [8, 8, 1],
          filters: 2,
          kernelSize: 3,
          strides: 1,
          padding: 'same',
          activation: 'tanh',
          kernelInitializer: init(1),
        }),
        tf.layers.depthwiseConv2d({
          kernelSize: 3,
          depthMultiplier: 2,
          strides: 2,
          padding: 'same',
          activation: 'tanh',
          depthwiseInitializer: init(2),
        }),
        tf.layers.separableConv2d({
          filters: 3,
          kernelSize: 3,
          padding: 'valid',
          activation: 'tanh',
          depthwiseInitializer: init(3),
          pointwiseInitializer: init(4),
        }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: init(5) }),
      ],
    });
    m.compile({ optimizer: new SGD({ learningRate: 0.5 }), loss: 'categoricalCrossentropy' });
    const h = await m.fit(xs, ys, { epochs: 6, batchSize: 12, shuffle: false, verbose: 0 });
    const loss = h.history.loss as number[];
    expect(loss[loss.length - 1]!).toBeLessThan(0.85 * loss[0]!);
    tf.dispose([xs, ys]);
    m.dispose();
  });
});
