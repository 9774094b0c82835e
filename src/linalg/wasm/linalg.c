/*
 * float64 kernels of src/linalg compiled to WebAssembly with 128-bit SIMD (f64x2).
 * Built by scripts/build-wasm.sh (clang 14 + lld, --target=wasm32 -msimd128); the result is
 * embedded as base64 in src/linalg/wasm/module.ts so that no compiler and no file access is
 * needed at run time. src/linalg/kernels.ts is the TypeScript side (memory layout, fallback).
 *
 * No libc: no allocation here; the caller passes pointers into linear memory that it has grown
 * to size. All matrices are row-major float64.
 *
 *  - tred:     Householder tridiagonalisation (EISPACK tred2 restructured for rows), with the
 *              symmetric rank-2 update of step k fused with the A22 v product of step k+1, so
 *              the trailing upper triangle is streamed once per step.
 *  - accumq:   Q^T = H_{n-3} ... H_0 from the stored Householder vectors (blocked: groups of
 *              NB reflectors are applied to one row at a time while the row stays in L1).
 *  - tql2:     implicit QL; the rotations are recorded and applied in batches to rows of V^T,
 *              column strip by column strip (8 wide, running row in registers), so a strip
 *              stays in cache across many sweeps (the plain tql2 streams V^T once per sweep).
 *  - chol, trinv: Cholesky-Crout and L^{-1} on rows (SIMD dot products / axpys).
 *  - gemm_abt: C = A B^T (optionally only the blocks touching the upper triangle), 4x2
 *              register tile, f64x2 along the inner dimension, tiled for L1/L2.
 */
#include <wasm_simd128.h>

typedef double f64;
#define EXPORT __attribute__((visibility("default")))

static inline f64 fabs_(f64 x) { return __builtin_fabs(x); }
static inline f64 sqrt_(f64 x) { return __builtin_sqrt(x); }
static inline f64 hsum(v128_t v) { return wasm_f64x2_extract_lane(v, 0) + wasm_f64x2_extract_lane(v, 1); }

static f64 hypot_(f64 a, f64 b) {
  f64 x = fabs_(a), y = fabs_(b);
  if (x > y) { f64 r = y / x; return x * sqrt_(1 + r * r); }
  if (y == 0) return 0;
  f64 r = x / y;
  return y * sqrt_(1 + r * r);
}

static f64 dot(const f64 *x, const f64 *y, int n) {
  v128_t s0 = wasm_f64x2_splat(0), s1 = wasm_f64x2_splat(0);
  int t = 0;
  for (; t + 4 <= n; t += 4) {
    s0 = wasm_f64x2_add(s0, wasm_f64x2_mul(wasm_v128_load(x + t), wasm_v128_load(y + t)));
    s1 = wasm_f64x2_add(s1, wasm_f64x2_mul(wasm_v128_load(x + t + 2), wasm_v128_load(y + t + 2)));
  }
  f64 s = hsum(wasm_f64x2_add(s0, s1));
  for (; t < n; t++) s += x[t] * y[t];
  return s;
}

/* y -= a x */
static void axmy(f64 a, const f64 *x, f64 *y, int n) {
  v128_t va = wasm_f64x2_splat(a);
  int t = 0;
  for (; t + 4 <= n; t += 4) {
    wasm_v128_store(y + t, wasm_f64x2_sub(wasm_v128_load(y + t), wasm_f64x2_mul(va, wasm_v128_load(x + t))));
    wasm_v128_store(y + t + 2, wasm_f64x2_sub(wasm_v128_load(y + t + 2), wasm_f64x2_mul(va, wasm_v128_load(x + t + 2))));
  }
  for (; t < n; t++) y[t] -= a * x[t];
}

/*
 * Row segment r[0..len): r -= pv * pw + pwi * pvv (pending rank-2 update, skipped when
 * upd == 0), then s = sum r v, acc += r * vi. Returns s.
 */
static f64 fused_row(f64 *r, const f64 *pvv, const f64 *pw, f64 pvi, f64 pwi, int upd, const f64 *v, f64 *acc, f64 vi, int len) {
  v128_t s0 = wasm_f64x2_splat(0), s1 = wasm_f64x2_splat(0);
  v128_t vvi = wasm_f64x2_splat(vi), vpvi = wasm_f64x2_splat(pvi), vpwi = wasm_f64x2_splat(pwi);
  int t = 0;
  f64 s = 0;
  if (upd) {
    for (; t + 4 <= len; t += 4) {
      v128_t a0 = wasm_v128_load(r + t), a1 = wasm_v128_load(r + t + 2);
      a0 = wasm_f64x2_sub(a0, wasm_f64x2_add(wasm_f64x2_mul(vpvi, wasm_v128_load(pw + t)), wasm_f64x2_mul(vpwi, wasm_v128_load(pvv + t))));
      a1 = wasm_f64x2_sub(a1, wasm_f64x2_add(wasm_f64x2_mul(vpvi, wasm_v128_load(pw + t + 2)), wasm_f64x2_mul(vpwi, wasm_v128_load(pvv + t + 2))));
      wasm_v128_store(r + t, a0);
      wasm_v128_store(r + t + 2, a1);
      s0 = wasm_f64x2_add(s0, wasm_f64x2_mul(a0, wasm_v128_load(v + t)));
      s1 = wasm_f64x2_add(s1, wasm_f64x2_mul(a1, wasm_v128_load(v + t + 2)));
      wasm_v128_store(acc + t, wasm_f64x2_add(wasm_v128_load(acc + t), wasm_f64x2_mul(a0, vvi)));
      wasm_v128_store(acc + t + 2, wasm_f64x2_add(wasm_v128_load(acc + t + 2), wasm_f64x2_mul(a1, vvi)));
    }
    s = hsum(wasm_f64x2_add(s0, s1));
    for (; t < len; t++) {
      f64 a = r[t] - (pvi * pw[t] + pwi * pvv[t]);
      r[t] = a;
      s += a * v[t];
      acc[t] += a * vi;
    }
  } else {
    for (; t + 4 <= len; t += 4) {
      v128_t a0 = wasm_v128_load(r + t), a1 = wasm_v128_load(r + t + 2);
      s0 = wasm_f64x2_add(s0, wasm_f64x2_mul(a0, wasm_v128_load(v + t)));
      s1 = wasm_f64x2_add(s1, wasm_f64x2_mul(a1, wasm_v128_load(v + t + 2)));
      wasm_v128_store(acc + t, wasm_f64x2_add(wasm_v128_load(acc + t), wasm_f64x2_mul(a0, vvi)));
      wasm_v128_store(acc + t + 2, wasm_f64x2_add(wasm_v128_load(acc + t + 2), wasm_f64x2_mul(a1, vvi)));
    }
    s = hsum(wasm_f64x2_add(s0, s1));
    for (; t < len; t++) {
      f64 a = r[t];
      s += a * v[t];
      acc[t] += a * vi;
    }
  }
  return s;
}

/* r[0..len) -= pvi * pw + pwi * pvv */
static void rank2_row(f64 *r, const f64 *pvv, const f64 *pw, f64 pvi, f64 pwi, int len) {
  v128_t vpvi = wasm_f64x2_splat(pvi), vpwi = wasm_f64x2_splat(pwi);
  int t = 0;
  for (; t + 2 <= len; t += 2) {
    v128_t a0 = wasm_v128_load(r + t);
    a0 = wasm_f64x2_sub(a0, wasm_f64x2_add(wasm_f64x2_mul(vpvi, wasm_v128_load(pw + t)), wasm_f64x2_mul(vpwi, wasm_v128_load(pvv + t))));
    wasm_v128_store(r + t, a0);
  }
  for (; t < len; t++) r[t] -= pvi * pw[t] + pwi * pvv[t];
}

/*
 * Householder tridiagonalisation of the symmetric n x n matrix a (upper triangle used and
 * overwritten). Outputs d (diagonal), e (e[k] = T[k+1][k], e[n-1] = 0), beta (H_k = I - beta_k
 * v_k v_k^T with v_k = a[k][k+1..n-1], beta_k = 0 for H_k = I). w1, w2: n scratch doubles each.
 */
EXPORT void tred(f64 *a, int n, f64 *d, f64 *e, f64 *beta, f64 *w1, f64 *w2) {
  f64 *p = w1;      /* w of the current step */
  f64 *pw = w2;     /* w of the pending (previous) step */
  const f64 *pv = 0; /* v of the pending step (row k-1 of a) */
  int pending = 0;
  /* A column whose off-diagonal part is below 2^-100 max|a_ij| is taken as reduced (H = I), a
     perturbation far below rounding (QL itself deflates at eps ||T||). Without it, a rank-
     deficient matrix (a Gram matrix with a many-fold zero eigenvalue) leaves round-off residue
     in its null space that every further step shrinks by ~eps, into subnormals (slow) and to
     1/(sigma |v0|) overflowing (non-finite eigenvalues for max|a_ij| below ~1e-6). */
  f64 amax = 0;
  for (int i = 0; i < n; i++)
    for (int j = i; j < n; j++) { f64 t = fabs_(a[(long)i * n + j]); if (t > amax) amax = t; }
  const f64 negligible = amax * 7.888609052210118e-31; /* 2^-100 */
  for (int k = 0; k < n - 2; k++) {
    f64 *rk = a + (long)k * n;
    if (pending) rank2_row(rk + k, pv + k, pw + k, pv[k], pw[k], n - k);
    d[k] = rk[k];
    f64 scale = 0;
    for (int j = k + 1; j < n; j++) { f64 t = fabs_(rk[j]); if (t > scale) scale = t; }
    f64 sigma2 = 0;
    if (scale > 0) for (int j = k + 2; j < n; j++) { f64 t = rk[j] / scale; sigma2 += t * t; }
    f64 x0 = rk[k + 1];
    if (scale <= negligible || sigma2 == 0) {
      e[k] = x0;
      beta[k] = 0;
      /* still owe the pending update to rows k+1..n-1 */
      if (pending) {
        for (int i = k + 1; i < n; i++) {
          f64 *ri = a + (long)i * n;
          rank2_row(ri + i, pv + i, pw + i, pv[i], pw[i], n - i);
        }
      }
      pending = 0;
      continue;
    }
    f64 x0s = x0 / scale;
    f64 sigma = sqrt_(x0s * x0s + sigma2) * scale;
    f64 alpha = x0 >= 0 ? -sigma : sigma;
    f64 v0 = x0 - alpha;
    /* v scaled by 1/sigma (entries <= 1, v0/sigma in [1, 2]) and beta = sigma/|v0| in [1/2, 1]:
       the same H = I - beta v v^T at any scale of the input (1/(sigma |v0|) overflows for
       sigma below ~1e-154) */
    f64 rs = 1 / sigma;
    if (rs <= 1e300) {
      for (int j = k + 2; j < n; j++) rk[j] *= rs;
    } else {
      for (int j = k + 2; j < n; j++) rk[j] /= sigma;
    }
    rk[k + 1] = v0 / sigma;
    f64 b = sigma / fabs_(v0);
    beta[k] = b;
    e[k] = alpha;
    const f64 *v = rk; /* v[j], j = k+1..n-1 */
    for (int i = k + 1; i < n; i++) p[i] = 0;
    for (int i = k + 1; i < n; i++) {
      f64 *ri = a + (long)i * n;
      f64 vi = v[i];
      f64 s;
      if (pending) {
        f64 aii = ri[i] - 2 * pv[i] * pw[i];
        ri[i] = aii;
        s = aii * vi + fused_row(ri + i + 1, pv + i + 1, pw + i + 1, pv[i], pw[i], 1, v + i + 1, p + i + 1, vi, n - i - 1);
      } else {
        s = ri[i] * vi + fused_row(ri + i + 1, 0, 0, 0, 0, 0, v + i + 1, p + i + 1, vi, n - i - 1);
      }
      p[i] += s;
    }
    f64 pvs = 0;
    for (int i = k + 1; i < n; i++) { p[i] *= b; pvs += p[i] * v[i]; }
    f64 K = 0.5 * b * pvs;
    for (int i = k + 1; i < n; i++) p[i] -= K * v[i];
    /* pending <- (v, p); swap buffers */
    f64 *tmp = pw; pw = p; p = tmp;
    pv = v;
    pending = 1;
  }
  if (pending) {
    for (int i = (n >= 2 ? n - 2 : 0); i < n; i++) {
      f64 *ri = a + (long)i * n;
      rank2_row(ri + i, pv + i, pw + i, pv[i], pw[i], n - i);
    }
  }
  if (n >= 2) {
    d[n - 2] = a[(long)(n - 2) * n + n - 2];
    e[n - 2] = a[(long)(n - 2) * n + n - 1];
  }
  d[n - 1] = a[(long)(n - 1) * n + n - 1];
  e[n - 1] = 0;
}

/*
 * qt (n x n, preset to the identity by the caller) <- H_{n-3} ... H_0, i.e. M <- M H_k for
 * k = n-3 down to 0 on rows k+1..n-1. Reflectors are applied in groups of NB (k descending)
 * row by row: for row i the group's reflectors are applied in order while the row is in L1.
 */
#define NB 16
EXPORT void accumq(const f64 *a, int n, const f64 *beta, f64 *qt) {
  for (int kh = n - 3; kh >= 0; kh -= NB) {
    int kl = kh - NB + 1;
    if (kl < 0) kl = 0;
    /* rows i >= kl+1 can be touched by some reflector of the group */
    for (int i = kl + 1; i < n; i++) {
      f64 *ri = qt + (long)i * n;
      for (int k = kh; k >= kl; k--) {
        f64 b = beta[k];
        if (b == 0 || i < k + 1) continue;
        const f64 *v = a + (long)k * n;
        f64 s = dot(ri + k + 1, v + k + 1, n - k - 1) * b;
        if (s != 0) axmy(s, v + k + 1, ri + k + 1, n - k - 1);
      }
    }
  }
}

/*
 * Apply recorded QL sweeps to the rows of vt (stride ld): sweep q acts on rows l..m
 * (sw[3q], sw[3q+1]) with rotations rc/rs[sw[3q+2] + (m-1-i)] for i = m-1 down to l. Column
 * strips of 16 (then 8, then 1) are processed with the running row in registers (16 wide: 8
 * independent dependency chains, 25% faster than 8 wide); each strip stays in L1/L2 while all
 * recorded sweeps pass over it, instead of streaming the whole of vt once per sweep.
 */
#define ROT(k) \
  { \
    v128_t y = wasm_v128_load(ri + 2 * k); \
    wasm_v128_store(rn + 2 * k, wasm_f64x2_add(wasm_f64x2_mul(s, y), wasm_f64x2_mul(c, h##k))); \
    h##k = wasm_f64x2_sub(wasm_f64x2_mul(c, y), wasm_f64x2_mul(s, h##k)); \
  }
static void flush_sweeps(f64 *vt, int ld, int n, int nsw, const int *sw, const f64 *rc, const f64 *rs) {
  int c0 = 0;
  for (; c0 + 16 <= n; c0 += 16) {
    for (int q = 0; q < nsw; q++) {
      int l = sw[3 * q], m = sw[3 * q + 1];
      const f64 *cq = rc + sw[3 * q + 2], *sq = rs + sw[3 * q + 2];
      const f64 *rm = vt + (long)m * ld + c0;
      v128_t h0 = wasm_v128_load(rm), h1 = wasm_v128_load(rm + 2), h2 = wasm_v128_load(rm + 4), h3 = wasm_v128_load(rm + 6);
      v128_t h4 = wasm_v128_load(rm + 8), h5 = wasm_v128_load(rm + 10), h6 = wasm_v128_load(rm + 12), h7 = wasm_v128_load(rm + 14);
      for (int i = m - 1, r = 0; i >= l; i--, r++) {
        v128_t c = wasm_f64x2_splat(cq[r]), s = wasm_f64x2_splat(sq[r]);
        f64 *ri = vt + (long)i * ld + c0;
        f64 *rn = ri + ld;
        ROT(0) ROT(1) ROT(2) ROT(3) ROT(4) ROT(5) ROT(6) ROT(7)
      }
      f64 *rl = vt + (long)l * ld + c0;
      wasm_v128_store(rl, h0);
      wasm_v128_store(rl + 2, h1);
      wasm_v128_store(rl + 4, h2);
      wasm_v128_store(rl + 6, h3);
      wasm_v128_store(rl + 8, h4);
      wasm_v128_store(rl + 10, h5);
      wasm_v128_store(rl + 12, h6);
      wasm_v128_store(rl + 14, h7);
    }
  }
  for (; c0 + 8 <= n; c0 += 8) {
    for (int q = 0; q < nsw; q++) {
      int l = sw[3 * q], m = sw[3 * q + 1];
      const f64 *cq = rc + sw[3 * q + 2], *sq = rs + sw[3 * q + 2];
      const f64 *rm = vt + (long)m * ld + c0;
      v128_t h0 = wasm_v128_load(rm), h1 = wasm_v128_load(rm + 2), h2 = wasm_v128_load(rm + 4), h3 = wasm_v128_load(rm + 6);
      for (int i = m - 1, r = 0; i >= l; i--, r++) {
        v128_t c = wasm_f64x2_splat(cq[r]), s = wasm_f64x2_splat(sq[r]);
        f64 *ri = vt + (long)i * ld + c0;
        f64 *rn = ri + ld;
        v128_t y0 = wasm_v128_load(ri), y1 = wasm_v128_load(ri + 2), y2 = wasm_v128_load(ri + 4), y3 = wasm_v128_load(ri + 6);
        wasm_v128_store(rn, wasm_f64x2_add(wasm_f64x2_mul(s, y0), wasm_f64x2_mul(c, h0)));
        wasm_v128_store(rn + 2, wasm_f64x2_add(wasm_f64x2_mul(s, y1), wasm_f64x2_mul(c, h1)));
        wasm_v128_store(rn + 4, wasm_f64x2_add(wasm_f64x2_mul(s, y2), wasm_f64x2_mul(c, h2)));
        wasm_v128_store(rn + 6, wasm_f64x2_add(wasm_f64x2_mul(s, y3), wasm_f64x2_mul(c, h3)));
        h0 = wasm_f64x2_sub(wasm_f64x2_mul(c, y0), wasm_f64x2_mul(s, h0));
        h1 = wasm_f64x2_sub(wasm_f64x2_mul(c, y1), wasm_f64x2_mul(s, h1));
        h2 = wasm_f64x2_sub(wasm_f64x2_mul(c, y2), wasm_f64x2_mul(s, h2));
        h3 = wasm_f64x2_sub(wasm_f64x2_mul(c, y3), wasm_f64x2_mul(s, h3));
      }
      f64 *rl = vt + (long)l * ld + c0;
      wasm_v128_store(rl, h0);
      wasm_v128_store(rl + 2, h1);
      wasm_v128_store(rl + 4, h2);
      wasm_v128_store(rl + 6, h3);
    }
  }
  for (; c0 < n; c0++) {
    for (int q = 0; q < nsw; q++) {
      int l = sw[3 * q], m = sw[3 * q + 1];
      const f64 *cq = rc + sw[3 * q + 2], *sq = rs + sw[3 * q + 2];
      f64 h = vt[(long)m * ld + c0];
      for (int i = m - 1, r = 0; i >= l; i--, r++) {
        f64 c = cq[r], s = sq[r];
        f64 *ri = vt + (long)i * ld + c0;
        f64 y = *ri;
        ri[ld] = s * y + c * h;
        h = c * y - s * h;
      }
      vt[(long)l * ld + c0] = h;
    }
  }
}

/*
 * Implicit QL (tql2) on the tridiagonal (d, e) with the rotations applied to the rows of vt
 * (row stride ld >= n). The scalar QL recurrence does not read vt, so rotations are recorded
 * (up to cap >= n of them: rc, rs hold cap doubles, sw 3 * cap ints) and applied in batches
 * by flush_sweeps. Returns 0, or l + 1 if eigenvalue l did not converge in 60 sweeps.
 */
EXPORT int tql2(f64 *d, f64 *e, f64 *vt, int ld, int n, f64 *rc, f64 *rs, int *sw, int cap) {
  f64 f = 0, tst1 = 0;
  const f64 eps = 2.220446049250313e-16;
  int nsw = 0, pos = 0;
  for (int l = 0; l < n; l++) {
    f64 t = fabs_(d[l]) + fabs_(e[l]);
    if (t > tst1) tst1 = t;
    int m = l;
    while (m < n - 1) {
      if (fabs_(e[m]) <= eps * tst1) break;
      m++;
    }
    if (m > l) {
      int iter = 0;
      do {
        if (++iter > 60) return l + 1;
        if (pos + (m - l) > cap) {
          flush_sweeps(vt, ld, n, nsw, sw, rc, rs);
          nsw = 0;
          pos = 0;
        }
        f64 g = d[l];
        f64 p = (d[l + 1] - g) / (2 * e[l]);
        f64 r = hypot_(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        f64 dl1 = d[l + 1];
        f64 h = g - d[l];
        for (int i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        p = d[m];
        f64 c = 1, c2 = 1, c3 = 1, s = 0, s2 = 0;
        f64 el1 = e[l + 1];
        sw[3 * nsw] = l;
        sw[3 * nsw + 1] = m;
        sw[3 * nsw + 2] = pos;
        nsw++;
        for (int i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = hypot_(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          rc[pos] = c;
          rs[pos] = s;
          pos++;
        }
        p = -s * s2 * c3 * el1 * e[l] / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (fabs_(e[l]) > eps * tst1);
    }
    d[l] = d[l] + f;
    e[l] = 0;
  }
  flush_sweeps(vt, ld, n, nsw, sw, rc, rs);
  return 0;
}

/* 4x2 block of C += A[i0..i0+4) . B[j0..j0+2) over kc inner entries (rows of stride k). */
static inline void micro4x2(const f64 *a, const f64 *b, f64 *c, int k, int ldc, int kc) {
  const f64 *a0 = a, *a1 = a + k, *a2 = a + 2 * k, *a3 = a + 3 * k;
  const f64 *b0 = b, *b1 = b + k;
  v128_t s00 = wasm_f64x2_splat(0), s01 = s00, s10 = s00, s11 = s00, s20 = s00, s21 = s00, s30 = s00, s31 = s00;
  int t = 0;
  for (; t + 2 <= kc; t += 2) {
    v128_t x0 = wasm_v128_load(a0 + t), x1 = wasm_v128_load(a1 + t), x2 = wasm_v128_load(a2 + t), x3 = wasm_v128_load(a3 + t);
    v128_t y0 = wasm_v128_load(b0 + t), y1 = wasm_v128_load(b1 + t);
    s00 = wasm_f64x2_add(s00, wasm_f64x2_mul(x0, y0));
    s01 = wasm_f64x2_add(s01, wasm_f64x2_mul(x0, y1));
    s10 = wasm_f64x2_add(s10, wasm_f64x2_mul(x1, y0));
    s11 = wasm_f64x2_add(s11, wasm_f64x2_mul(x1, y1));
    s20 = wasm_f64x2_add(s20, wasm_f64x2_mul(x2, y0));
    s21 = wasm_f64x2_add(s21, wasm_f64x2_mul(x2, y1));
    s30 = wasm_f64x2_add(s30, wasm_f64x2_mul(x3, y0));
    s31 = wasm_f64x2_add(s31, wasm_f64x2_mul(x3, y1));
  }
  f64 r00 = hsum(s00), r01 = hsum(s01), r10 = hsum(s10), r11 = hsum(s11);
  f64 r20 = hsum(s20), r21 = hsum(s21), r30 = hsum(s30), r31 = hsum(s31);
  for (; t < kc; t++) {
    f64 y0 = b0[t], y1 = b1[t];
    r00 += a0[t] * y0; r01 += a0[t] * y1;
    r10 += a1[t] * y0; r11 += a1[t] * y1;
    r20 += a2[t] * y0; r21 += a2[t] * y1;
    r30 += a3[t] * y0; r31 += a3[t] * y1;
  }
  c[0] += r00; c[1] += r01;
  c[ldc] += r10; c[ldc + 1] += r11;
  c[2 * ldc] += r20; c[2 * ldc + 1] += r21;
  c[3 * ldc] += r30; c[3 * ldc + 1] += r31;
}

/*
 * C (m x n, zeroed by the caller) += A (m x k) B^T (B is n x k). upper != 0: only blocks with
 * some j >= i are computed (entries below the diagonal inside such blocks may be computed too;
 * the caller mirrors the upper triangle).
 */
EXPORT void gemm_abt(const f64 *A, const f64 *B, f64 *C, int m, int n, int k, int upper) {
  const int KC = 256, JB = 48;
  for (int t0 = 0; t0 < k; t0 += KC) {
    int kc = k - t0 < KC ? k - t0 : KC;
    for (int j0 = 0; j0 < n; j0 += JB) {
      int j1 = n - j0 < JB ? n : j0 + JB;
      for (int i = 0; i < m; i += 4) {
        int ib = m - i < 4 ? m - i : 4;
        int js = j0;
        if (upper && i > js) js = i;
        if (js >= j1) continue;
        int j = js;
        if (ib == 4) {
          for (; j + 2 <= j1; j += 2) micro4x2(A + (long)i * k + t0, B + (long)j * k + t0, C + (long)i * n + j, k, n, kc);
        }
        for (int ii = i; ii < i + ib; ii++) {
          for (int jj = (ib == 4 ? j : js); jj < j1; jj++) {
            C[(long)ii * n + jj] += dot(A + (long)ii * k + t0, B + (long)jj * k + t0, kc);
          }
        }
      }
    }
  }
}

/* Two dot products sharing x: (x.y0, x.y1) over n entries. */
static void dot2(const f64 *x, const f64 *y0, const f64 *y1, int n, f64 *r0, f64 *r1) {
  v128_t a0 = wasm_f64x2_splat(0), a1 = a0, b0 = a0, b1 = a0;
  int t = 0;
  for (; t + 4 <= n; t += 4) {
    v128_t x0 = wasm_v128_load(x + t), x1 = wasm_v128_load(x + t + 2);
    a0 = wasm_f64x2_add(a0, wasm_f64x2_mul(x0, wasm_v128_load(y0 + t)));
    a1 = wasm_f64x2_add(a1, wasm_f64x2_mul(x1, wasm_v128_load(y0 + t + 2)));
    b0 = wasm_f64x2_add(b0, wasm_f64x2_mul(x0, wasm_v128_load(y1 + t)));
    b1 = wasm_f64x2_add(b1, wasm_f64x2_mul(x1, wasm_v128_load(y1 + t + 2)));
  }
  f64 s0 = hsum(wasm_f64x2_add(a0, a1)), s1 = hsum(wasm_f64x2_add(b0, b1));
  for (; t < n; t++) {
    s0 += x[t] * y0[t];
    s1 += x[t] * y1[t];
  }
  *r0 = s0;
  *r1 = s1;
}

/*
 * Cholesky-Crout on rows of (A + jitter I) into L (n x n, zeroed by the caller): L_ij =
 * (A_ij - <L_i,:j, L_j,:j>) / L_jj. Returns the first pivot that is not > pivotTol, or -1.
 */
EXPORT int chol(const f64 *A, int n, f64 jitter, f64 *L, f64 pivotTol) {
  for (int i = 0; i < n; i++) {
    f64 *li = L + (long)i * n;
    const f64 *ai = A + (long)i * n;
    int j = 0;
    /* L_ij for j < i depends on L_i,0..j-1: pairs (j, j+1) need L_ij before L_i,j+1, so the
       second entry is corrected by L_ij L_j+1,j after the shared dot over 0..j-1. */
    for (; j + 1 < i; j += 2) {
      const f64 *lj = L + (long)j * n, *lj1 = lj + n;
      f64 d0, d1;
      dot2(li, lj, lj1, j, &d0, &d1);
      f64 x0 = (ai[j] - d0) / lj[j];
      li[j] = x0;
      li[j + 1] = (ai[j + 1] - d1 - x0 * lj1[j]) / lj1[j + 1];
    }
    for (; j < i; j++) {
      const f64 *lj = L + (long)j * n;
      li[j] = (ai[j] - dot(li, lj, j)) / lj[j];
    }
    f64 s = ai[i] - dot(li, li, i) + jitter;
    if (!(s > pivotTol)) return i;
    li[i] = sqrt_(s);
  }
  return -1;
}

/* X = L^{-1} (X zeroed by the caller): row i = (e_i - sum_{k<i} L_ik X_k) / L_ii. */
EXPORT void trinv(const f64 *L, f64 *X, int n) {
  for (int i = 0; i < n; i++) {
    const f64 *li = L + (long)i * n;
    f64 *xi = X + (long)i * n;
    for (int k = 0; k < i; k++) {
      f64 l = li[k];
      if (l != 0) axmy(l, X + (long)k * n, xi, k + 1);
    }
    xi[i] += 1;
    f64 inv = 1 / li[i];
    for (int c = 0; c <= i; c++) xi[c] *= inv;
  }
}

/*
 * Fast path of eigh (syevi): tred, eigenvalues of T by implicit QL without vectors (tql1,
 * O(n^2)), eigenvectors of T by inverse iteration (stein, LAPACK dstein's scheme), and the
 * back-transformation V^T = Z^T H_{n-3} ... H_0 (backq, blocked 4 rows x NB reflectors).
 */

/* sqrt(a^2 + b^2): the plain formula when a^2 + b^2 is safely in range, else hypot_. */
static inline f64 hypot_fast(f64 a, f64 b) {
  f64 s = a * a + b * b;
  return s < 1e300 && s > 1e-300 ? sqrt_(s) : hypot_(a, b);
}

/* Implicit QL, eigenvalues only (tql2 without rotations). Returns 0 or l + 1 on failure. */
static int tql1(f64 *d, f64 *e, int n) {
  f64 f = 0, tst1 = 0;
  const f64 eps = 2.220446049250313e-16;
  for (int l = 0; l < n; l++) {
    f64 t = fabs_(d[l]) + fabs_(e[l]);
    if (t > tst1) tst1 = t;
    int m = l;
    while (m < n - 1) {
      if (fabs_(e[m]) <= eps * tst1) break;
      m++;
    }
    if (m > l) {
      int iter = 0;
      do {
        if (++iter > 60) return l + 1;
        f64 g = d[l];
        f64 p = (d[l + 1] - g) / (2 * e[l]);
        f64 r = hypot_fast(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        f64 dl1 = d[l + 1];
        f64 h = g - d[l];
        for (int i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        p = d[m];
        f64 c = 1, c2 = 1, c3 = 1, s = 0, s2 = 0;
        f64 el1 = e[l + 1];
        for (int i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = hypot_fast(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
        }
        p = -s * s2 * c3 * el1 * e[l] / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (fabs_(e[l]) > eps * tst1);
    }
    d[l] = d[l] + f;
    e[l] = 0;
  }
  return 0;
}

/*
 * Inverse iteration for the eigenvectors of the symmetric tridiagonal T (diagonal d, off-
 * diagonal e[0..n-2]) at the ascending eigenvalues w (LAPACK dstein): T - x I = P L U with
 * partial pivoting, random start, solve, and modified Gram-Schmidt against the previous
 * vectors whose eigenvalues are within 1e-3 ||T||_1 (dstein uses chains of consecutive gaps
 * below that, whose MGS cost grows as k^2 n on long chains; vectors farther apart are
 * orthogonal to ~eps ||T|| / gap <= 1e3 eps without it, as between dstein's clusters); iterate
 * until the solution has grown enough, then EXTRA more times. Coincident shifts are
 * separated by 10 eps |x|. zt (row stride ldz): row j = unit eigenvector j (largest entry
 * positive), entries 0..n-1.
 * wk: 13n doubles. Returns 0, or j + 1 if vector j did not converge in 5 iterations (the last
 * iterate is still stored).
 */
EXPORT int stein(const f64 *d, const f64 *e, int n, const f64 *w, f64 *zt, int ldz, f64 *wk) {
  const f64 eps = 2.220446049250313e-16;
  const int maxits = 5, extra = 1;
  f64 *u0 = wk, *u1 = wk + n, *u2 = wk + 2 * n, *ml = wk + 3 * n, *x = wk + 4 * n, *sw = wk + 5 * n;
  f64 onenrm = 0;
  for (int i = 0; i < n; i++) {
    f64 t = fabs_(d[i]) + (i > 0 ? fabs_(e[i - 1]) : 0) + (i < n - 1 ? fabs_(e[i]) : 0);
    if (t > onenrm) onenrm = t;
  }
  if (n == 1) { zt[0] = 1; return 0; }
  const f64 ortol = 1e-3 * onenrm;
  const f64 dtpcrt = sqrt_(0.1 / n);
  f64 tol = eps * onenrm;
  if (tol == 0) tol = 1e-300;
  unsigned int seed = 0x9e3779b9u;
  int status = 0, gpind = 0;
  f64 xjm = 0;
  for (int j = 0; j < n; j++) {
    if (j + 1 < n && w[j + 1] - w[j] > ortol) {
      /* vectors j and j + 1 in the two lanes of f64x2 (the factorisation and the solves are
         latency-bound recurrences: two independent ones run in the time of one). Vector j + 1
         is farther than ortol from every earlier eigenvalue, so only lane 0 needs MGS. */
      f64 xa = w[j], xb = w[j + 1];
      if (j > 0) {
        f64 pertol = 10 * fabs_(eps * xa);
        if (xa - xjm < pertol) xa = xjm + pertol;
        while (w[j] - w[gpind] > ortol) gpind++;
      }
      f64 *U0 = wk, *U1 = wk + 2 * n, *U2 = wk + 4 * n, *ML = wk + 6 * n, *SW = wk + 8 * n, *X = wk + 10 * n, *tmp = wk + 12 * n;
      const v128_t zero = wasm_f64x2_splat(0), vtol = wasm_f64x2_splat(tol);
      const v128_t X2 = wasm_f64x2_make(xa, xb);
      v128_t p0 = wasm_f64x2_sub(wasm_f64x2_splat(d[0]), X2), p1 = wasm_f64x2_splat(e[0]);
      for (int k = 0; k < n - 1; k++) {
        v128_t ek = wasm_f64x2_splat(e[k]), dk1 = wasm_f64x2_sub(wasm_f64x2_splat(d[k + 1]), X2);
        v128_t ek1 = wasm_f64x2_splat(k + 1 < n - 1 ? e[k + 1] : 0);
        v128_t sk = wasm_f64x2_lt(wasm_f64x2_abs(p0), wasm_f64x2_abs(ek));
        v128_t num = wasm_v128_bitselect(p0, ek, sk), den = wasm_v128_bitselect(ek, p0, sk);
        v128_t m = wasm_v128_and(wasm_f64x2_div(num, den), wasm_f64x2_ne(den, zero));
        v128_t q0 = wasm_v128_bitselect(p1, dk1, sk), q1 = wasm_v128_bitselect(dk1, p1, sk);
        wasm_v128_store(U0 + 2 * k, den);
        wasm_v128_store(U1 + 2 * k, q1);
        wasm_v128_store(U2 + 2 * k, wasm_v128_and(ek1, sk));
        wasm_v128_store(ML + 2 * k, m);
        wasm_v128_store(SW + 2 * k, sk);
        p0 = wasm_f64x2_sub(q0, wasm_f64x2_mul(m, q1));
        p1 = wasm_v128_bitselect(wasm_f64x2_neg(wasm_f64x2_mul(m, ek1)), ek1, sk);
      }
      wasm_v128_store(U0 + 2 * (n - 1), p0);
      f64 una = fabs_(wasm_f64x2_extract_lane(p0, 0)), unb = fabs_(wasm_f64x2_extract_lane(p0, 1));
      if (una < tol) una = tol;
      if (unb < tol) unb = tol;
      for (int k = 0; k < n; k++) {
        v128_t u = wasm_v128_load(U0 + 2 * k);
        v128_t small = wasm_f64x2_lt(wasm_f64x2_abs(u), vtol);
        v128_t st = wasm_v128_bitselect(wasm_f64x2_neg(vtol), vtol, wasm_f64x2_lt(u, zero));
        u = wasm_v128_bitselect(st, u, small);
        wasm_v128_store(U0 + 2 * k, wasm_f64x2_div(wasm_f64x2_splat(1), u));
      }
      for (int i = 0; i < 2 * n; i++) {
        seed ^= seed << 13; seed ^= seed >> 17; seed ^= seed << 5;
        X[i] = (f64)seed * (2.0 / 4294967296.0) - 1.0;
      }
      int its = 0, chk0 = 0, chk1 = 0, done0 = 0, done1 = 0;
      for (;;) {
        if (++its > maxits) { if (!status) status = done0 ? j + 2 : j + 1; break; }
        f64 ba = 0, bb = 0;
        for (int i = 0; i < n; i++) {
          f64 ta = fabs_(X[2 * i]), tb = fabs_(X[2 * i + 1]);
          if (ta > ba) ba = ta;
          if (tb > bb) bb = tb;
        }
        v128_t scl = wasm_f64x2_make(n * onenrm * (una > eps ? una : eps) / (ba > 0 ? ba : 1), n * onenrm * (unb > eps ? unb : eps) / (bb > 0 ? bb : 1));
        for (int i = 0; i < n; i++) wasm_v128_store(X + 2 * i, wasm_f64x2_mul(wasm_v128_load(X + 2 * i), scl));
        v128_t xc = wasm_v128_load(X);
        for (int k = 0; k < n - 1; k++) {
          v128_t xn = wasm_v128_load(X + 2 * k + 2), sk = wasm_v128_load(SW + 2 * k);
          v128_t top = wasm_v128_bitselect(xn, xc, sk), bot = wasm_v128_bitselect(xc, xn, sk);
          wasm_v128_store(X + 2 * k, top);
          xc = wasm_f64x2_sub(bot, wasm_f64x2_mul(wasm_v128_load(ML + 2 * k), top));
        }
        v128_t xk1 = wasm_f64x2_mul(xc, wasm_v128_load(U0 + 2 * (n - 1)));
        wasm_v128_store(X + 2 * (n - 1), xk1);
        v128_t xk2 = xk1;
        xk1 = wasm_f64x2_mul(wasm_f64x2_sub(wasm_v128_load(X + 2 * (n - 2)), wasm_f64x2_mul(wasm_v128_load(U1 + 2 * (n - 2)), xk2)), wasm_v128_load(U0 + 2 * (n - 2)));
        wasm_v128_store(X + 2 * (n - 2), xk1);
        const v128_t vbig = wasm_f64x2_splat(1e150);
        for (int k = n - 3; k >= 0; k--) {
          v128_t t = wasm_f64x2_mul(wasm_f64x2_sub(wasm_f64x2_sub(wasm_v128_load(X + 2 * k), wasm_f64x2_mul(wasm_v128_load(U1 + 2 * k), xk1)), wasm_f64x2_mul(wasm_v128_load(U2 + 2 * k), xk2)), wasm_v128_load(U0 + 2 * k));
          v128_t big = wasm_f64x2_gt(wasm_f64x2_abs(t), vbig);
          if (wasm_v128_any_true(big)) {
            v128_t f = wasm_v128_bitselect(wasm_f64x2_splat(1e-150), wasm_f64x2_splat(1), big);
            for (int i = k + 1; i < n; i++) wasm_v128_store(X + 2 * i, wasm_f64x2_mul(wasm_v128_load(X + 2 * i), f));
            xk1 = wasm_v128_load(X + 2 * k + 2);
            xk2 = wasm_v128_load(X + 2 * k + 4);
            t = wasm_f64x2_mul(wasm_f64x2_sub(wasm_f64x2_sub(wasm_f64x2_mul(wasm_v128_load(X + 2 * k), f), wasm_f64x2_mul(wasm_v128_load(U1 + 2 * k), xk1)), wasm_f64x2_mul(wasm_v128_load(U2 + 2 * k), xk2)), wasm_v128_load(U0 + 2 * k));
          }
          wasm_v128_store(X + 2 * k, t);
          xk2 = xk1;
          xk1 = t;
        }
        if (gpind < j) {
          for (int i = 0; i < n; i++) tmp[i] = X[2 * i];
          for (int i = gpind; i < j; i++) {
            const f64 *zi = zt + (long)i * ldz;
            axmy(dot(tmp, zi, n), zi, tmp, n);
          }
          for (int i = 0; i < n; i++) X[2 * i] = tmp[i];
        }
        f64 na = 0, nb = 0;
        for (int i = 0; i < n; i++) {
          f64 ta = fabs_(X[2 * i]), tb = fabs_(X[2 * i + 1]);
          if (ta > na) na = ta;
          if (tb > nb) nb = tb;
        }
        if (!done0 && na >= dtpcrt && ++chk0 >= extra + 1) done0 = 1;
        if (!done1 && nb >= dtpcrt && ++chk1 >= extra + 1) done1 = 1;
        if (done0 && done1) break;
      }
      for (int c = 0; c < 2; c++) {
        int jmax = 0;
        f64 big = 0;
        for (int i = 0; i < n; i++) { f64 t = fabs_(X[2 * i + c]); if (t > big) { big = t; jmax = i; } }
        f64 s2 = 0;
        for (int i = 0; i < n; i++) { f64 t = X[2 * i + c] / big; s2 += t * t; }
        f64 inv = 1 / (big * sqrt_(s2));
        if (X[2 * jmax + c] < 0) inv = -inv;
        f64 *zj = zt + (long)(j + c) * ldz;
        for (int i = 0; i < n; i++) zj[i] = X[2 * i + c] * inv;
      }
      xjm = xb;
      j++;
      continue;
    }
    f64 xj = w[j];
    if (j > 0) {
      f64 pertol = 10 * fabs_(eps * xj);
      if (xj - xjm < pertol) xj = xjm + pertol;
      while (w[j] - w[gpind] > ortol) gpind++;
    }
    /* factor T - xj I (rows k: u0 at col k, u1 at k+1, u2 at k+2; multiplier ml[k], swap sw[k]) */
    /* branch-free (selects): the pivot choice is data-dependent and mispredicts */
    f64 p0 = d[0] - xj, p1 = e[0];
    for (int k = 0; k < n - 1; k++) {
      f64 ek = e[k], dk1 = d[k + 1] - xj, ek1 = k + 1 < n - 1 ? e[k + 1] : 0;
      int sk = fabs_(p0) < fabs_(ek);
      f64 num = sk ? p0 : ek, den = sk ? ek : p0;
      f64 m = den != 0 ? num / den : 0;
      f64 q0 = sk ? p1 : dk1, q1 = sk ? dk1 : p1;
      u0[k] = den; u1[k] = q1; u2[k] = sk ? ek1 : 0; ml[k] = m; sw[k] = sk;
      p0 = q0 - m * q1;
      p1 = sk ? -m * ek1 : ek1;
    }
    u0[n - 1] = p0;
    f64 un = fabs_(p0) < tol ? tol : fabs_(p0);
    /* reciprocal pivots (tiny ones perturbed to +-tol), off the solve's dependency chain */
    for (int k = 0; k < n; k++) {
      f64 u = u0[k];
      if (fabs_(u) < tol) u = u < 0 ? -tol : tol;
      u0[k] = 1 / u;
    }
    for (int i = 0; i < n; i++) {
      seed ^= seed << 13; seed ^= seed >> 17; seed ^= seed << 5;
      x[i] = (f64)seed * (2.0 / 4294967296.0) - 1.0;
    }
    int its = 0, nrmchk = 0;
    for (;;) {
      if (++its > maxits) { if (!status) status = j + 1; break; }
      /* scale the right-hand side (max entry n ||T|| max(eps, |u_nn|)) */
      f64 bmax = 0;
      for (int i = 0; i < n; i++) { f64 t = fabs_(x[i]); if (t > bmax) bmax = t; }
      f64 scl = n * onenrm * (un > eps ? un : eps) / (bmax > 0 ? bmax : 1);
      for (int i = 0; i < n; i++) x[i] *= scl;
      /* solve: L (with swaps), then U by back substitution with overflow guard */
      f64 xc = x[0];
      for (int k = 0; k < n - 1; k++) {
        f64 xn = x[k + 1];
        int sk = sw[k] != 0;
        f64 top = sk ? xn : xc, bot = sk ? xc : xn;
        x[k] = top;
        xc = bot - ml[k] * top;
      }
      x[n - 1] = xc * u0[n - 1];
      if (n >= 2) x[n - 2] = (x[n - 2] - u1[n - 2] * x[n - 1]) * u0[n - 2];
      for (int k = n - 3; k >= 0; k--) {
        f64 t = (x[k] - u1[k] * x[k + 1] - u2[k] * x[k + 2]) * u0[k];
        if (fabs_(t) > 1e150) {
          for (int i = k + 1; i < n; i++) x[i] *= 1e-150;
          t = (x[k] * 1e-150 - u1[k] * x[k + 1] - u2[k] * x[k + 2]) * u0[k];
        }
        x[k] = t;
      }
      /* reorthogonalise against the cluster */
      for (int i = gpind; i < j; i++) {
        const f64 *zi = zt + (long)i * ldz;
        axmy(dot(x, zi, n), zi, x, n);
      }
      f64 nrm = 0;
      for (int i = 0; i < n; i++) { f64 t = fabs_(x[i]); if (t > nrm) nrm = t; }
      if (!(nrm >= dtpcrt)) continue;
      if (++nrmchk < extra + 1) continue;
      break;
    }
    /* normalise, largest entry positive */
    int jmax = 0;
    f64 big = 0;
    for (int i = 0; i < n; i++) { f64 t = fabs_(x[i]); if (t > big) { big = t; jmax = i; } }
    f64 s = 0;
    for (int i = 0; i < n; i++) { f64 t = x[i] / big; s += t * t; }
    f64 inv = 1 / (big * sqrt_(s));
    if (x[jmax] < 0) inv = -inv;
    f64 *zj = zt + (long)j * ldz;
    for (int i = 0; i < n; i++) zj[i] = x[i] * inv;
    xjm = xj;
  }
  return status;
}

/*
 * zt (n x n, rows) <- zt H_{n-3} ... H_0 with the reflectors of tred (v_k = a[k][k+1..],
 * beta). Groups of NB reflectors (k descending) are applied to 4 rows at a time, two
 * reflectors per pass (their coupling gam[k] = v_k . v_{k-1}, n scratch doubles, precomputed):
 * each v is loaded once for the 4 rows, and each row is read twice per 2 reflectors.
 */
EXPORT void backq(const f64 *a, int n, const f64 *beta, f64 *zt, f64 *gam) {
  for (int k = 1; k < n - 2; k++) gam[k] = dot(a + (long)k * n + k + 1, a + (long)(k - 1) * n + k + 1, n - k - 1);
  for (int kh = n - 3; kh >= 0; kh -= NB) {
    int kl = kh - NB + 1;
    if (kl < 0) kl = 0;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
      f64 *r0 = zt + (long)i * n, *r1 = r0 + n, *r2 = r1 + n, *r3 = r2 + n;
      int k = kh;
      /* pairs of reflectors (k, k-1) in one pass: with c1 = b_k r.v_k, the second coefficient
         is c2 = b_{k-1} (r.v_{k-1} - c1 v_k.v_{k-1}), then r -= c1 v_k + c2 v_{k-1} */
      for (; k - 1 >= kl; k -= 2) {
        f64 b1 = beta[k], b2 = beta[k - 1];
        const f64 *v1 = a + (long)k * n, *v2 = a + (long)(k - 1) * n;
        int o = k + 1, len = n - k - 1, t = 0;
        f64 g = b1 != 0 && b2 != 0 ? gam[k] : 0;
        v128_t s0 = wasm_f64x2_splat(0), s1 = s0, s2 = s0, s3 = s0, q0 = s0, q1 = s0, q2 = s0, q3 = s0;
        for (; t + 2 <= len; t += 2) {
          v128_t va = wasm_v128_load(v1 + o + t), vb = wasm_v128_load(v2 + o + t);
          v128_t x0 = wasm_v128_load(r0 + o + t), x1 = wasm_v128_load(r1 + o + t), x2 = wasm_v128_load(r2 + o + t), x3 = wasm_v128_load(r3 + o + t);
          s0 = wasm_f64x2_add(s0, wasm_f64x2_mul(va, x0));
          s1 = wasm_f64x2_add(s1, wasm_f64x2_mul(va, x1));
          s2 = wasm_f64x2_add(s2, wasm_f64x2_mul(va, x2));
          s3 = wasm_f64x2_add(s3, wasm_f64x2_mul(va, x3));
          q0 = wasm_f64x2_add(q0, wasm_f64x2_mul(vb, x0));
          q1 = wasm_f64x2_add(q1, wasm_f64x2_mul(vb, x1));
          q2 = wasm_f64x2_add(q2, wasm_f64x2_mul(vb, x2));
          q3 = wasm_f64x2_add(q3, wasm_f64x2_mul(vb, x3));
        }
        f64 d0 = hsum(s0), d1 = hsum(s1), d2 = hsum(s2), d3 = hsum(s3);
        f64 e0 = hsum(q0), e1 = hsum(q1), e2 = hsum(q2), e3 = hsum(q3);
        for (; t < len; t++) {
          f64 va = v1[o + t], vb = v2[o + t];
          d0 += va * r0[o + t]; d1 += va * r1[o + t]; d2 += va * r2[o + t]; d3 += va * r3[o + t];
          e0 += vb * r0[o + t]; e1 += vb * r1[o + t]; e2 += vb * r2[o + t]; e3 += vb * r3[o + t];
        }
        f64 vk = v2[k];
        e0 += vk * r0[k]; e1 += vk * r1[k]; e2 += vk * r2[k]; e3 += vk * r3[k];
        d0 *= b1; d1 *= b1; d2 *= b1; d3 *= b1;
        e0 = b2 * (e0 - d0 * g); e1 = b2 * (e1 - d1 * g); e2 = b2 * (e2 - d2 * g); e3 = b2 * (e3 - d3 * g);
        r0[k] -= e0 * vk; r1[k] -= e1 * vk; r2[k] -= e2 * vk; r3[k] -= e3 * vk;
        v128_t c0 = wasm_f64x2_splat(d0), c1 = wasm_f64x2_splat(d1), c2 = wasm_f64x2_splat(d2), c3 = wasm_f64x2_splat(d3);
        v128_t h0 = wasm_f64x2_splat(e0), h1 = wasm_f64x2_splat(e1), h2 = wasm_f64x2_splat(e2), h3 = wasm_f64x2_splat(e3);
        t = 0;
        for (; t + 2 <= len; t += 2) {
          v128_t va = wasm_v128_load(v1 + o + t), vb = wasm_v128_load(v2 + o + t);
          wasm_v128_store(r0 + o + t, wasm_f64x2_sub(wasm_v128_load(r0 + o + t), wasm_f64x2_add(wasm_f64x2_mul(c0, va), wasm_f64x2_mul(h0, vb))));
          wasm_v128_store(r1 + o + t, wasm_f64x2_sub(wasm_v128_load(r1 + o + t), wasm_f64x2_add(wasm_f64x2_mul(c1, va), wasm_f64x2_mul(h1, vb))));
          wasm_v128_store(r2 + o + t, wasm_f64x2_sub(wasm_v128_load(r2 + o + t), wasm_f64x2_add(wasm_f64x2_mul(c2, va), wasm_f64x2_mul(h2, vb))));
          wasm_v128_store(r3 + o + t, wasm_f64x2_sub(wasm_v128_load(r3 + o + t), wasm_f64x2_add(wasm_f64x2_mul(c3, va), wasm_f64x2_mul(h3, vb))));
        }
        for (; t < len; t++) {
          f64 va = v1[o + t], vb = v2[o + t];
          r0[o + t] -= d0 * va + e0 * vb; r1[o + t] -= d1 * va + e1 * vb;
          r2[o + t] -= d2 * va + e2 * vb; r3[o + t] -= d3 * va + e3 * vb;
        }
      }
      for (; k >= kl; k--) {
        f64 b = beta[k];
        if (b == 0) continue;
        const f64 *v = a + (long)k * n;
        int o = k + 1, len = n - k - 1, t = 0;
        v128_t s0 = wasm_f64x2_splat(0), s1 = s0, s2 = s0, s3 = s0;
        for (; t + 2 <= len; t += 2) {
          v128_t vv = wasm_v128_load(v + o + t);
          s0 = wasm_f64x2_add(s0, wasm_f64x2_mul(vv, wasm_v128_load(r0 + o + t)));
          s1 = wasm_f64x2_add(s1, wasm_f64x2_mul(vv, wasm_v128_load(r1 + o + t)));
          s2 = wasm_f64x2_add(s2, wasm_f64x2_mul(vv, wasm_v128_load(r2 + o + t)));
          s3 = wasm_f64x2_add(s3, wasm_f64x2_mul(vv, wasm_v128_load(r3 + o + t)));
        }
        f64 d0 = hsum(s0), d1 = hsum(s1), d2 = hsum(s2), d3 = hsum(s3);
        for (; t < len; t++) {
          f64 vt = v[o + t];
          d0 += vt * r0[o + t]; d1 += vt * r1[o + t]; d2 += vt * r2[o + t]; d3 += vt * r3[o + t];
        }
        d0 *= b; d1 *= b; d2 *= b; d3 *= b;
        v128_t c0 = wasm_f64x2_splat(d0), c1 = wasm_f64x2_splat(d1), c2 = wasm_f64x2_splat(d2), c3 = wasm_f64x2_splat(d3);
        t = 0;
        for (; t + 2 <= len; t += 2) {
          v128_t vv = wasm_v128_load(v + o + t);
          wasm_v128_store(r0 + o + t, wasm_f64x2_sub(wasm_v128_load(r0 + o + t), wasm_f64x2_mul(c0, vv)));
          wasm_v128_store(r1 + o + t, wasm_f64x2_sub(wasm_v128_load(r1 + o + t), wasm_f64x2_mul(c1, vv)));
          wasm_v128_store(r2 + o + t, wasm_f64x2_sub(wasm_v128_load(r2 + o + t), wasm_f64x2_mul(c2, vv)));
          wasm_v128_store(r3 + o + t, wasm_f64x2_sub(wasm_v128_load(r3 + o + t), wasm_f64x2_mul(c3, vv)));
        }
        for (; t < len; t++) {
          f64 vt = v[o + t];
          r0[o + t] -= d0 * vt; r1[o + t] -= d1 * vt; r2[o + t] -= d2 * vt; r3[o + t] -= d3 * vt;
        }
      }
    }
    for (; i < n; i++) {
      f64 *ri = zt + (long)i * n;
      for (int k = kh; k >= kl; k--) {
        f64 b = beta[k];
        if (b == 0) continue;
        const f64 *v = a + (long)k * n;
        f64 s = dot(ri + k + 1, v + k + 1, n - k - 1) * b;
        if (s != 0) axmy(s, v + k + 1, ri + k + 1, n - k - 1);
      }
    }
  }
}

/*
 * Symmetric eigendecomposition by tred + tql1 + stein + backq. a (n x n, consumed), d (out:
 * eigenvalues, ascending within each unreduced block of T), zt (out: row j = eigenvector j), wk: 17n doubles. Returns 0, -(l+1)
 * if QL failed for eigenvalue l, or j + 1 if inverse iteration did not converge for vector j.
 */
EXPORT int syevi(f64 *a, int n, f64 *d, f64 *zt, f64 *wk) {
  const f64 eps = 2.220446049250313e-16;
  f64 *e = wk, *beta = wk + n, *dt = wk + 2 * n, *et = wk + 3 * n;
  tred(a, n, dt, et, beta, wk + 4 * n, wk + 5 * n);
  f64 onenrm = 0;
  for (int i = 0; i < n; i++) {
    f64 t = fabs_(dt[i]) + (i > 0 ? fabs_(et[i - 1]) : 0) + (i < n - 1 ? fabs_(et[i]) : 0);
    if (t > onenrm) onenrm = t;
  }
  /* split T where |e_k| <= eps ||T||_1 (a perturbation of T below the accuracy of QL), so
     each block is unreduced: inverse iteration on a block with negligible off-diagonals
     would otherwise fix its direction by the rounding noise instead of the start vector */
  for (long k = 0; k < (long)n * n; k++) zt[k] = 0;
  int status = 0;
  for (int b0 = 0; b0 < n;) {
    int b1 = b0;
    while (b1 < n - 1 && fabs_(et[b1]) > eps * onenrm) b1++;
    int m = b1 - b0 + 1;
    f64 *db = d + b0;
    if (m == 1) {
      db[0] = dt[b0];
      zt[(long)b0 * n + b0] = 1;
    } else {
      for (int i = 0; i < m; i++) { db[i] = dt[b0 + i]; e[i] = et[b0 + i]; }
      e[m - 1] = 0;
      int f = tql1(db, e, m);
      if (f) return -(b0 + f);
      for (int i = 1; i < m; i++) {
        f64 x = db[i];
        int j = i - 1;
        while (j >= 0 && db[j] > x) { db[j + 1] = db[j]; j--; }
        db[j + 1] = x;
      }
      int s = stein(dt + b0, et + b0, m, db, zt + (long)b0 * n + b0, n, wk + 4 * n);
      if (s && !status) status = b0 + s;
    }
    b0 = b1 + 1;
  }
  backq(a, n, beta, zt, wk + 4 * n);
  return status;
}
