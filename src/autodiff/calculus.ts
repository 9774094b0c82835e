/**
 * Matrix calculus on tfjs tensors: gradients shaped like their parameters, VJP, JVP (forward mode
 * from two reverse passes), Hessian-vector and Gauss-Newton-vector products, and explicit
 * Jacobians/Hessians for small problems (with a size guard: never materialise what a product
 * gives).
 *
 * Every function here is exact to any order because curvature re-registers the gradients that
 * stock tfjs gets wrong at second order (./registrations.ts). All are float32, as tfjs computes.
 *
 * Conventions (docs/autodiff.md):
 * - A gradient has the shape of its parameter (a bias gradient sums over the batch).
 * - jacobian(f, x, { layout: 'numerator' }) has shape [...f(x).shape, ...x.shape] with
 *   J[i, j] = d f_i / d x_j; 'denominator' is the transpose, [...x.shape, ...f(x).shape].
 * - hessian(f, x) has shape [...x.shape, ...x.shape].
 */
import * as tf from '@tensorflow/tfjs';
import { installWasmKernels } from '../tfjs-internals/wasm-kernels.js';

/** Default limit on the number of entries of an explicit Jacobian or Hessian (16 MiB float32). */
export const DEFAULT_MAX_ENTRIES = 4 * 1024 * 1024;

export type ScalarFn = (...xs: tf.Tensor[]) => tf.Scalar;
export type TensorFn = (...xs: tf.Tensor[]) => tf.Tensor;

// ---------------------------------------------------------------------------------------------
// Validation: bad input is named here, never left to fail deep inside tfjs.

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return `an array of length ${x.length}`;
  if (typeof x === 'object') return `an object (${(x as object).constructor?.name ?? 'Object'})`;
  return `${typeof x} ${String(x)}`;
}

export function assertTensor(x: unknown, what: string, fn: string): asserts x is tf.Tensor {
  if (!(x instanceof tf.Tensor)) {
    throw new TypeError(`${fn}: ${what} must be a tf.Tensor, got ${describe(x)}.`);
  }
  if (x.isDisposed) throw new Error(`${fn}: ${what} has been disposed.`);
}

function assertTensorList(xs: unknown, what: string, fn: string): asserts xs is tf.Tensor[] {
  if (!Array.isArray(xs)) {
    throw new TypeError(`${fn}: ${what} must be an array of tf.Tensor, got ${describe(xs)}.`);
  }
  if (xs.length === 0) throw new Error(`${fn}: ${what} is empty.`);
  xs.forEach((x, i) => assertTensor(x, `${what}[${i}]`, fn));
}

/** Every public function here starts with this check; it also installs the wasm kernel swaps. */
function assertFunction(f: unknown, fn: string): void {
  installWasmKernels();
  if (typeof f !== 'function') throw new TypeError(`${fn}: f must be a function, got ${describe(f)}.`);
}

function assertSameShapes(xs: tf.Tensor[], vs: tf.Tensor[], fn: string, vName = 'vs'): void {
  if (vs.length !== xs.length) {
    throw new Error(`${fn}: ${vName} has ${vs.length} tensors but xs has ${xs.length}; give one per x.`);
  }
  xs.forEach((x, i) => {
    if (!tf.util.arraysEqual(x.shape, vs[i].shape)) {
      throw new Error(
        `${fn}: ${vName}[${i}] has shape [${vs[i].shape}] but xs[${i}] has shape [${x.shape}]; they must match.`,
      );
    }
  });
}

/** Wrap f so that a non-scalar or non-tensor result is reported by name. */
function scalarChecked(f: (...xs: tf.Tensor[]) => tf.Tensor, fn: string): (...xs: tf.Tensor[]) => tf.Scalar {
  return (...xs) => {
    const y = f(...xs);
    if (!(y instanceof tf.Tensor)) throw new TypeError(`${fn}: f must return a tf.Tensor, got ${describe(y)}.`);
    if (y.rank !== 0) {
      throw new Error(
        `${fn}: f must return a scalar (rank 0) but returned shape [${y.shape}]; reduce it (e.g. tf.mean) ` +
          'or use vjp/jacobian for non-scalar functions.',
      );
    }
    return y as tf.Scalar;
  };
}

function tensorChecked(f: (...xs: tf.Tensor[]) => tf.Tensor, fn: string): (...xs: tf.Tensor[]) => tf.Tensor {
  return (...xs) => {
    const y = f(...xs);
    if (!(y instanceof tf.Tensor)) throw new TypeError(`${fn}: f must return a tf.Tensor, got ${describe(y)}.`);
    return y;
  };
}

function dot(as: tf.Tensor[], bs: tf.Tensor[]): tf.Scalar {
  return tf.addN(as.map((a, i) => tf.sum(tf.mul(a, bs[i])))) as tf.Scalar;
}

// ---------------------------------------------------------------------------------------------
// Gradients and products.

/** Value and gradient of a scalar f at xs; each gradient has the shape of its x. */
export function valueAndGrad(f: ScalarFn, xs: tf.Tensor[]): { value: tf.Scalar; grads: tf.Tensor[] } {
  assertFunction(f, 'valueAndGrad');
  assertTensorList(xs, 'xs', 'valueAndGrad');
  const { value, grads } = tf.valueAndGrads(scalarChecked(f, 'valueAndGrad'))(xs);
  return { value: value as tf.Scalar, grads };
}

/** Gradient of a scalar f at xs; each gradient has the shape of its x. */
export function grad(f: ScalarFn, xs: tf.Tensor[]): tf.Tensor[] {
  const { value, grads } = valueAndGrad(f, xs);
  value.dispose();
  return grads;
}

/** Hessian-vector product H v of a scalar f at xs (two reverse passes), shaped like xs. */
export function hvp(f: ScalarFn, xs: tf.Tensor[], vs: tf.Tensor[]): tf.Tensor[] {
  assertFunction(f, 'hvp');
  assertTensorList(xs, 'xs', 'hvp');
  assertTensorList(vs, 'vs', 'hvp');
  assertSameShapes(xs, vs, 'hvp');
  const fs = scalarChecked(f, 'hvp');
  return tf.tidy(() => tf.grads((...ys: tf.Tensor[]) => dot(tf.grads(fs)(ys), vs))(xs));
}

/** Vector-Jacobian product u^T J of f at xs, with u shaped like f(xs). */
export function vjp(f: TensorFn, xs: tf.Tensor[], u: tf.Tensor): { value: tf.Tensor; vjp: tf.Tensor[] } {
  assertFunction(f, 'vjp');
  assertTensorList(xs, 'xs', 'vjp');
  assertTensor(u, 'u', 'vjp');
  const ft = tensorChecked(f, 'vjp');
  const checked = (...ys: tf.Tensor[]): tf.Tensor => {
    const value = ft(...ys);
    if (!tf.util.arraysEqual(value.shape, u.shape)) {
      throw new Error(`vjp: u has shape [${u.shape}] but f(xs) has shape [${value.shape}]; they must match.`);
    }
    return value;
  };
  const { value, grads } = tf.valueAndGrads(checked)(xs, u);
  return { value, vjp: grads };
}

/**
 * Jacobian-vector product J v of f at xs (forward mode by two reverse passes): with
 * g(u) = J^T u, which is linear in u, J v = d/du <g(u), v>.
 */
export function jvp(f: TensorFn, xs: tf.Tensor[], vs: tf.Tensor[]): { value: tf.Tensor; jvp: tf.Tensor } {
  assertFunction(f, 'jvp');
  assertTensorList(xs, 'xs', 'jvp');
  assertTensorList(vs, 'vs', 'jvp');
  assertSameShapes(xs, vs, 'jvp');
  const ft = tensorChecked(f, 'jvp');
  return tf.tidy(() => {
    const value = ft(...xs);
    const u0 = tf.zerosLike(value);
    const jv = tf.grad((u: tf.Tensor) => dot(tf.grads(ft)(xs, u), vs))(u0);
    return { value, jvp: jv };
  });
}

/**
 * Gauss-Newton-vector product J^T H_L J v, where J is the Jacobian of `outputs` in xs and H_L
 * the Hessian of `loss` in the outputs: PSD whenever the loss is convex in the outputs.
 */
export function ggnvp(
  outputs: TensorFn,
  loss: (z: tf.Tensor) => tf.Scalar,
  xs: tf.Tensor[],
  vs: tf.Tensor[],
): tf.Tensor[] {
  assertFunction(outputs, 'ggnvp');
  assertFunction(loss, 'ggnvp');
  assertTensorList(xs, 'xs', 'ggnvp');
  assertTensorList(vs, 'vs', 'ggnvp');
  assertSameShapes(xs, vs, 'ggnvp');
  return tf.tidy(() => {
    const { value: z, jvp: jv } = jvp(outputs, xs, vs);
    const hjv = hvp(scalarChecked(loss as TensorFn, 'ggnvp (loss)'), [z], [jv])[0];
    return vjp(outputs, xs, hjv).vjp;
  });
}

// ---------------------------------------------------------------------------------------------
// Variable forms: the same products on a loss closure over tf.Variables (what optimizers get).

function assertVariables(vars: unknown, fn: string): asserts vars is tf.Variable[] {
  assertTensorList(vars, 'vars', fn);
}

/** Loss value and its gradients in vars (shaped like vars). */
export function valueAndGradVars(loss: () => tf.Scalar, vars: tf.Variable[]): { value: tf.Scalar; grads: tf.Tensor[] } {
  assertFunction(loss, 'valueAndGradVars');
  assertVariables(vars, 'valueAndGradVars');
  const { value, grads } = tf.valueAndGrads(scalarChecked(() => loss(), 'valueAndGradVars'))(vars);
  return { value: value as tf.Scalar, grads };
}

/** Hessian-vector product of a loss closure over vars. */
export function hvpVars(loss: () => tf.Scalar, vars: tf.Variable[], vs: tf.Tensor[]): tf.Tensor[] {
  assertFunction(loss, 'hvpVars');
  assertVariables(vars, 'hvpVars');
  return hvp(() => loss(), vars, vs);
}

/** Gauss-Newton-vector product for a network given as outputs() and loss(outputs). */
export function ggnvpVars(
  outputs: () => tf.Tensor,
  loss: (z: tf.Tensor) => tf.Scalar,
  vars: tf.Variable[],
  vs: tf.Tensor[],
): tf.Tensor[] {
  assertFunction(outputs, 'ggnvpVars');
  assertVariables(vars, 'ggnvpVars');
  return ggnvp(() => outputs(), loss, vars, vs);
}

/** Jacobian-vector product of outputs() in vars. */
export function jvpVars(
  outputs: () => tf.Tensor,
  vars: tf.Variable[],
  vs: tf.Tensor[],
): { value: tf.Tensor; jvp: tf.Tensor } {
  assertFunction(outputs, 'jvpVars');
  assertVariables(vars, 'jvpVars');
  return jvp(() => outputs(), vars, vs);
}

// ---------------------------------------------------------------------------------------------
// Explicit Jacobians and Hessians: small problems and tests only.

export interface ExplicitOptions {
  /** Refuse above this many entries (default DEFAULT_MAX_ENTRIES). */
  maxEntries?: number;
}

function guardSize(fn: string, entries: number, maxEntries: number, product: string): void {
  if (entries > maxEntries) {
    throw new Error(
      `${fn}: the explicit result would have ${entries} entries, over the limit of ${maxEntries} ` +
        `(options.maxEntries). Use ${product} instead: curvature never materialises what a product gives.`,
    );
  }
}

export type JacobianLayout = 'numerator' | 'denominator';

/**
 * Explicit Jacobian of f at x, built one VJP row at a time.
 * layout 'numerator' (default): shape [...f(x).shape, ...x.shape], J[i, j] = d f_i / d x_j.
 * layout 'denominator': the transpose, shape [...x.shape, ...f(x).shape].
 */
export function jacobian(
  f: (x: tf.Tensor) => tf.Tensor,
  x: tf.Tensor,
  options: ExplicitOptions & { layout?: JacobianLayout } = {},
): tf.Tensor {
  assertFunction(f, 'jacobian');
  assertTensor(x, 'x', 'jacobian');
  const layout = options.layout ?? 'numerator';
  if (layout !== 'numerator' && layout !== 'denominator') {
    throw new Error(`jacobian: layout must be 'numerator' or 'denominator', got '${String(layout)}'.`);
  }
  const maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
  const ft = tensorChecked(f as TensorFn, 'jacobian');
  return tf.tidy(() => {
    const y = ft(x);
    const m = y.size;
    guardSize('jacobian', m * x.size, maxEntries, 'vjp / jvp');
    const g = tf.grads(ft);
    const rows: tf.Tensor[] = [];
    const eye = tf.eye(m);
    for (let i = 0; i < m; i++) {
      const u = tf.reshape(tf.slice(eye, [i, 0], [1, m]), y.shape);
      rows.push(tf.reshape(g([x], u)[0], [x.size]));
    }
    const J = tf.stack(rows); // [m, n]
    if (layout === 'numerator') return tf.reshape(J, [...y.shape, ...x.shape]);
    return tf.reshape(tf.transpose(J), [...x.shape, ...y.shape]);
  });
}

/** Explicit Hessian of a scalar f at x, shape [...x.shape, ...x.shape], built from HVPs. */
export function hessian(f: (x: tf.Tensor) => tf.Scalar, x: tf.Tensor, options: ExplicitOptions = {}): tf.Tensor {
  assertFunction(f, 'hessian');
  assertTensor(x, 'x', 'hessian');
  const n = x.size;
  guardSize('hessian', n * n, options.maxEntries ?? DEFAULT_MAX_ENTRIES, 'hvp');
  const fs = scalarChecked(f as TensorFn, 'hessian');
  return tf.tidy(() => {
    // The gradient as a function of x, flattened; its Jacobian is the Hessian (symmetric).
    const gradFlat = (y: tf.Tensor): tf.Tensor => tf.reshape(tf.grad(fs)(y), [n]);
    const H = jacobian(gradFlat, x, { maxEntries: Number.POSITIVE_INFINITY }); // [n, ...x.shape]
    return tf.reshape(H, [...x.shape, ...x.shape]);
  });
}

// ---------------------------------------------------------------------------------------------
// Gradient check by central differences.

export interface GradcheckOptions {
  /** Finite-difference step (default 1e-3; float32 needs a large step). */
  eps?: number;
  /** Absolute tolerance (default 1e-3). */
  atol?: number;
  /** Relative tolerance (default 1e-2). */
  rtol?: number;
  /** Check at most this many coordinates per input, chosen evenly (default 64). */
  maxCoordinates?: number;
}

export interface GradcheckResult {
  ok: boolean;
  maxAbsError: number;
  maxRelError: number;
  /** Coordinates checked over all inputs. */
  checked: number;
}

/**
 * Compare the autodiff gradient of a scalar f with central differences
 * (f(x + eps e_j) - f(x - eps e_j)) / (2 eps) coordinate by coordinate. A coordinate passes when
 * |analytic - numeric| <= atol + rtol |numeric|.
 */
export function gradcheck(f: ScalarFn, xs: tf.Tensor[], options: GradcheckOptions = {}): GradcheckResult {
  assertFunction(f, 'gradcheck');
  assertTensorList(xs, 'xs', 'gradcheck');
  const eps = options.eps ?? 1e-3;
  const atol = options.atol ?? 1e-3;
  const rtol = options.rtol ?? 1e-2;
  const maxCoordinates = options.maxCoordinates ?? 64;
  const fs = scalarChecked(f, 'gradcheck');
  const analytic = tf
    .tidy(() => tf.grads(fs)(xs))
    .map((g) => {
      const d = g.dataSync().slice();
      g.dispose();
      return d;
    });
  const evalAt = (xsNow: tf.Tensor[]): number => tf.tidy(() => fs(...xsNow).dataSync()[0]);
  let maxAbsError = 0;
  let maxRelError = 0;
  let ok = true;
  let checked = 0;
  xs.forEach((x, k) => {
    const base = x.dataSync().slice();
    const n = base.length;
    const stride = Math.max(1, Math.ceil(n / maxCoordinates));
    for (let j = 0; j < n; j += stride) {
      const shifted = (delta: number): number => {
        const data = base.slice();
        data[j] += delta;
        const xk = tf.tensor(data, x.shape, x.dtype);
        try {
          return evalAt(xs.map((xi, i) => (i === k ? xk : xi)));
        } finally {
          xk.dispose();
        }
      };
      const numeric = (shifted(eps) - shifted(-eps)) / (2 * eps);
      const a = analytic[k][j];
      const abs = Math.abs(a - numeric);
      const rel = abs / Math.max(Math.abs(numeric), 1e-12);
      maxAbsError = Math.max(maxAbsError, abs);
      maxRelError = Math.max(maxRelError, Math.min(rel, abs === 0 ? 0 : rel));
      if (!(abs <= atol + rtol * Math.abs(numeric))) ok = false;
      checked++;
    }
  });
  return { ok, maxAbsError, maxRelError, checked };
}
