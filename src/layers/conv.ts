/**
 * The K-FAC curvature block of a 2-D convolution (KFC: Grosse & Martens 2016), NHWC,
 * s = conv(x, W) + b with a kernel W [kh, kw, cin, cout], strides (sh, sw), padding 'same' or
 * 'valid', dilation 1. With p_it the patch of example i at output location t (kh*kw*cin values,
 * ordered (row, column, channel) like the kernel's rows after reshaping it to [kh*kw*cin, cout],
 * with a homogeneous 1 appended for the bias), g_it = n ds_it the per-example loss gradient at
 * the pre-activation s of location t (ds: gradients of the batch-mean loss, scaled 1/n), and
 * |T| = L = Ho*Wo output locations, the Fisher block of vec([W; b]) is approximated by
 *
 *   F ~ L * A_jax (x) G_jax,  A_jax = sum_{i,t} p_it p_it^T / (n L),  G_jax = sum_{i,t} g_it g_it^T / (n L)
 *
 * which is kfac-jax's `Conv2DTwoKroneckerFactored` exactly (curvature_blocks/kronecker_factored.py:
 * compute_inputs_stats / compute_outputs_stats normalise both by batch * num_locations, and
 * `fixed_scale()` = num_locations multiplies the block). Here the scale is folded into G:
 *
 *   A = A_jax,   G = L * G_jax = sum_{i,t} g_it g_it^T / n   (Grosse & Martens' Gamma summed over t)
 *
 * so that (A (x) G + lambda I) is the same matrix and the dense block's pi-adjusted damping
 * (DenseBlock.factoredDamping, pi^2 = (tr A / dim A) / (tr G / dim G)) gives exactly kfac-jax's
 * damped inverse (1/L) (A_jax + pi_jax sqrt(lambda/L) I)^-1 (x) (G_jax + sqrt(lambda/L)/pi_jax I)^-1
 * (pi^2 = pi_jax^2 / L). The stored factor G is therefore L times kfac-jax's; A is the same.
 * tensorflow/kfac's ConvKFCBasicFB (ops/fisher_blocks.py) is the same estimator (F = #locations *
 * kron(E[a a^T], E[ds ds^T]) over examples and locations, damping normalised by #locations),
 * except that it counts locations as H*W / (sh*sw), not the exact number of output positions
 * of 'valid' padding used here and in kfac-jax.
 *
 * Patches are extracted by a depthwise convolution with a one-hot filter (exact: products with 1,
 * sums with 0; see `patches`) for at most `PATCH_ENTRIES` patch entries at a time (chunks of
 * examples), so no more than one mini-batch of patches is ever materialised.
 *
 * The same gradient-matrix layout as DenseBlock ([kh*kw*cin (+1), cout], kernel rows then the
 * bias row) lets the optimizer's step treat both blocks alike; the quadratic model's per-example
 * projections use the layer itself: J_i u = conv(x_i, V) + v_b at every location.
 */
import * as tf from '@tensorflow/tfjs';

/** Upper bound of patch-matrix entries materialised at once in `factorA` (chunks of examples). */
export const PATCH_ENTRIES = 1 << 22;

export type ConvPadding = 'same' | 'valid';

export interface ConvBlockSpec {
  name: string;
  /** Kernel variable [kh, kw, cin, cout] (NHWC convolution). */
  kernel: tf.Variable;
  bias?: tf.Variable;
  strides: [number, number];
  padding: ConvPadding;
}

/** Output size and padding of a 'same'/'valid' convolution along one axis (TensorFlow's rule). */
export function convAxis(
  size: number,
  k: number,
  stride: number,
  padding: ConvPadding,
): { out: number; before: number; after: number } {
  if (padding === 'valid') return { out: Math.max(Math.floor((size - k) / stride) + 1, 0), before: 0, after: 0 };
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + k - size, 0);
  const before = Math.floor(total / 2);
  return { out, before, after: total - before };
}

export class ConvBlock {
  readonly kind = 'conv2d' as const;
  readonly name: string;
  readonly kernel: tf.Variable;
  readonly bias: tf.Variable | undefined;
  readonly strides: [number, number];
  readonly padding: ConvPadding;
  readonly kh: number;
  readonly kw: number;
  readonly cin: number;
  /** Size of A: kh*kw*cin, plus one for the bias. */
  readonly inDim: number;
  /** Size of G: output channels. */
  readonly outDim: number;

  constructor(spec: ConvBlockSpec) {
    if (spec.kernel.rank !== 4) {
      throw new Error(
        `KFAC: conv layer '${spec.name}' needs a rank-4 kernel [kh, kw, cin, cout], got shape [${spec.kernel.shape}]`,
      );
    }
    const [kh, kw, cin, cout] = spec.kernel.shape as [number, number, number, number];
    if (spec.bias !== undefined && (spec.bias.rank !== 1 || spec.bias.shape[0] !== cout)) {
      throw new Error(`KFAC: bias of '${spec.name}' must have shape [${cout}], got [${spec.bias.shape}]`);
    }
    const [sh, sw] = spec.strides;
    if (!Number.isInteger(sh) || !Number.isInteger(sw) || sh < 1 || sw < 1) {
      throw new Error(`KFAC: conv layer '${spec.name}' needs positive integer strides, got [${spec.strides}]`);
    }
    if (spec.padding !== 'same' && spec.padding !== 'valid') {
      throw new Error(
        `KFAC: conv layer '${spec.name}': padding must be 'same' or 'valid', got '${String(spec.padding)}'`,
      );
    }
    this.name = spec.name;
    this.kernel = spec.kernel;
    this.bias = spec.bias;
    this.strides = [sh, sw];
    this.padding = spec.padding;
    [this.kh, this.kw, this.cin] = [kh, kw, cin];
    this.inDim = kh * kw * cin + (spec.bias ? 1 : 0);
    this.outDim = cout;
  }

  /** The geometry as the tape capture matches it (src/layers/capture.ts DenseTarget.conv). */
  get conv(): { strides: [number, number]; padding: ConvPadding } {
    return { strides: this.strides, padding: this.padding };
  }

  get variables(): tf.Variable[] {
    return this.bias ? [this.kernel, this.bias] : [this.kernel];
  }

  /** Output spatial size [Ho, Wo] for an input [n, H, W, cin]. */
  outputSize(h: number, w: number): [number, number] {
    return [
      convAxis(h, this.kh, this.strides[0], this.padding).out,
      convAxis(w, this.kw, this.strides[1], this.padding).out,
    ];
  }

  /**
   * Patches of inputs x [n, H, W, cin] as [n * Ho * Wo, kh*kw*cin] (no bias column), columns
   * ordered (row, column, channel) like the kernel's rows.
   *
   * One depthwise convolution with a one-hot filter [kh, kw, cin, kh*kw] (tap m = i*kw + j picks
   * x[.., r*sh + i - top, q*sw + j - left, c]: exact, products with 1 and sums with 0) gives the
   * patches channel-major, (c, i, j); one transpose reorders them. On wasm this is one XNNPACK
   * kernel (about 1 ms for 100 x 14 x 14 x 1 where padding + kh*kw strided slices + a concat took
   * about 14 ms); its cost, n L cin (kh kw)^2, is kh*kw times the patches' size.
   */
  patches(x: tf.Tensor4D): tf.Tensor2D {
    return tf.tidy(() => {
      const [n, h, w, c] = x.shape;
      const taps = this.kh * this.kw;
      const [ho, wo] = this.outputSize(h, w);
      let p: tf.Tensor;
      if (taps === 1 && this.strides[0] === 1 && this.strides[1] === 1) {
        p = x;
      } else {
        const oneHot = tf.reshape(tf.tile(tf.reshape(tf.eye(taps), [this.kh, this.kw, 1, taps]), [1, 1, c, 1]), [
          this.kh,
          this.kw,
          c,
          taps,
        ]);
        const dw = tf.depthwiseConv2d(x, oneHot as tf.Tensor4D, this.strides, this.padding); // [n, Ho, Wo, c * taps]
        p = taps === 1 ? dw : tf.transpose(tf.reshape(dw, [n * ho * wo, c, taps]), [0, 2, 1]);
      }
      return tf.reshape(p, [n * ho * wo, taps * c]) as tf.Tensor2D;
    });
  }

  /** The layer's input as captured (the projections use the convolution itself). */
  homogeneous(a: tf.Tensor): tf.Tensor {
    return a;
  }

  /**
   * A from a batch of inputs x [n, H, W, cin]: sum of p p^T over examples and locations, divided
   * by n L (kfac-jax's A), accumulated over chunks of examples of at most `maxEntries` patch
   * entries (one example at least).
   */
  factorA(a: tf.Tensor, maxEntries = PATCH_ENTRIES): tf.Tensor2D {
    return tf.tidy(() => {
      const x = a as tf.Tensor4D;
      if (x.rank !== 4 || x.shape[3] !== this.cin) {
        throw new Error(`KFAC: conv layer '${this.name}' expects inputs [n, H, W, ${this.cin}], got [${x.shape}]`);
      }
      const [n, h, w] = x.shape;
      const [ho, wo] = this.outputSize(h, w);
      const perExample = ho * wo * this.inDim;
      const chunk = Math.max(1, Math.min(n, Math.floor(maxEntries / Math.max(perExample, 1))));
      let acc: tf.Tensor2D | undefined;
      for (let start = 0; start < n; start += chunk) {
        const size = Math.min(chunk, n - start);
        const part = tf.tidy(() => {
          const xs = size === n ? x : tf.slice(x, [start, 0, 0, 0], [size, h, w, this.cin]);
          const p = this.patches(xs);
          let pp = tf.matMul(tf.transpose(p), p) as tf.Tensor2D;
          if (this.bias) {
            // The homogeneous column without concatenating it to the patches (a narrow concat is
            // slow on wasm): [P^T P, P^T 1; 1^T P, rows].
            const s = tf.reshape(tf.sum(p, 0), [-1, 1]);
            pp = tf.concat(
              [tf.concat([pp, s], 1), tf.concat([tf.transpose(s), tf.fill([1, 1], p.shape[0])], 1)],
              0,
            ) as tf.Tensor2D;
          }
          return acc === undefined ? pp : (tf.add(acc, pp) as tf.Tensor2D);
        });
        acc?.dispose();
        acc = part;
      }
      return tf.div(acc!, n * ho * wo) as tf.Tensor2D;
    });
  }

  /**
   * G from pre-activation gradients, each [n, Ho*Wo*cout] (rows scaled by 1/batch):
   * batch * sum_{sets} sum_{i,t} ds_it ds_it^T, divided by the number of sets when they are
   * independent samples (`average`). This is L times kfac-jax's G (see the header).
   */
  factorG(ds: tf.Tensor2D[], batch: number, average = true): tf.Tensor2D {
    return tf.tidy(() => {
      let g: tf.Tensor = tf.zeros([this.outDim, this.outDim]);
      for (const d of ds) {
        const r = tf.reshape(d, [-1, this.outDim]);
        g = tf.add(g, tf.matMul(tf.transpose(r), r));
      }
      return tf.mul(g, average ? batch / ds.length : batch) as tf.Tensor2D;
    });
  }

  /** The gradient as the matrix [dW; db] ([inDim, cout]; kernel rows ordered (kh, kw, cin)). */
  toMatrix(kernelPart: tf.Tensor, biasPart: tf.Tensor | undefined): tf.Tensor2D {
    const k = tf.reshape(kernelPart, [this.kh * this.kw * this.cin, this.outDim]) as tf.Tensor2D;
    if (!this.bias) return k;
    const b = biasPart ?? tf.zeros([this.outDim]);
    return tf.concat([k, tf.reshape(b, [1, this.outDim])], 0) as tf.Tensor2D;
  }

  /** Split [dW; db] back into kernel- ([kh, kw, cin, cout]) and bias-shaped tensors. */
  fromMatrix(m: tf.Tensor2D): { kernel: tf.Tensor; bias?: tf.Tensor1D } {
    const rows = this.kh * this.kw * this.cin;
    const kernel = tf.reshape(this.bias ? tf.slice(m, [0, 0], [rows, this.outDim]) : m, this.kernel.shape);
    if (!this.bias) return { kernel };
    return { kernel, bias: tf.reshape(tf.slice(m, [rows, 0], [1, this.outDim]), [this.outDim]) as tf.Tensor1D };
  }

  /** The layer's output change for a direction V ([inDim, cout]) per example: [n, Ho*Wo*cout]. */
  directionalOutput(x: tf.Tensor4D, v: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const { kernel, bias } = this.fromMatrix(v);
      let y: tf.Tensor = tf.conv2d(x, kernel as tf.Tensor4D, this.strides, this.padding);
      if (bias) y = tf.add(y, bias);
      return tf.reshape(y, [x.shape[0], -1]) as tf.Tensor2D;
    });
  }

  /**
   * Per-example projections u_i = sum_t (p_it^T V) . ds_it for cotangent sets stacked as
   * [sets, n, Ho*Wo*cout]: [sets, n]. With ds scaled by 1/batch, V^T F V = batch * sum_i u_i^2.
   */
  projectionStack(a: tf.Tensor, v: tf.Tensor2D, ds: tf.Tensor3D): tf.Tensor2D {
    return tf.tidy(
      () => tf.sum(tf.mul(ds, tf.expandDims(this.directionalOutput(a as tf.Tensor4D, v), 0)), 2) as tf.Tensor2D,
    );
  }

  /** `projectionStack` for a single set: [n]. */
  projections(a: tf.Tensor, v: tf.Tensor2D, ds: tf.Tensor2D): tf.Tensor1D {
    return tf.tidy(() => tf.sum(tf.mul(this.directionalOutput(a as tf.Tensor4D, v), ds), 1) as tf.Tensor1D);
  }
}
