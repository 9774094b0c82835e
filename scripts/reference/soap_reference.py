#!/usr/bin/python3
"""
Float64 reference of SOAP (issue 17), written in numpy from the paper (Vyas et al. 2024,
arXiv 2409.11321, Algorithm 3) and the authors' soap.py (github.com/nikhilvyas/SOAP, after its
"momentum change" commit: the first moment lives in the eigenbasis), independently of the
TypeScript code.

    /usr/bin/python3 scripts/reference/soap_reference.py       (writes test/fixtures/soap-reference.json)
    SOAP_PY=/path/to/soap.py /usr/bin/python3 scripts/reference/soap_reference.py
        also runs the authors' torch class in float64 on the same gradients and records the
        largest relative difference of its parameter trajectory from this port (no code of it is
        stored or committed). soap.py computes its QR refresh in float32 (`m.data.float()` in
        get_orthogonal_matrix_QR), so agreement is to ~1e-5, not 1e-12.

Per parameter (merged shape G, factor GG_i per dimension unless d_i > max_precond_dim, or 1-D
without precondition_1d), at call c = 0, 1, ...:
  c == 0: GG_i = (1 - shampoo_beta) G_(i) G_(i)^T; Q_i = eigh(GG_i) columns reversed; p unchanged.
  else t = c:
    gp = project(G) (x_i Q_i^T);  m = b1 m + (1 - b1) gp;  v = b2 v + (1 - b2) gp^2
    u = project_back(m / (sqrt(v) + eps)) (x_i Q_i); normalize_grads: u /= 1e-30 + rms(u)
    p -= lr (correct_bias ? sqrt(1 - b2^t) / (1 - b1^t) : 1) u;  p -= lr wd p
    m = project_back(m) (old Q); GG_i = lerp(GG_i, G_(i) G_(i)^T, 1 - shampoo_beta)
    if t % freq == 0: per factor: est = diag(Q^T GG Q), order = argsort desc (stable),
       v permuted along i, Q = qr(GG Q[:, order]).Q
    m = project(m) (new Q)                     (soap.py does the m rotation at every step)

Problem: per case, gradient g_t(w) = h * (w - target) + noise_t (elementwise), with h, target,
w0 and noise_t given by closed-form float32-rounded formulas that the test reproduces.

Rank-deficient first statistics (non-square matrices, vectors) have an arbitrary null-space
basis; for those cases (`inject_q0`) the fixture stores this port's first bases Q0 and the test
continues from them (and checks its own Q0 on the determined eigenvectors).

Also: numpy.linalg.qr of a few matrices (LAPACK signs) for src/linalg qr.
"""
import json
import math
import os

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
OUT = os.path.join(ROOT, 'test', 'fixtures', 'soap-reference.json')

DEFAULTS = dict(lr=3e-3, beta1=0.95, beta2=0.95, shampoo_beta=None, eps=1e-8, weight_decay=0.01,
                freq=10, max_dim=10000, merge_dims=False, precondition_1d=False,
                normalize_grads=False, correct_bias=True)

# name, shape, overrides, steps, inject_q0
CASES = [
    ('square', [6, 6], dict(lr=0.02, freq=5), 25, False),
    ('square-defaults', [5, 5], dict(), 25, False),
    ('tall', [9, 4], dict(lr=0.01, freq=4), 22, True),
    ('wide', [4, 9], dict(lr=0.01, freq=4, normalize_grads=True), 22, True),
    ('vector-1d', [7], dict(lr=0.01, freq=8, precondition_1d=True), 22, True),
    ('vector-adam', [7], dict(lr=0.01, correct_bias=False), 22, False),
    ('3d-merge', [3, 4, 5], dict(lr=0.01, freq=5, merge_dims=True, max_dim=12, shampoo_beta=0.9), 22, True),
    ('4d', [2, 3, 2, 4], dict(lr=0.01, freq=5, weight_decay=0.0), 22, False),
    ('dim-over-max', [7, 3], dict(lr=0.01, freq=4, max_dim=5), 22, False),
]
SAVED_STEPS = [1, 2, 3, 5, 6, 9, 11, 13, 16, 21, 22, 25]


def f32(x):
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def problem(n):
    k = np.arange(n, dtype=np.float64)
    w0 = f32(0.5 * np.sin(0.37 * k + 1.0))
    h = f32(0.5 + 2.0 * ((k * 0.618) % 1.0))
    target = f32(np.cos(0.21 * k))
    return w0, h, target


def noise(n, t):
    k = np.arange(n, dtype=np.float64)
    return f32(0.3 * np.sin(1.7 * k + 0.9 * t + 0.3 * t * k))


def merge_small_dims(shape, max_dim):
    sq = [d for d in shape if d != 1]
    if not sq:
        return [1]
    out = [sq[0]]
    for d in sq[1:]:
        if out[-1] * d <= max_dim:
            out[-1] *= d
        else:
            out.append(d)
    return out


def layout(shape, o):
    if len(shape) == 1:
        return list(shape), [o['precondition_1d'] and shape[0] <= o['max_dim']]
    merged = merge_small_dims(shape, o['max_dim']) if o['merge_dims'] else list(shape)
    return merged, [d <= o['max_dim'] for d in merged]


def mode_product(x, q, i, back):
    # x x_i Q^T (project) or x x_i Q (back) along axis i
    a = q if back else q.T
    y = np.tensordot(a, x, axes=([1], [i]))  # new axis first
    return np.moveaxis(y, 0, i)


def project(x, qs, back):
    for i, q in enumerate(qs):
        if q is not None:
            x = mode_product(x, q, i, back)
    return x


def gram(x, i):
    u = np.moveaxis(x, i, 0).reshape(x.shape[i], -1)
    return u @ u.T


class SoapRef:
    def __init__(self, shape, o):
        self.o = o
        self.shape = list(shape)
        self.merged, self.factored = layout(shape, o)
        self.c = 0
        self.m = np.zeros(self.merged)
        self.v = np.zeros(self.merged)
        self.gg = [np.zeros((d, d)) if f else None for d, f in zip(self.merged, self.factored)]
        self.q = None
        self.sb = o['beta2'] if o['shampoo_beta'] is None else o['shampoo_beta']

    def update_stats(self, G):
        for i, f in enumerate(self.factored):
            if f:
                self.gg[i] = self.sb * self.gg[i] + (1 - self.sb) * gram(G, i)

    def step(self, p, g):
        o = self.o
        G = g.reshape(self.merged)
        if self.c == 0:
            self.update_stats(G)
            self.q = []
            self.eig0 = []
            for i, f in enumerate(self.factored):
                if f:
                    w, V = np.linalg.eigh(self.gg[i])
                    self.q.append(V[:, ::-1].copy())
                    self.eig0.append(w[::-1].copy())
                else:
                    self.q.append(None)
                    self.eig0.append(None)
            self.q0 = [None if q is None else q.copy() for q in self.q]
            self.c += 1
            return p
        t = self.c
        gp = project(G, self.q, False)
        b1, b2 = o['beta1'], o['beta2']
        self.m = b1 * self.m + (1 - b1) * gp
        self.v = b2 * self.v + (1 - b2) * gp * gp
        u = project(self.m / (np.sqrt(self.v) + o['eps']), self.q, True)
        if o['normalize_grads']:
            u = u / (1e-30 + np.sqrt(np.mean(u * u)))
        s = o['lr'] * (math.sqrt(1 - b2 ** t) / (1 - b1 ** t) if o['correct_bias'] else 1.0)
        p = p - s * u.reshape(p.shape)
        if o['weight_decay'] > 0:
            p = p - o['lr'] * o['weight_decay'] * p
        # soap.py update_preconditioner: m back, statistics, maybe refresh, m forward
        m_orig = project(self.m, self.q, True)
        self.update_stats(G)
        if t % o['freq'] == 0:
            for i, f in enumerate(self.factored):
                if not f:
                    continue
                Q = self.q[i]
                est = np.einsum('ij,ij->j', Q, self.gg[i] @ Q)
                order = np.argsort(-est, kind='stable')
                self.v = np.take(self.v, order, axis=i)
                self.q[i] = np.linalg.qr(self.gg[i] @ Q[:, order])[0]
        self.m = project(m_orig, self.q, False)
        self.c += 1
        return p


def run_case(name, shape, over, steps, inject):
    o = dict(DEFAULTS, **over)
    n = int(np.prod(shape))
    w0, h, target = problem(n)
    ref = SoapRef(shape, o)
    p = w0.copy()
    traj = {}
    grads = []
    for c in range(steps + 1):
        g = h * (p - target) + noise(n, c)
        grads.append(g.copy())
        p = ref.step(p, g)
        if c in SAVED_STEPS:
            traj[c] = p.copy()
    opts = {
        'learningRate': o['lr'], 'beta1': o['beta1'], 'beta2': o['beta2'], 'eps': o['eps'],
        'weightDecay': o['weight_decay'], 'preconditionFrequency': o['freq'],
        'maxPreconditionDim': o['max_dim'], 'mergeDims': o['merge_dims'],
        'precondition1d': o['precondition_1d'], 'normalizeGrads': o['normalize_grads'],
        'correctBias': o['correct_bias'],
    }
    if o['shampoo_beta'] is not None:
        opts['shampooBeta'] = o['shampoo_beta']
    case = {
        'name': name, 'shape': shape, 'options': opts, 'steps': steps, 'injectQ0': inject,
        'merged': ref.merged, 'factored': ref.factored,
        'q0': [None if q is None else [[float('%.9g' % x) for x in row] for row in q] for q in ref.q0] if inject else None,
        'eig0': [None if e is None else [float('%.10g' % x) for x in e] for e in ref.eig0],
        'trajectory': {str(k): [float('%.8g' % x) for x in v] for k, v in traj.items()},
    }
    return case, grads, w0


def torch_cross_check(path, name, shape, over, steps, grads, w0, q0):
    """Runs the authors' soap.py (float64) on the same gradient sequence; max relative diff."""
    import importlib.util

    import torch

    torch.set_default_dtype(torch.float64)  # soap.py makes its statistics with the default dtype
    spec = importlib.util.spec_from_file_location('soap_authors', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    o = dict(DEFAULTS, **over)
    p = torch.nn.Parameter(torch.tensor(w0.reshape(shape), dtype=torch.float64))
    opt = mod.SOAP([p], lr=o['lr'], betas=(o['beta1'], o['beta2']),
                   shampoo_beta=-1 if o['shampoo_beta'] is None else o['shampoo_beta'], eps=o['eps'],
                   weight_decay=o['weight_decay'], precondition_frequency=o['freq'],
                   max_precond_dim=o['max_dim'], merge_dims=o['merge_dims'],
                   precondition_1d=o['precondition_1d'], normalize_grads=o['normalize_grads'],
                   correct_bias=o['correct_bias'])
    # the same gradients as the numpy run (g depends on p only through the numpy trajectory,
    # so the torch trajectory is compared step for step)
    out = {}
    for c in range(steps + 1):
        p.grad = torch.tensor(grads[c].reshape(shape), dtype=torch.float64)
        opt.step()
        if c == 0 and q0 is not None:
            st = opt.state[p]
            st['Q'] = [[] if q is None else torch.tensor(np.array(q), dtype=torch.float64) for q in q0]
        if c in SAVED_STEPS:
            out[c] = p.detach().numpy().reshape(-1).copy()
    return out


def main():
    cases = []
    cross = {}
    soap_py = os.environ.get('SOAP_PY')
    for name, shape, over, steps, inject in CASES:
        case, grads, w0 = run_case(name, shape, over, steps, inject)
        cases.append(case)
        if soap_py:
            q0 = case['q0'] if inject else None
            tr = torch_cross_check(soap_py, name, shape, over, steps, grads, w0, q0)
            worst = 0.0
            for k, v in tr.items():
                ref = np.array(case['trajectory'][str(k)])
                worst = max(worst, float(np.max(np.abs(v - ref)) / (np.max(np.abs(ref - w0)) + 1e-30)))
            cross[name] = worst
            print(f'{name}: authors soap.py (torch float64) vs this port: max |diff| / max |p - p0| = {worst:.2e}')
    rng = np.random.default_rng(3)
    qr_cases = []
    for a in [f32(rng.standard_normal((5, 5))), f32(rng.standard_normal((7, 4)))]:
        q, r = np.linalg.qr(a)
        qr_cases.append({'a': a.tolist(), 'q': q.tolist(), 'r': r.tolist()})
    # rank-deficient (rank 2) 4x4
    b = f32(rng.standard_normal((4, 2)))
    a = f32(b @ b.T)
    q, r = np.linalg.qr(a)
    qr_cases.append({'a': a.tolist(), 'q': q.tolist(), 'r': r.tolist(), 'rankDeficient': True})
    data = {
        'generator': 'scripts/reference/soap_reference.py',
        'savedSteps': SAVED_STEPS,
        'torchCrossCheck': cross or None,
        'cases': cases,
        'qr': qr_cases,
    }
    with open(OUT, 'w') as f:
        json.dump(data, f, separators=(',', ':'))
    print('wrote', OUT, os.path.getsize(OUT), 'bytes')


if __name__ == '__main__':
    main()
