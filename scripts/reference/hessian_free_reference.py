#!/usr/bin/python3
"""Float64 references for HessianFree (test/hessian-free-fit.test.ts), written from the papers.

Writes test/fixtures/hessian-free-reference.json with

1. ggn: Gauss-Newton products G v = J^T H_L J v of a 3-5-3 tanh MLP (tfjs-layers Dense layout:
   kernel [in, out], bias [out]) on a batch of 6, for the output/loss pairs HessianFree captures
   in model.fit (Schraudolph 2002, Martens 2010 section 2):
     softmax + categoricalCrossentropy   G at the logits, H_L = (diag p - p p^T) / N
     softmax + sparseCategoricalCrossentropy (same, integer labels)
     sigmoid + binaryCrossentropy        G at the logits, H_L = diag p (1 - p) / (N K)
     linear  + meanSquaredError          G at the outputs, H_L = 2 I / (N K)
     tanh    + meanSquaredError          G at the outputs (post-activation), H_L = 2 I / (N K)
   J is the explicit Jacobian of the chosen output in all parameters, by forward-mode
   differentiation written out by hand (no autodiff), so nothing is shared with the TS code.

2. raise: HessianFree in Hessian mode with negativeCurvature 'raise-damping' on
   f(a, b) = a^2 - b^2 + b^4 from (1, 0.1), damping 0.1, maxIterations 2, cold CG start:
   the per-step damping used, the number of raises, the accepted step and the iterate, for
   6 steps of the full algorithm (CG with Steihaug detection, lambda <- 1.5 (lambda - kappa/|p|^2)
   and re-solve; CG backtracking; rho; Levenberg-Marquardt 3/2, 2/3; Armijo c1 = 1e-2, t *= 0.8).

3. fit: HessianFree with default rules in model.fit on a 3-4-3 tanh/softmax MLP, 12 examples,
   batch 6 (two alternating batches), 6 steps: GGN at the logits; step 1 adapts lambda with its
   own rho, later steps with the 'next-batch' ratio (the previous step s re-measured on the new
   batch: rho' = (f(theta) - f(theta - s)) / q(s); lambda * 2/3 only when rho' > 3/4, and the
   step's own rho only raises lambda). CG from 0.95 x the previous last iterate, at most 8
   iterations (iterates saved at 5, 7 and 8 for backtracking), Armijo from t = 1.

4. ggnDeep: Gauss-Newton products of a 4-6-5-3 relu/tanh stack (linear logits) on a batch of 5,
   G at the logits with softmax and with sigmoid cross-entropy: HessianFree's linearised Dense
   products (optimizers/hessian-free/dense-ggn.ts) on more than one hidden layer.

Run: /usr/bin/python3 scripts/reference/hessian_free_reference.py
"""
import json
import math
import os

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), '..', '..', 'test', 'fixtures', 'hessian-free-reference.json')


# ------------------------------------------------------------------------------------------
# 1. Gauss-Newton products

def mlp_with_tangent(x, params, tangent, act):
    """Forward pass and its directional derivative (forward mode) along `tangent`.

    Returns z (logits), dz, out = act(z), dout."""
    W1, b1, W2, b2 = params
    V1, c1, V2, c2 = tangent
    s1 = x @ W1 + b1
    ds1 = x @ V1 + c1
    h = np.tanh(s1)
    dh = (1 - h ** 2) * ds1
    z = h @ W2 + b2
    dz = dh @ W2 + h @ V2 + c2
    if act == 'softmax':
        e = np.exp(z - z.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        dp = p * (dz - (p * dz).sum(axis=1, keepdims=True))
    elif act == 'sigmoid':
        p = 1 / (1 + np.exp(-z))
        dp = p * (1 - p) * dz
    elif act == 'tanh':
        p = np.tanh(z)
        dp = (1 - p ** 2) * dz
    else:
        p, dp = z, dz
    return z, dz, p, dp


def unit_tangents(params):
    """All coordinate directions of the parameter vector (kernel then bias, per layer)."""
    sizes = [p.size for p in params]
    total = sum(sizes)
    for k in range(total):
        flat = np.zeros(total)
        flat[k] = 1.0
        out, o = [], 0
        for p in params:
            out.append(flat[o:o + p.size].reshape(p.shape))
            o += p.size
        yield out


def jacobian(x, params, act, at):
    cols = []
    for t in unit_tangents(params):
        _, dz, _, dp = mlp_with_tangent(x, params, t, act)
        cols.append((dz if at == 'logits' else dp).reshape(-1))
    return np.stack(cols, axis=1)  # [N*K, P]


def loss_hessian(kind, p, n, k):
    if kind in ('categoricalCrossentropy', 'sparseCategoricalCrossentropy'):
        H = np.zeros((n * k, n * k))
        for i in range(n):
            H[i * k:(i + 1) * k, i * k:(i + 1) * k] = (np.diag(p[i]) - np.outer(p[i], p[i])) / n
        return H
    if kind == 'binaryCrossentropy':
        return np.diag((p * (1 - p)).reshape(-1)) / (n * k)
    return 2 * np.eye(n * k) / (n * k)


def keras_loss(kind, y, p):
    eps = 1e-7
    if kind == 'categoricalCrossentropy':
        q = np.clip(p / p.sum(axis=1, keepdims=True), eps, 1 - eps)
        return float(np.mean(-(y * np.log(q)).sum(axis=1)))
    if kind == 'sparseCategoricalCrossentropy':
        q = np.clip(p, eps, 1 - eps)
        return float(np.mean(-np.log(q[np.arange(len(y)), y.astype(int)])))
    if kind == 'binaryCrossentropy':
        q = np.clip(p, eps, 1 - eps)
        return float(np.mean(-(y * np.log(q) + (1 - y) * np.log(1 - q))))
    return float(np.mean((p - y) ** 2))


def ggn_cases(rng):
    n, d, hdim, k = 6, 3, 5, 3
    x = rng.normal(size=(n, d))
    W1 = rng.normal(scale=0.7, size=(d, hdim))
    b1 = rng.normal(scale=0.2, size=hdim)
    W2 = rng.normal(scale=0.7, size=(hdim, k))
    b2 = rng.normal(scale=0.2, size=k)
    params = [W1, b1, W2, b2]
    labels = rng.integers(0, k, size=n)
    onehot = np.eye(k)[labels]
    cases = []
    specs = [
        ('softmax', 'categoricalCrossentropy', 'logits', onehot),
        ('softmax', 'sparseCategoricalCrossentropy', 'logits', labels.astype(float).reshape(n, 1)),
        ('sigmoid', 'binaryCrossentropy', 'logits', (rng.uniform(size=(n, k)) > 0.5).astype(float)),
        ('linear', 'meanSquaredError', 'outputs', rng.normal(size=(n, k))),
        ('tanh', 'meanSquaredError', 'outputs', rng.uniform(-0.9, 0.9, size=(n, k))),
    ]
    zero = [np.zeros_like(p) for p in params]
    for act, kind, at, y in specs:
        _, _, p, _ = mlp_with_tangent(x, params, zero, act)
        J = jacobian(x, params, act, at)
        H = loss_hessian(kind, p, n, k)
        G = J.T @ H @ J
        assert np.allclose(G, G.T) and np.linalg.eigvalsh(G).min() > -1e-12  # PSD
        vs = [rng.normal(size=p_.shape) for p_ in params]
        v = np.concatenate([t.reshape(-1) for t in vs])
        Gv = G @ v
        cases.append({
            'activation': act,
            'loss': kind,
            'at': at,
            'y': y.tolist(),
            'lossValue': keras_loss(kind, labels if kind == 'sparseCategoricalCrossentropy' else y, p),
            'v': v.tolist(),
            'Gv': Gv.tolist(),
            'vGv': float(v @ Gv),
        })
    return {
        'x': x.tolist(),
        'kernel1': W1.tolist(), 'bias1': b1.tolist(), 'kernel2': W2.tolist(), 'bias2': b2.tolist(),
        'cases': cases,
    }


# ------------------------------------------------------------------------------------------
# 2. HessianFree, Hessian mode, lambda raised past negative curvature (Martens 2010 sec. 4;
#    Nocedal & Wright 4.3)

def f2(w):
    a, b = w
    return a * a - b * b + b ** 4


def g2(w):
    a, b = w
    return np.array([2 * a, -2 * b + 4 * b ** 3])


def h2(w):
    _, b = w
    return np.array([[2.0, 0.0], [0.0, -2 + 12 * b * b]])


def cg(A, bvec, x0, max_iter):
    """Martens' CG (phi objective), Steihaug detection; returns x, phi, stop, kappa, |p|^2."""
    x = np.zeros_like(bvec) if x0 is None else x0.copy()
    r = bvec - A @ x
    p = r.copy()
    rr = r @ r
    phi = -0.5 * (x @ bvec + x @ r)
    if rr == 0:
        return x, phi, 'converged', None, 0
    for i in range(1, max_iter + 1):
        q = A @ p
        kappa = p @ q
        if kappa <= 0:
            return x, phi, 'negative-curvature', (kappa, p @ p), i - 1
        alpha = rr / kappa
        x = x + alpha * p
        r = r - alpha * q
        phi = -0.5 * (x @ bvec + x @ r)
        rr_new = r @ r
        if rr_new == 0:
            return x, phi, 'converged', None, i
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x, phi, 'max-iterations', None, max_iter


def hf_raise_trajectory():
    w = np.array([1.0, 0.1])
    lam = 0.1
    steps = []
    for _ in range(6):
        f0, g, B = f2(w), g2(w), h2(w)
        raises = 0
        while True:
            x, phi, stop, neg, iters = cg(B + lam * np.eye(2), -g, None, 2)
            if stop == 'negative-curvature' and raises < 10:
                kappa, pp = neg
                lam = max(lam, lam - kappa / pp, 1e-8) * 1.5
                raises += 1
                continue
            break
        used = lam
        if iters == 0:  # no CG step: steepest descent (not expected here)
            d, phi_d = -g, None
        else:
            d, phi_d = x, phi
        fd = f2(w + d)
        rho = (fd - f0) / phi_d if phi_d not in (None, 0) else -math.inf
        if rho < 0.25:
            lam = max(lam, 1e-8) * 1.5
        elif rho > 0.75:
            lam = lam * 2 / 3
        lam = min(1e8, max(1e-8, lam))
        slope = g @ d
        t, accepted = 1.0, False
        if slope < 0:
            for trial in range(60):
                val = fd if trial == 0 else f2(w + t * d)
                if val <= f0 + 1e-2 * t * slope:
                    accepted = True
                    break
                t *= 0.8
        if accepted:
            w = w + t * d
        steps.append({
            'dampingUsed': used, 'raises': raises, 'cgStop': stop, 'rho': rho,
            'stepSize': t if accepted else 0, 'damping': lam, 'w': w.tolist(), 'f': f2(w),
        })
    return {'w0': [1.0, 0.1], 'damping': 0.1, 'steps': steps}


# ------------------------------------------------------------------------------------------
# 3. HessianFree in model.fit with the next-batch ratio (GGN of softmax cross-entropy)

def unflatten(theta, shapes):
    out, o = [], 0
    for sh in shapes:
        n = int(np.prod(sh))
        out.append(theta[o:o + n].reshape(sh))
        o += n
    return out


def softmax_mlp(theta, shapes, x):
    W1, b1, W2, b2 = unflatten(theta, shapes)
    h = np.tanh(x @ W1 + b1)
    z = h @ W2 + b2
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def ce_loss(theta, shapes, x, y):
    p = softmax_mlp(theta, shapes, x)
    return float(np.mean(-(y * np.log(p)).sum(axis=1)))


def ce_grad_ggn(theta, shapes, x, y):
    params = unflatten(theta, shapes)
    n, k = y.shape
    J = jacobian(x, params, 'softmax', 'logits')
    p = softmax_mlp(theta, shapes, x)
    g = J.T @ ((p - y) / n).reshape(-1)
    G = J.T @ loss_hessian('categoricalCrossentropy', p, n, k) @ J
    return g, G


def adapt(lam, rho, lo=1e-8, hi=1e8):
    if not (rho >= 0.25):
        nxt = max(lam, lo) * 1.5
    elif rho > 0.75:
        nxt = lam * 2 / 3
    else:
        nxt = lam
    return min(hi, max(lo, nxt))


def ratio(actual, predicted):
    if not (math.isfinite(actual) and math.isfinite(predicted)):
        return -math.inf
    if predicted == 0:
        return 1.0 if actual <= 0 else -math.inf
    return actual / predicted


def martens_cg(A, bvec, x0, max_iter):
    x = np.zeros_like(bvec) if x0 is None else x0.copy()
    r = bvec - A @ x
    phi = -0.5 * (x @ bvec + x @ r)
    objective = [phi if x0 is not None else 0.0]
    p = r.copy()
    rr = r @ r
    saved, next_save, i = [], 5.0, 0
    while i < max_iter:
        q = A @ p
        kappa = p @ q
        assert kappa > 0
        alpha = rr / kappa
        x = x + alpha * p
        r = r - alpha * q
        i += 1
        phi = -0.5 * (x @ bvec + x @ r)
        objective.append(phi)
        if i == math.ceil(next_save):
            saved.append((i, x.copy(), phi))
            next_save *= 1.3
        kwin = max(10, math.ceil(0.1 * i))
        if i > kwin and phi < 0 and (phi - objective[i - kwin]) / phi < kwin * 5e-4:
            break
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    if not saved or saved[-1][0] != i:
        saved.append((i, x.copy(), phi))
    return x, saved


def hf_fit_trajectory(rng):
    d, hdim, k, n, batch = 3, 4, 3, 12, 6
    shapes = [(d, hdim), (hdim,), (hdim, k), (k,)]
    x = rng.normal(size=(n, d))
    labels = rng.integers(0, k, size=n)
    y = np.eye(k)[labels]
    params = [rng.normal(scale=0.8, size=sh) for sh in shapes]
    theta = np.concatenate([q.reshape(-1) for q in params])
    lam, p_last, s_prev, predicted, prev_batch = 1.0, None, None, 0.0, None
    steps = []
    for step in range(6):
        bi = step % 2
        xb, yb = x[bi * batch:(bi + 1) * batch], y[bi * batch:(bi + 1) * batch]
        f = lambda th: ce_loss(th, shapes, xb, yb)  # noqa: E731
        f0 = f(theta)
        g, G = ce_grad_ggn(theta, shapes, xb, yb)
        mode = 'next-batch' if prev_batch is not None and prev_batch != bi else 'batch'
        prev_batch = bi
        held = float('nan')
        if mode == 'next-batch' and s_prev is not None and predicted < 0:
            held = ratio(f0 - f(theta - s_prev), predicted)
            lam = min(lam, adapt(lam, held))
        used = lam
        s_prev = None
        x0 = None if p_last is None else 0.95 * p_last
        xl, saved = martens_cg(G + lam * np.eye(len(theta)), -g, x0, 8)
        p_last = xl
        idx = len(saved) - 1
        d_vec, phi = saved[idx][1], saved[idx][2]
        f_dir = f(theta + d_vec)
        while idx > 0:
            f_prev = f(theta + saved[idx - 1][1])
            if not (f_prev < f_dir):
                break
            idx -= 1
            d_vec, phi, f_dir = saved[idx][1], saved[idx][2], f_prev
        rho = ratio(f_dir - f0, phi)
        adapted = adapt(lam, rho)
        lam = adapted if mode == 'batch' else max(lam, adapted)
        slope = g @ d_vec
        t, accepted, val = 1.0, False, f_dir
        for trial in range(60):
            val = f_dir if trial == 0 else f(theta + t * d_vec)
            if val <= f0 + 1e-2 * t * slope:
                accepted = True
                break
            t *= 0.8
        if accepted:
            theta = theta + t * d_vec
            predicted = t * slope + t * t * (phi - slope)
            s_prev = t * d_vec
        steps.append({
            'loss': f0, 'mode': mode, 'heldOutRho': None if math.isnan(held) else held,
            'dampingUsed': used, 'rho': rho, 'damping': lam, 'stepSize': t if accepted else 0,
            'backtrackedIteration': saved[idx][0], 'theta': theta.tolist(),
        })
    return {
        'x': x.tolist(), 'y': y.tolist(), 'batchSize': batch,
        'kernel1': params[0].tolist(), 'bias1': params[1].tolist(),
        'kernel2': params[2].tolist(), 'bias2': params[3].tolist(),
        'steps': steps,
    }


# ------------------------------------------------------------------------------------------
# 4. Gauss-Newton products of a deeper stack (HessianFree's linearised Dense products,
#    optimizers/hessian-free/dense-ggn.ts): 4 -> 6 (relu) -> 5 (tanh) -> 3 (linear logits),
#    batch 5, G at the logits with softmax cross-entropy (mean over rows) and sigmoid
#    cross-entropy (mean over all elements). J by hand-written forward mode, as above.

def deep_with_tangent(x, params, tangent, acts):
    h, dh = x, np.zeros_like(x)
    L = len(params) // 2
    for l in range(L):
        W, b = params[2 * l], params[2 * l + 1]
        V, c = tangent[2 * l], tangent[2 * l + 1]
        z = h @ W + b
        dz = dh @ W + h @ V + c
        if l + 1 == L:
            return z, dz
        if acts[l] == 'relu':
            h, dh = np.maximum(z, 0), (z > 0) * dz
        else:
            h = np.tanh(z)
            dh = (1 - h ** 2) * dz


def ggn_deep(rng):
    n, widths, acts = 5, [4, 6, 5, 3], ['relu', 'tanh']
    x = rng.normal(size=(n, widths[0]))
    params = []
    for a, b in zip(widths[:-1], widths[1:]):
        params += [rng.normal(scale=0.8, size=(a, b)), rng.normal(scale=0.3, size=b)]
    z, _ = deep_with_tangent(x, params, [np.zeros_like(q) for q in params], acts)
    J = np.stack([deep_with_tangent(x, params, t, acts)[1].reshape(-1) for t in unit_tangents(params)], axis=1)
    k = widths[-1]
    cases = []
    for loss in ('softmax-cross-entropy', 'sigmoid-cross-entropy'):
        if loss == 'softmax-cross-entropy':
            e = np.exp(z - z.max(axis=1, keepdims=True))
            p = e / e.sum(axis=1, keepdims=True)
            y = np.eye(k)[rng.integers(0, k, size=n)]
            H = loss_hessian('categoricalCrossentropy', p, n, k)
        else:
            p = 1 / (1 + np.exp(-z))
            y = (rng.uniform(size=(n, k)) > 0.5).astype(float)
            H = loss_hessian('binaryCrossentropy', p, n, k)
        v = rng.normal(size=J.shape[1])
        cases.append({'loss': loss, 'y': y.tolist(), 'v': v.tolist(), 'Gv': (J.T @ H @ J @ v).tolist()})
    return {
        'x': x.tolist(),
        'widths': widths,
        'activations': acts,
        'params': [q.tolist() for q in params],
        'cases': cases,
    }


def main():
    rng = np.random.default_rng(20261201)
    out = {
        'generator': 'scripts/reference/hessian_free_reference.py (numpy float64)',
        'ggn': ggn_cases(rng),
        'raise': hf_raise_trajectory(),
        'fit': hf_fit_trajectory(np.random.default_rng(7)),
        'ggnDeep': ggn_deep(np.random.default_rng(99)),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, 'w') as fh:
        json.dump(out, fh, indent=1)
    print('wrote', os.path.normpath(OUT))


if __name__ == '__main__':
    main()
