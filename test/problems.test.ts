import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { problems, quadraticDeepHessian, quadraticSpectrum, loadMnist } from '../experiments/index.js';
import { isNetworkProblem, type Problem } from '../src/harness/problem.js';
import { Rng } from '../src/harness/rng.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const value = (s: tf.Scalar): number => {
  const v = s.dataSync()[0];
  s.dispose();
  return v;
};

function withProblem<T>(name: string, options: Record<string, unknown>, f: (p: Problem) => T): T {
  const p = problems.get(name, options);
  try {
    return f(p);
  } finally {
    p.dispose();
  }
}

describe('problems registry', () => {
  it('lists every problem family', () => {
    expect(problems.names()).toEqual([
      'quadratic',
      'quadratic-deep',
      'rosenbrock',
      'beale',
      'himmelblau',
      'logreg-iris',
      'softmax-mnist',
      'mlp-mnist',
      'autoencoder-mnist',
      'cnn-mnist',
      'cnn-shapes',
    ]);
  });

  it('rejects an unknown problem naming it', () => {
    expect(() => problems.get('nope')).toThrow(/Unknown problem 'nope'/);
  });

  it('rejects unknown and ill-typed options naming the option', () => {
    expect(() => problems.get('quadratic', { dimension: 3 })).toThrow(/unknown option 'dimension'/);
    expect(() => problems.get('quadratic', { dim: 'x' })).toThrow(/option 'dim'/);
  });
});

describe('problem contract', () => {
  const small: [string, Record<string, unknown>][] = [
    ['quadratic', { dim: 6 }],
    ['quadratic-deep', {}],
    ['rosenbrock', { dim: 4 }],
    ['beale', {}],
    ['himmelblau', {}],
    ['logreg-iris', {}],
    ['softmax-mnist', { trainSize: 256, testSize: 64 }],
    ['mlp-mnist', { hidden: [8, 6], trainSize: 256, testSize: 64 }],
    ['autoencoder-mnist', { hidden: [8, 4, 8], trainSize: 128, testSize: 32 }],
    ['cnn-mnist', { trainSize: 128, testSize: 32 }],
    ['cnn-shapes', { trainSize: 128, testSize: 32 }],
  ];
  for (const [name, options] of small) {
    it(`${name}: finite loss, numParams = sum of params, evaluate() has trainLoss, no leak`, () => {
      const before = tf.memory().numTensors;
      withProblem(name, options, (p) => {
        expect(p.numParams).toBe(p.params.reduce((s, v) => s + v.size, 0));
        expect(Number.isFinite(value(p.loss()))).toBe(true);
        const m = p.evaluate();
        expect(Number.isFinite(m.trainLoss)).toBe(true);
        if (p.data) {
          const b = p.data.batch(Int32Array.from([0, 1, 2]));
          expect(b.size).toBe(3);
          expect(Number.isFinite(value(p.loss(b)))).toBe(true);
          tf.dispose([b.x, b.y]);
        }
      });
      expect(tf.memory().numTensors).toBe(before);
    });
  }

  it('network problems: loss = lossFromOutputs(outputs), model weights ARE params', () => {
    withProblem('mlp-mnist', { hidden: [8], trainSize: 64, testSize: 16 }, (p) => {
      expect(isNetworkProblem(p)).toBe(true);
      if (!isNetworkProblem(p)) return;
      expect(p.lossKind).toBe('softmax-cross-entropy');
      const w = p.model.trainableWeights.map((x) => x.read());
      expect(w).toEqual(p.params);
      const b = p.data.batch(Int32Array.from([3, 4, 5, 6]));
      const a = value(p.loss(b));
      const out = p.outputs(b);
      const c = value(p.lossFromOutputs(out, b));
      expect(a).toBeCloseTo(c, 6);
      const pred = p.model.predict(b.x) as tf.Tensor;
      expect(tf.max(tf.abs(tf.sub(pred, out))).dataSync()[0]).toBeLessThan(1e-5);
      tf.dispose([b.x, b.y, out, pred]);
    });
  });

  it('softmax-mnist has 7,850 parameters and an 8,000 / 2,000 split', () => {
    withProblem('softmax-mnist', { trainSize: 16, testSize: 16 }, (p) => expect(p.numParams).toBe(7850));
    const d = loadMnist();
    expect(d.numTrain + d.numTest).toBe(10000);
    expect(d.numTrain).toBeGreaterThan(7900);
    expect(d.numTrain).toBeLessThan(8100);
  });

  it('the seed determines the initialisation', () => {
    const init = (seed: number) =>
      withProblem('mlp-mnist', { hidden: [4], trainSize: 32, testSize: 0, seed }, (p) =>
        Array.from(p.params[0].dataSync()),
      );
    expect(init(1)).toEqual(init(1));
    expect(init(1)).not.toEqual(init(2));
  });
});

describe('quadratics', () => {
  it('spectra have the exact condition number and lambda_max = 1', () => {
    for (const shape of ['log-uniform', 'uniform', 'two-cluster'] as const) {
      const lam = quadraticSpectrum(20, 500, shape, new Rng(3));
      expect(Math.max(...lam)).toBeCloseTo(1, 12);
      expect(Math.max(...lam) / Math.min(...lam)).toBeCloseTo(500, 6);
    }
  });

  it('quadratic: loss at x* is 0 and the Hessian has the requested spectrum', () => {
    withProblem('quadratic', { dim: 5, condition: 10, initScale: 1 }, (p) => {
      expect(value(p.loss())).toBeGreaterThan(0);
      expect(p.optimum).toBe(0);
    });
  });

  it('quadratic-deep: 90 eigenvalues in (0,1), 10 in (30,60), optimum below the initial loss', () => {
    const { eigenvalues } = quadraticDeepHessian();
    expect(eigenvalues.filter((l) => l > 0 && l < 1).length).toBe(90);
    expect(eigenvalues.filter((l) => l > 30 && l < 60).length).toBe(10);
    withProblem('quadratic-deep', {}, (p) => {
      expect(p.optimum).toBeGreaterThan(0);
      expect(p.evaluate().trainLoss).toBeGreaterThan(p.optimum as number);
    });
  });
});
