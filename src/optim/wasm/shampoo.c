/*
 * Float32 kernels of Shampoo's per-step work on the wasm and cpu tfjs backends
 * (optimizers/shampoo.ts, via src/optim/shampoo-kernels.ts): the blocks' Gram products with
 * the statistics EMA fused in, the preconditioning products (W_L^T (W_L F W_R^T) W_R, four per
 * block since issue 13: sgemm with strided A covers the transposed factor), and per-block grafting norms,
 * in one module call per parameter instead of dozens of tfjs kernels. 128-bit SIMD (f32x4),
 * 4x8 register tiles; a 128^3 product runs at ~20 GFLOP/s single-threaded here (tfjs-wasm's
 * matMul: ~0.3 ms per call, i.e. ~14 GFLOP/s with its call overhead).
 *
 * Built with src/linalg/wasm/linalg.c by scripts/build-wasm.sh (clang --target=wasm32
 * -nostdlib -O3 -msimd128) and embedded as base64 in src/optim/wasm/shampoo-module.ts.
 * All matrices are row-major float32; strides are in elements.
 */
#include <wasm_simd128.h>

typedef float f32;

/*
 * C[m x n] = alpha * A B + beta * C (beta == 0: C is not read), with A[i][p] = A[i*sar + p*sac]
 * (so A^T B is sar = 1, sac = lda) and B[p][j] = B[p*ldb + j]. upper != 0 (m == n, for
 * symmetric results): 4x8 tiles entirely below the diagonal are skipped; the caller mirrors.
 * Summation over p runs in the same order for C[i][j] and C[j][i], so A = B^T gives an exactly
 * symmetric product.
 */
void sgemm(int m, int n, int k, f32 alpha, const f32 *A, int sar, int sac, const f32 *B, int ldb, f32 beta, f32 *C, int ldc,
           int upper) {
  v128_t va = wasm_f32x4_splat(alpha), vb = wasm_f32x4_splat(beta);
  int i = 0;
  for (; i + 4 <= m; i += 4) {
    int j = 0;
    if (upper) j = (i / 8) * 8;
    for (; j + 8 <= n; j += 8) {
      v128_t c00 = wasm_f32x4_splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
      const f32 *a = A + i * sar;
      const f32 *b = B + j;
      for (int p = 0; p < k; p++) {
        v128_t b0 = wasm_v128_load(b), b1 = wasm_v128_load(b + 4);
        v128_t a0 = wasm_v128_load32_splat(a), a1 = wasm_v128_load32_splat(a + sar);
        v128_t a2 = wasm_v128_load32_splat(a + 2 * sar), a3 = wasm_v128_load32_splat(a + 3 * sar);
        c00 = wasm_f32x4_add(c00, wasm_f32x4_mul(a0, b0));
        c01 = wasm_f32x4_add(c01, wasm_f32x4_mul(a0, b1));
        c10 = wasm_f32x4_add(c10, wasm_f32x4_mul(a1, b0));
        c11 = wasm_f32x4_add(c11, wasm_f32x4_mul(a1, b1));
        c20 = wasm_f32x4_add(c20, wasm_f32x4_mul(a2, b0));
        c21 = wasm_f32x4_add(c21, wasm_f32x4_mul(a2, b1));
        c30 = wasm_f32x4_add(c30, wasm_f32x4_mul(a3, b0));
        c31 = wasm_f32x4_add(c31, wasm_f32x4_mul(a3, b1));
        a += sac;
        b += ldb;
      }
      f32 *c = C + i * ldc + j;
#define STORE(r, x0, x1)                                                                              \
  {                                                                                                   \
    f32 *cr = c + (r) * ldc;                                                                          \
    v128_t o0 = wasm_f32x4_mul(va, x0), o1 = wasm_f32x4_mul(va, x1);                                  \
    if (beta != 0) {                                                                                  \
      o0 = wasm_f32x4_add(o0, wasm_f32x4_mul(vb, wasm_v128_load(cr)));                                \
      o1 = wasm_f32x4_add(o1, wasm_f32x4_mul(vb, wasm_v128_load(cr + 4)));                            \
    }                                                                                                 \
    wasm_v128_store(cr, o0);                                                                          \
    wasm_v128_store(cr + 4, o1);                                                                      \
  }
      STORE(0, c00, c01)
      STORE(1, c10, c11)
      STORE(2, c20, c21)
      STORE(3, c30, c31)
#undef STORE
    }
    for (; j < n; j++) {
      for (int r = 0; r < 4; r++) {
        f32 s = 0;
        for (int p = 0; p < k; p++) s += A[(i + r) * sar + p * sac] * B[p * ldb + j];
        f32 *cij = C + (i + r) * ldc + j;
        *cij = beta != 0 ? alpha * s + beta * *cij : alpha * s;
      }
    }
  }
  for (; i < m; i++) {
    for (int j = 0; j < n; j++) {
      f32 s = 0;
      for (int p = 0; p < k; p++) s += A[i * sar + p * sac] * B[p * ldb + j];
      f32 *cij = C + i * ldc + j;
      *cij = beta != 0 ? alpha * s + beta * *cij : alpha * s;
    }
  }
}

/* C[i][j] = C[j][i] for i > j (n x n, stride ldc). */
void mirror_upper(f32 *C, int n, int ldc) {
  for (int i = 1; i < n; i++)
    for (int j = 0; j < i; j++) C[i * ldc + j] = C[j * ldc + i];
}

/* dst[cols x rows] = src[rows x cols]^T (src stride lds, dst dense); 4x4 SIMD tiles. */
void transpose(const f32 *src, int lds, int rows, int cols, f32 *dst) {
  int r = 0;
  for (; r + 4 <= rows; r += 4) {
    int c = 0;
    for (; c + 4 <= cols; c += 4) {
      const f32 *s = src + r * lds + c;
      v128_t a0 = wasm_v128_load(s), a1 = wasm_v128_load(s + lds), a2 = wasm_v128_load(s + 2 * lds), a3 = wasm_v128_load(s + 3 * lds);
      v128_t t0 = wasm_i32x4_shuffle(a0, a1, 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(a2, a3, 0, 4, 1, 5);
      v128_t t2 = wasm_i32x4_shuffle(a0, a1, 2, 6, 3, 7), t3 = wasm_i32x4_shuffle(a2, a3, 2, 6, 3, 7);
      f32 *d = dst + c * rows + r;
      wasm_v128_store(d, wasm_i32x4_shuffle(t0, t1, 0, 1, 4, 5));
      wasm_v128_store(d + rows, wasm_i32x4_shuffle(t0, t1, 2, 3, 6, 7));
      wasm_v128_store(d + 2 * rows, wasm_i32x4_shuffle(t2, t3, 0, 1, 4, 5));
      wasm_v128_store(d + 3 * rows, wasm_i32x4_shuffle(t2, t3, 2, 3, 6, 7));
    }
    for (; c < cols; c++)
      for (int q = 0; q < 4; q++) dst[c * rows + r + q] = src[(r + q) * lds + c];
  }
  for (; r < rows; r++)
    for (int c = 0; c < cols; c++) dst[c * rows + r] = src[r * lds + c];
}

/* dst[rows x cols] (stride ldd) = src (stride lds). */
void copy2d(const f32 *src, int lds, int rows, int cols, f32 *dst, int ldd) {
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < cols; c++) dst[r * ldd + c] = src[r * lds + c];
}

/* Sum of squares of a rows x cols block (stride ldx), accumulated in float64. */
double sumsq(const f32 *x, int ldx, int rows, int cols) {
  double total = 0;
  for (int r = 0; r < rows; r++) {
    const f32 *row = x + r * ldx;
    v128_t acc = wasm_f32x4_splat(0);
    int c = 0;
    for (; c + 4 <= cols; c += 4) {
      v128_t v = wasm_v128_load(row + c);
      acc = wasm_f32x4_add(acc, wasm_f32x4_mul(v, v));
    }
    double s = (double)wasm_f32x4_extract_lane(acc, 0) + (double)wasm_f32x4_extract_lane(acc, 1) +
               (double)wasm_f32x4_extract_lane(acc, 2) + (double)wasm_f32x4_extract_lane(acc, 3);
    for (; c < cols; c++) s += (double)row[c] * (double)row[c];
    total += s;
  }
  return total;
}

/* x *= s over a rows x cols block (stride ldx). */
void scale2d(f32 *x, int ldx, int rows, int cols, f32 s) {
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < cols; c++) x[r * ldx + c] *= s;
}

/*
 * The elementwise first-order part of a step, one pass over n elements (same float32 operations
 * and order as the tfjs ops in src/optim/grafting.ts and src/optim/transforms.ts):
 *   a  = ka * a + kg * (g * g)          grafting accumulator (a == 0: none)
 *   m  = b1 * m + c1 * g                first moment (m == 0: none, f = g)
 *   f  = m / fdiv                       (fdiv = 1 when not bias-corrected)
 *   gr = f / (sqrt(a / adiv) + eps)     grafted direction (a == 0: gr = f; adiv = 1 unless Adam)
 */
void moments(int n, const f32 *g, f32 *a, f32 ka, f32 kg, f32 adiv, f32 eps, f32 *m, f32 b1, f32 c1, f32 fdiv, f32 *f, f32 *gr) {
  /* x / 1 is exact, so fdiv == 1 / adiv == 1 need no special case. */
  v128_t vb1 = wasm_f32x4_splat(b1), vc1 = wasm_f32x4_splat(c1), vfd = wasm_f32x4_splat(fdiv);
  v128_t vka = wasm_f32x4_splat(ka), vkg = wasm_f32x4_splat(kg), vad = wasm_f32x4_splat(adiv), veps = wasm_f32x4_splat(eps);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    v128_t gi = wasm_v128_load(g + i);
    v128_t fi = gi;
    if (m) {
      v128_t mi = wasm_f32x4_add(wasm_f32x4_mul(vb1, wasm_v128_load(m + i)), wasm_f32x4_mul(vc1, gi));
      wasm_v128_store(m + i, mi);
      fi = wasm_f32x4_div(mi, vfd);
    }
    wasm_v128_store(f + i, fi);
    if (a) {
      v128_t ai = wasm_f32x4_add(wasm_f32x4_mul(vka, wasm_v128_load(a + i)), wasm_f32x4_mul(vkg, wasm_f32x4_mul(gi, gi)));
      wasm_v128_store(a + i, ai);
      wasm_v128_store(gr + i, wasm_f32x4_div(fi, wasm_f32x4_add(wasm_f32x4_sqrt(wasm_f32x4_div(ai, vad)), veps)));
    } else {
      wasm_v128_store(gr + i, fi);
    }
  }
  for (; i < n; i++) {
    f32 gi = g[i];
    f32 fi = gi;
    if (m) {
      f32 mi = b1 * m[i] + c1 * gi;
      m[i] = mi;
      fi = mi / fdiv;
    }
    f[i] = fi;
    if (a) {
      f32 ai = ka * a[i] + kg * (gi * gi);
      a[i] = ai;
      gr[i] = fi / (__builtin_sqrtf(ai / adiv) + eps);
    } else {
      gr[i] = fi;
    }
  }
}
