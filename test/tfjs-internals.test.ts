// Contract tests: every tfjs-core / tfjs-layers internal that curvature relies on, pinned in
// one place, so that a tfjs upgrade that changes one of them fails here, loudly and by name,
// instead of deep inside an optimizer. (Issue 14, "a safety net first".)
//
// What is pinned, and who relies on it:
// - engine.state.activeTape: an array of tape nodes { id, kernelName, inputs, outputs, gradient },
//   and state.gradientDepth
//   while a gradient is being recorded (src/layers/capture.ts: K-FAC's statistics).
// - engine.startScope / endScope and engine.state.activeScope.track, with `kept` on tensors
//   (optimizers/kfac.ts: evaluating the closure once more without leaking its metrics).
// - tf.keep calls engine.keep, so a per-call interception sees every kept tensor
//   (src/curvature/closure.ts releaseKept).
// - engine.registeredVariables keyed by variable name (src/optim/base.ts, optimizers/kfac.ts,
//   src/curvature/closure.ts).
// - tf.getKernel / unregisterKernel / registerKernel for wasm BatchMatMul, Transpose, Identity
//   (src/tfjs-internals/wasm-matmul.ts) and tf.getGradient for the kernels whose gradients
//   src/autodiff/registrations.ts replaces.
// - the cpu backend's `firstUse` flag (src/backend.ts silences its tfjs-node advice).
// - tfjs-layers' fit calls optimizer.minimize(lossClosure, true, trainableWeights) once per
//   batch (the drop-in contract of Newton, HessianFree and K-FAC).
// - The wasm kernel swaps are not installed on import, and are by initBackend, the first curvature
//   optimizer and the first matrix-calculus call (src/tfjs-internals/wasm-kernels.ts).
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';

interface TapeNodeShape {
  id: unknown;
  kernelName: unknown;
  inputs: unknown;
  outputs: unknown;
  gradient: unknown;
}

interface EngineInternals {
  state: {
    activeTape: TapeNodeShape[] | null;
    activeScope: { track: tf.Tensor[] } | null;
    gradientDepth: number;
  };
  runKernel(name: string, inputs: tf.NamedTensorMap, attrs: tf.NamedAttrMap): tf.Tensor;
  startScope(name?: string): void;
  endScope(result?: unknown): void;
  keep(t: tf.Tensor): tf.Tensor;
  registeredVariables: Record<string, tf.Variable>;
}

const engine = (): EngineInternals => tf.engine() as unknown as EngineInternals;

describe('tfjs internals curvature relies on (tfjs ' + tf.version.tfjs + ')', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('engine.state.activeTape holds the nodes recorded while a gradient is taken', () => {
    const x = tf.variable(tf.tensor2d([[1, 2]]), true, 'contract-x');
    const w = tf.variable(tf.tensor2d([[0.5], [-0.25]]), true, 'contract-w');
    let seen: TapeNodeShape[] | null = null;
    let depth = -1;
    const { value, grads } = tf.variableGrads(() => {
      depth = engine().state.gradientDepth;
      const y = tf.matMul(x, w);
      const tape = engine().state.activeTape;
      seen = tape === null ? null : [...tape];
      return tf.sum(tf.square(y)) as tf.Scalar;
    }, [w]);
    expect(Array.isArray(seen)).toBe(true);
    // Recording depth: > 0 inside a gradient, 0 outside (untaped() sets it to 0 to stop recording).
    expect(depth).toBeGreaterThan(0);
    expect(engine().state.gradientDepth).toBe(0);
    const nodes = seen as unknown as TapeNodeShape[];
    const matMul = nodes.find((n) => n.kernelName === 'BatchMatMul' || n.kernelName === '_FusedMatMul');
    expect(matMul, `kernels on the tape: ${nodes.map((n) => String(n.kernelName)).join(', ')}`).toBeDefined();
    expect(typeof matMul!.id).toBe('number');
    const inputs = matMul!.inputs as Record<string, tf.Tensor>;
    expect(Object.keys(inputs).sort()).toEqual(['a', 'b']);
    expect(inputs.b!.id).toBe(w.id); // a variable enters the tape as itself (capture.ts aliasOf)
    expect(Array.isArray(matMul!.outputs)).toBe(true);
    expect(typeof matMul!.gradient).toBe('function');
    // Outside a gradient there is no tape.
    expect(engine().state.activeTape === null || engine().state.activeTape!.length === 0).toBe(true);
    expect(value.dataSync()[0]).toBeCloseTo(0, 6);
    tf.dispose([value, ...Object.values(grads)]);
    x.dispose();
    w.dispose();
  });

  it('startScope/endScope dispose what the scope tracked except the result; kept tensors are flagged', () => {
    const before = tf.memory().numTensors;
    const e = engine();
    e.startScope('contract');
    let result: tf.Tensor;
    let kept: tf.Tensor;
    try {
      tf.ones([3]);
      kept = tf.keep(tf.zeros([2]));
      result = tf.add(tf.ones([2]), 1);
      const track = e.state.activeScope?.track ?? [];
      expect(track).toContain(kept);
      expect((kept as unknown as { kept: boolean }).kept).toBe(true);
    } finally {
      e.endScope(result!);
    }
    expect(result!.isDisposed).toBe(false);
    expect(kept!.isDisposed).toBe(false);
    expect(tf.memory().numTensors).toBe(before + 2);
    tf.dispose([result!, kept!]);
  });

  it('tf.keep goes through engine.keep (an own-property override sees every kept tensor)', () => {
    const e = engine();
    expect(Object.prototype.hasOwnProperty.call(e, 'keep')).toBe(false);
    const previous = e.keep;
    const seen: tf.Tensor[] = [];
    (e as { keep: (t: tf.Tensor) => tf.Tensor }).keep = (t) => {
      seen.push(t);
      return previous.call(e, t);
    };
    let t: tf.Tensor;
    try {
      t = tf.tidy(() => tf.keep(tf.ones([1])));
    } finally {
      delete (e as Partial<EngineInternals>).keep;
    }
    expect(seen).toEqual([t!]);
    expect(e.keep).toBe(previous);
    t!.dispose();
  });

  it('engine.runKernel runs a kernel by name with its registered gradient', () => {
    const x = tf.tensor1d([1, -2, 3]);
    const y = engine().runKernel('Square', { x }, {});
    expect(Array.from(y.dataSync())).toEqual([1, 4, 9]);
    const g = tf.grad((t: tf.Tensor) => tf.sum(engine().runKernel('Square', { x: t }, {})))(x);
    expect(Array.from(g.dataSync())).toEqual([2, -4, 6]);
    tf.dispose([x, y, g]);
  });

  it('engine.registeredVariables is keyed by variable name', () => {
    const v = tf.variable(tf.zeros([1]), true, 'contract-named');
    expect(engine().registeredVariables['contract-named']).toBe(v);
    v.dispose();
    expect(engine().registeredVariables['contract-named']).toBeUndefined();
  });

  it('kernel and gradient registries expose what the wasm matMul wrapper and the gradient registrations replace', () => {
    for (const name of ['BatchMatMul', 'Transpose', 'Identity']) {
      const k = tf.getKernel(name, 'wasm');
      expect(k, `wasm kernel ${name}`).toBeDefined();
      expect(typeof k!.kernelFunc).toBe('function');
    }
    for (const name of ['Tanh', 'Sigmoid', 'Exp', 'Softmax', 'Max', 'Pow']) {
      const g = tf.getGradient(name);
      expect(g, `gradient of ${name}`).toBeDefined();
      expect(typeof g!.gradFunc).toBe('function');
    }
    expect(typeof tf.unregisterKernel).toBe('function');
    expect(typeof tf.registerKernel).toBe('function');
  });

  it("the cpu backend has the 'firstUse' flag that src/backend.ts clears", () => {
    expect(tf.getBackend()).toBe('cpu');
    expect(typeof (tf.backend() as unknown as { firstUse?: boolean }).firstUse).toBe('boolean');
  });

  it('LayersModel.fit calls minimize(lossClosure, true, trainableWeights) once per batch', async () => {
    const calls: { returnCost: unknown; vars: string[]; closureIsFunction: boolean }[] = [];
    class Spy extends tf.SGDOptimizer {
      override minimize(f: () => tf.Scalar, returnCost?: boolean, varList?: tf.Variable[]): tf.Scalar | null {
        calls.push({
          returnCost,
          vars: (varList ?? []).map((v) => v.name),
          closureIsFunction: typeof f === 'function',
        });
        return super.minimize(f, returnCost, varList);
      }
    }
    const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [2], units: 1 })] });
    model.compile({ optimizer: new Spy(0.1), loss: 'meanSquaredError' });
    const xs = tf.randomNormal([8, 2], 0, 1, 'float32', 3);
    const ys = tf.randomNormal([8, 1], 0, 1, 'float32', 4);
    await model.fit(xs, ys, { epochs: 1, batchSize: 4, shuffle: false, verbose: 0 });
    expect(calls.length).toBe(2);
    for (const c of calls) {
      expect(c.closureIsFunction).toBe(true);
      expect(c.returnCost).toBe(true);
      expect(c.vars.sort()).toEqual(model.trainableWeights.map((w) => (w.read() as tf.Variable).name).sort());
    }
    tf.dispose([xs, ys]);
    model.dispose();
  });
});

// The wasm kernel swaps (src/tfjs-internals/wasm-kernels.ts) are installed by initBackend or by
// the first curvature optimizer / matrix-calculus call, not on import. Each case runs in a fresh
// process: the kernel registry is global to a tfjs instance.
describe('when the wasm kernel swaps are installed', () => {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const tfPath = createRequire(join(root, 'package.json')).resolve('@tensorflow/tfjs');
  // Prints, as JSON, whether the swaps are in place after import and after `trigger`.
  const script = (trigger: string): string =>
    [
      `const tf = await import(${JSON.stringify(tfPath)});`,
      `const c = await import(${JSON.stringify(join(root, 'src/index.ts'))});`,
      "const state = () => ({ conv: tf.getKernel('Conv2DBackpropFilter', 'wasm') !== undefined,",
      "  matMul: tf.getKernel('BatchMatMul', 'wasm').kernelFunc !== stockMatMul });",
      "const stockMatMul = tf.getKernel('BatchMatMul', 'wasm').kernelFunc;",
      'const afterImport = state();',
      trigger,
      'const afterTrigger = state();',
      // A conv filter gradient runs on wasm only with the swaps (the stock backend lacks it).
      "await tf.setBackend('wasm');",
      'const x = tf.ones([1, 4, 4, 1]); const w = tf.ones([2, 2, 1, 1]);',
      "const g = tf.grad((f) => tf.sum(tf.conv2d(x, f, 1, 'valid')))(w).dataSync();",
      'console.log(JSON.stringify({ afterImport, afterTrigger, grad: Array.from(g) }));',
    ].join('\n');
  const cases: [string, string][] = [
    ['initBackend', "await c.initBackend('cpu');"],
    ['tf.setBackend then a curvature optimizer', "await tf.setBackend('wasm'); new c.SGD({ learningRate: 0.1 });"],
    [
      'a matrix-calculus call',
      "await tf.setBackend('wasm'); c.hvp((a) => tf.sum(tf.square(a)), [tf.ones([2])], [tf.ones([2])]);",
    ],
  ];
  it.each(cases)('not on import; installed by %s', async (_name, trigger) => {
    const dir = mkdtempSync(join(tmpdir(), 'curvature-kernels-'));
    const file = join(dir, 'check.mts');
    writeFileSync(file, script(trigger));
    const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', file], { cwd: root, encoding: 'utf8' }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
    rmSync(dir, { recursive: true, force: true });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const out = JSON.parse(run.stdout) as {
      afterImport: { conv: boolean; matMul: boolean };
      afterTrigger: { conv: boolean; matMul: boolean };
      grad: number[];
    };
    expect(out.afterImport).toEqual({ conv: false, matMul: false });
    expect(out.afterTrigger).toEqual({ conv: true, matMul: true });
    // d/dw sum(conv(ones, w)) = the number of windows (3 x 3) in every filter entry.
    expect(out.grad).toEqual([9, 9, 9, 9]);
  });
});
