/**
 * SOAP: ShampoO with Adam in the Preconditioner's eigenbasis (Vyas et al. 2024). Anchor: the
 * authors' soap.py (github.com/nikhilvyas/SOAP, class SOAP, after its "momentum change" commit);
 * option names are its names in camelCase.
 *
 *   for each parameter p with gradient g, at its c-th update (c = 0, 1, 2, ...):
 *     G = g reshaped to the merged shape (mergeDims: mergeSmallDims of src/linalg, = soap.py's
 *         merge_dims; otherwise g's own shape). Dimension i of G has a Shampoo factor GG_i
 *         (d_i x d_i) unless d_i > maxPreconditionDim, or G is 1-D and precondition1d is off;
 *         Q_i is GG_i's eigenbasis (eigenvalues descending), and project(X) = X x_i Q_i^T over the
 *         factored dimensions i (projectBack: x_i Q_i). Factorless dimensions pass through.
 *     if c == 0:  GG_i = (1 - shampooBeta) G_(i) G_(i)^T;  Q_i = eigh(GG_i), descending;
 *                 p is NOT changed (soap.py: "we never use the current gradients in the projection")
 *     else (t = c):
 *       g'  = project(G)
 *       m   = beta1 m + (1 - beta1) g'          (m is kept in the eigenbasis; starts at 0)
 *       v   = beta2 v + (1 - beta2) g'^2
 *       u   = projectBack(m / (sqrt(v) + eps))
 *       if normalizeGrads:  u = u / (1e-30 + rms(u))
 *       s   = correctBias ? lr_t sqrt(1 - beta2^t) / (1 - beta1^t) : lr_t
 *       p   = (p - s u) (1 - lr_t weightDecay)           (decoupled, after the step, as soap.py)
 *       GG_i = shampooBeta GG_i + (1 - shampooBeta) G_(i) G_(i)^T     (G_(i): mode-i unfolding)
 *       if t % preconditionFrequency == 0, per factor i (one power-iteration step + QR):
 *         est = diag(Q_i^T GG_i Q_i);  order = argsort(est, descending, stable)
 *         v   = v permuted along dimension i by order;   Q_i = qr((GG_i + shift I) Q_i[:, order]).Q
 *                                                           (shift >= 1e-7 max(est), below)
 *         m   = project_new(projectBack_old(m))                (m follows the new basis)
 *
 * Defaults (all soap.py's): learningRate 3e-3, beta1 0.95, beta2 0.95, shampooBeta unset (=
 * beta2; soap.py's -1), eps 1e-8, weightDecay 0.01, preconditionFrequency 10,
 * maxPreconditionDim 10000, mergeDims false, precondition1d false, normalizeGrads false,
 * correctBias true.
 *
 * Where this differs from soap.py, and why:
 * - soap.py rotates m back and forth (projectBack with the old Q, project with the new) after
 *   every step; with Q unchanged that is the identity up to round-off, so here m is rotated only
 *   when Q changes (4 matrix products per factor and step saved).
 * - The eigendecomposition, the power-iteration product GG Q and the QR are float64 on the CPU
 *   (src/linalg eighRows, and Cholesky-QR2 `orthonormalBasis` with Householder `qr` as its
 *   fallback: the same Q up to column signs, to which the update is invariant); soap.py runs them
 *   in float32 on the device (eigh falling back to float64). The power iteration is on
 *   GG + shift I (same eigenvectors), shift the smallest of [1e-7, ~1e-6] lambda_max that bounds
 *   cond by 1e6: it keeps Cholesky-QR2 (whose Cholesky of P^T P fails beyond cond ~2e6)
 *   applicable when GG is singular (MNIST's always-zero pixels), and changes the refreshed Q only
 *   in directions whose eigenvalues are below the shift, i.e. near the float32 round-off of the
 *   statistic (~3e-8 lambda_max) (`refreshEigenbasis`; a fixed 1e-6 moved a well-conditioned
 *   test trajectory by 1e-4 of its length, 1e-7 by 3e-6). The per-step products (projections,
 *   statistics) are float32 tfjs ops, as soap.py's. The eigh's 1e-30 I shift of soap.py is dropped (no effect in
 *   float32 or float64 at any scale where it is not below the statistics' round-off).
 * - No `data_format`: tfjs conv kernels are [kh, kw, in, out] and merging follows the tensor's
 *   own axis order; soap.py's channels_last permutes NHWC 4-D tensors first.
 * - `shampooBeta` is unset (not -1) to mean beta2; options are validated (betas in [0, 1),
 *   eps > 0, integer frequency/dimension >= 1).
 * - An eigendecomposition or QR that fails (a non-finite statistic after float32 overflow) keeps
 *   the previous basis (the identity for the first one) and is counted in `failedEigenbases`.
 * - The first update of every variable leaves it unchanged, as in soap.py: with a learning-rate
 *   schedule, iteration 0's rate is unused.
 *
 * A statistic of lower rank than its dimension (the first step of any non-square matrix, or of
 * a vector with precondition1d) has a null space whose eigenbasis eigh chooses arbitrarily; the
 * trajectory depends on that choice (Adam's per-coordinate scaling is not rotation-invariant),
 * in soap.py as here. The reference tests therefore compare the first basis on its determined
 * part and continue from the reference's basis.
 *
 * Cost per step for an m x n matrix with both factors: the statistics m^2 n + m n^2, the two
 * projections 2 (m^2 n + m n^2) multiply-adds (float32), plus every preconditionFrequency steps
 * per factor of size d: GG Q (d^3) and Cholesky-QR2 (~4.3 d^3) in float64, and one eigh at the
 * start. For a 784 x 128 kernel that is ~275 M multiply-adds a step and ~2.5 G per refresh,
 * against 52 M for the forward and backward pass of a batch of 256: on the 784-128-10 MLP the
 * FLOP ratio to an Adam step is 11x at batch 256 and 3.5x at 1024 (`npm run bench -- soap`
 * measured 9.7x and 3.6x; BENCHMARKS.md, quiet run); with maxPreconditionDim 512 (the 784 side
 * unfactored) 1.8x and 1.2x (measured 1.7x and 1.2x).
 *
 * State slots: 'expAvg' (m, in the eigenbasis), 'expAvgSq' (v, in the eigenbasis), 'GG<i>' and
 * 'Q<i>' per factored dimension i of the merged shape. `failedEigenbases` is saved too.
 *
 * References: N. Vyas, D. Morwani, R. Zhao, I. Shapira, D. Brandfonbrener, L. Janson, S. Kakade
 * (2024), "SOAP: Improving and Stabilizing Shampoo using Adam", arXiv 2409.11321;
 * github.com/nikhilvyas/SOAP (soap.py).
 */
import * as tf from '@tensorflow/tfjs';
import { CurvatureOptimizer, BASE_OPTION_SPECS, type SlotState, type StepContext } from '../src/optim/base.js';
import { option, optionDocs, type OptionsInput } from '../src/optim/options.js';
import { eighRows, matmul, mergeSmallDims, orthonormalBasis, type Mat64 } from '../src/linalg/index.js';

export const SOAP_OPTIONS = {
  ...BASE_OPTION_SPECS,
  learningRate: option.learningRate(3e-3, 'Step size: a number >= 0 or a schedule of the step'),
  beta1: option.decay(0.95, "Adam's first-moment decay (soap.py betas[0])"),
  beta2: option.decay(0.95, "Adam's second-moment decay (soap.py betas[1])"),
  shampooBeta: option.optionalNumber('Decay of the Shampoo statistics GG (default: beta2)', {
    min: 0,
    max: 1,
    maxExclusive: true,
  }),
  eps: option.number(1e-8, 'Added to sqrt(v)', { min: 0, minExclusive: true }),
  weightDecay: option.number(0.01, 'Decoupled weight decay, multiplied by the learning rate', { min: 0 }),
  preconditionFrequency: option.number(10, 'Steps between eigenbasis refreshes (power iteration + QR)', {
    min: 1,
    integer: true,
  }),
  maxPreconditionDim: option.number(10000, 'Dimensions larger than this get no Shampoo factor (identity basis)', {
    min: 1,
    integer: true,
  }),
  mergeDims: option.boolean(false, 'Merge adjacent dimensions while their product <= maxPreconditionDim'),
  precondition1d: option.boolean(false, 'Give 1-D parameters (biases) a full factor'),
  normalizeGrads: option.boolean(false, 'Divide each update by its RMS'),
  correctBias: option.boolean(true, "Adam's bias correction"),
};

export type SOAPOptions = OptionsInput<typeof SOAP_OPTIONS>;

/** The per-dimension layout of a parameter: merged shape and which dimensions have a factor. */
export interface SoapLayout {
  merged: number[];
  factored: boolean[];
}

/** soap.py's init_preconditioner decisions for a parameter shape. */
export function soapLayout(
  shape: readonly number[],
  o: { maxPreconditionDim: number; mergeDims: boolean; precondition1d: boolean },
): SoapLayout {
  const full = shape.length === 0 ? [1] : [...shape];
  if (full.length === 1) {
    return { merged: full, factored: [o.precondition1d && full[0] <= o.maxPreconditionDim] };
  }
  const merged = o.mergeDims ? mergeSmallDims(full, o.maxPreconditionDim) : full;
  return { merged, factored: merged.map((d) => d <= o.maxPreconditionDim) };
}

/** A factor's eigenbasis Q and its transpose (both float32; wasm's transposed matMul is slow). */
interface Basis {
  q: tf.Tensor2D;
  qt: tf.Tensor2D;
}

/**
 * X x_i A_i over all dimensions i in order (A_i = Q_i^T for project, Q_i for projectBack;
 * identity where there is no basis). Each pass contracts the leading axis and appends the result
 * axis last (soap.py's tensordot cycle), so after all k passes the axes are back in order. Only
 * plain (untransposed) matMuls: tfjs-facts.md, transposed products are 10-16x slower on wasm.
 */
function modeProducts(x: tf.Tensor, bases: (Basis | undefined)[], back: boolean): tf.Tensor {
  if (bases.every((b) => b === undefined)) return x;
  const shape = [...x.shape];
  if (shape.length === 2) {
    // 2-D: Q_0^T X Q_1 (project) or Q_0 X Q_1^T (back).
    let z = x as tf.Tensor2D;
    const [b0, b1] = bases;
    if (b0) z = tf.matMul(back ? b0.q : b0.qt, z);
    if (b1) z = tf.matMul(z, back ? b1.qt : b1.q);
    return z;
  }
  let y = x;
  for (let i = 0; i < shape.length; i++) {
    const d = shape[0];
    const rest = shape.slice(1);
    const xt = tf.transpose(tf.reshape(y, [d, -1])) as tf.Tensor2D; // [rest, d]
    const b = bases[i];
    // tensordot(x, Q, [[0], [0]]) = X_(0)^T Q (project); tensordot(x, Q, [[0], [1]]) = X_(0)^T Q^T.
    const z = b ? tf.matMul(xt, back ? b.qt : b.q) : xt;
    shape.splice(0, 1);
    shape.push(d);
    y = tf.reshape(z, [...rest, d]);
  }
  return y;
}

/** G_(i) G_(i)^T for the mode-i unfolding of x (float32, untransposed matMuls). */
function modeGram(x: tf.Tensor, i: number): tf.Tensor2D {
  const k = x.rank;
  let u: tf.Tensor2D;
  if (k === 1) u = tf.reshape(x, [-1, 1]) as tf.Tensor2D;
  else if (k === 2) u = (i === 0 ? x : tf.transpose(x)) as tf.Tensor2D;
  else {
    const perm = [i, ...[...Array(k).keys()].filter((j) => j !== i)];
    u = tf.reshape(tf.transpose(x, perm), [x.shape[i], -1]) as tf.Tensor2D;
  }
  return tf.matMul(u, tf.transpose(u));
}

function hostMat(t: tf.Tensor): Mat64 {
  const [rows, cols] = t.shape as [number, number];
  return { rows, cols, data: Float64Array.from(t.dataSync() as Float32Array) };
}

/** Eigenvectors of a symmetric matrix as columns, eigenvalues descending (soap.py's flip). */
export function descendingEigenbasis(a: Mat64): Mat64 {
  const n = a.rows;
  const { vt } = eighRows(a);
  const q = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const row = (n - 1 - j) * n;
    for (let i = 0; i < n; i++) q[i * n + j] = vt.data[row + i];
  }
  return { rows: n, cols: n, data: q };
}

/**
 * soap.py's get_orthogonal_matrix_QR for one factor: est = diag(Q^T GG Q), order = argsort
 * descending (stable), Q_new = qr((GG + shift I) Q[:, order]).Q, with the smallest shift
 * >= 1e-7 max(est) that bounds cond(P) by ~1e6 (at most ~1e-6 max(est), for a singular GG):
 * the eigenvectors of GG + shift I are GG's, and the bound lets the fast Cholesky-QR2 of
 * src/linalg `orthonormalBasis` applies even when GG is singular (e.g. MNIST's always-zero
 * pixels; Householder QR there costs ~5x as much at d = 784); soap.py orthogonalises GG Q
 * itself (in float32, where directions below ~1e-7 lambda_max are round-off). Returns Q_new and
 * the order.
 */
export function refreshEigenbasis(gg: Mat64, q: Mat64): { q: Mat64; order: number[] } {
  const n = gg.rows;
  const p = matmul(gg, q);
  const est = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const r = i * n;
    for (let j = 0; j < n; j++) est[j] += q.data[r + j] * p.data[r + j];
  }
  const order = [...Array(n).keys()].sort((a, b) => est[b] - est[a]);
  // The smallest shift >= 1e-7 lambda_max with (lambda_max + s) / (lambda_min + s) <= 1e6 (est as
  // the eigenvalues): 1e-7 lambda_max for a well-conditioned GG, ~1e-6 lambda_max for a singular one.
  const hi = Math.max(0, est[order[0]] ?? 0);
  const lo = Math.max(0, est[order[n - 1]] ?? 0);
  const shift = Math.max(1e-7 * hi, (hi - 1e6 * lo) / (1e6 - 1));
  const permuted = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const r = i * n;
    for (let j = 0; j < n; j++) permuted[r + j] = p.data[r + order[j]] + shift * q.data[r + order[j]];
  }
  return { q: orthonormalBasis({ rows: n, cols: n, data: permuted }), order };
}

function allFiniteHost(m: Mat64): boolean {
  for (let k = 0; k < m.data.length; k++) if (!Number.isFinite(m.data[k])) return false;
  return true;
}

export class SOAP extends CurvatureOptimizer<typeof SOAP_OPTIONS> {
  static get className(): string {
    return 'CurvatureSOAP';
  }

  constructor(options: SOAPOptions = {}) {
    super('SOAP', SOAP_OPTIONS, options);
    this.numericState.failedEigenbases = 0;
  }

  /**
   * Q^T of each basis slot, cached while the slot holds the same data (a refresh or setWeights
   * assigns new data, and the transpose is recomputed once). Not state: derived from Q.
   */
  private transposes = new Map<string, { dataId: object; qt: tf.Tensor2D }>();

  private basis(key: string, q: tf.Tensor | undefined): Basis | undefined {
    if (q === undefined) return undefined;
    const cached = this.transposes.get(key);
    if (cached && cached.dataId === q.dataId) return { q: q as tf.Tensor2D, qt: cached.qt };
    cached?.qt.dispose();
    const qt = tf.keep(tf.transpose(q)) as tf.Tensor2D;
    this.transposes.set(key, { dataId: q.dataId, qt });
    return { q: q as tf.Tensor2D, qt };
  }

  override dispose(): void {
    for (const c of this.transposes.values()) c.qt.dispose();
    this.transposes.clear();
    super.dispose();
  }

  /** Eigendecompositions or QR refreshes that failed and kept the previous basis. */
  get failedEigenbases(): number {
    return this.numericState.failedEigenbases ?? 0;
  }

  protected override updateVariable(
    param: tf.Variable,
    grad: tf.Tensor,
    state: SlotState,
    ctx: StepContext,
  ): tf.Tensor {
    const o = this.options;
    const layout = soapLayout(param.shape, o);
    const G = tf.reshape(grad, layout.merged);
    const shampooBeta = o.shampooBeta ?? o.beta2;
    const c = state.step;
    const qs = (): (Basis | undefined)[] =>
      layout.factored.map((f, i) => (f ? this.basis(`${param.name}/Q${i}`, state.get(`Q${i}`)) : undefined));

    const updateStatistics = (): void => {
      layout.factored.forEach((f, i) => {
        if (!f) return;
        const gram = modeGram(G, i);
        const prev = state.get(`GG${i}`);
        state.set(
          `GG${i}`,
          prev ? tf.add(tf.mul(prev, shampooBeta), tf.mul(gram, 1 - shampooBeta)) : tf.mul(gram, 1 - shampooBeta),
        );
      });
    };

    if (c === 0) {
      updateStatistics();
      state.set('expAvg', tf.zerosLike(param));
      state.set('expAvgSq', tf.zerosLike(param));
      layout.factored.forEach((f, i) => {
        if (!f) return;
        const d = layout.merged[i];
        let q: Mat64;
        try {
          const gg = hostMat(state.get(`GG${i}`)!);
          if (!allFiniteHost(gg)) throw new Error('non-finite statistic');
          q = descendingEigenbasis(gg);
        } catch {
          this.numericState.failedEigenbases = this.failedEigenbases + 1;
          q = { rows: d, cols: d, data: new Float64Array(d * d).map((_, k) => (k % (d + 1) === 0 ? 1 : 0)) };
        }
        state.set(`Q${i}`, tf.tensor2d(Float32Array.from(q.data), [d, d]));
      });
      // A new tensor: the base assigns the result to the variable (a self-assign loops in tfjs).
      return tf.clone(param);
    }

    const t = c;
    const { beta1, beta2 } = o;
    const lr = ctx.learningRate;
    const gp = modeProducts(G, qs(), false);
    const m = tf.add(tf.mul(tf.reshape(state.get('expAvg')!, layout.merged), beta1), tf.mul(gp, 1 - beta1));
    const v = tf.add(
      tf.mul(tf.reshape(state.get('expAvgSq')!, layout.merged), beta2),
      tf.mul(tf.square(gp), 1 - beta2),
    );
    let u = modeProducts(tf.div(m, tf.add(tf.sqrt(v), o.eps)), qs(), true);
    if (o.normalizeGrads) u = tf.div(u, tf.add(tf.sqrt(tf.mean(tf.square(u))), 1e-30));
    const stepSize = o.correctBias ? (lr * Math.sqrt(1 - beta2 ** t)) / (1 - beta1 ** t) : lr;
    let p = tf.sub(param, tf.mul(tf.reshape(u, param.shape), stepSize));
    if (o.weightDecay > 0) p = tf.mul(p, 1 - lr * o.weightDecay);

    updateStatistics();
    let mOut: tf.Tensor = m;
    let vOut: tf.Tensor = v;
    if (t % o.preconditionFrequency === 0 && layout.factored.some((f) => f)) {
      const oldQs = qs();
      const newQs = [...oldQs];
      layout.factored.forEach((f, i) => {
        if (!f) return;
        try {
          const gg = hostMat(state.get(`GG${i}`)!);
          if (!allFiniteHost(gg)) throw new Error('non-finite statistic');
          const r = refreshEigenbasis(gg, hostMat(oldQs[i]!.q));
          if (!allFiniteHost(r.q)) throw new Error('non-finite basis');
          const d = layout.merged[i];
          const q = tf.tensor2d(Float32Array.from(r.q.data), [d, d]);
          newQs[i] = { q, qt: tf.transpose(q) };
          vOut = tf.gather(vOut, tf.tensor1d(r.order, 'int32'), i);
        } catch {
          this.numericState.failedEigenbases = this.failedEigenbases + 1;
        }
      });
      mOut = modeProducts(modeProducts(m, oldQs, true), newQs, false);
      layout.factored.forEach((f, i) => {
        if (f && newQs[i] !== oldQs[i]) state.set(`Q${i}`, newQs[i]!.q);
      });
    }
    state.set('expAvg', tf.reshape(mOut, param.shape));
    state.set('expAvgSq', tf.reshape(vOut, param.shape));
    return p;
  }
}

tf.serialization.registerClass(SOAP);

export const soapEntry = {
  name: 'soap',
  className: SOAP.className,
  description:
    "SOAP: Adam in the eigenbasis of Shampoo's factors, refreshed by power iteration + QR every k steps (Vyas et al. 2024, soap.py)",
  options: optionDocs(SOAP_OPTIONS),
  create: (options: Record<string, unknown>) => new SOAP(options as SOAPOptions),
};
