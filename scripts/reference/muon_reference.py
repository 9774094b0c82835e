#!/usr/bin/python3
"""
Float64 reference of Muon (issue 17), written in numpy from optax's contrib.muon
(google-deepmind/optax, optax/contrib/_muon.py: scale_by_muon, orthogonalize_via_newton_schulz,
scale_by_shape) and KellerJordan/Muon, independently of the TypeScript code.

    /usr/bin/python3 scripts/reference/muon_reference.py      (writes test/fixtures/muon-reference.json)

2-D parameter p ([rows, cols]), gradient g, step t = 1, 2, ...:
  mu   = beta mu + (1 - beta) g                                 (zero init)
  mhat = nesterov ? beta mu / (1 - beta^(t+1)) + (1 - beta) g / (1 - beta^t) : mu / (1 - beta^t)
  O    = NS(mhat): transpose if rows > cols; X = X / (||X||_F + eps);
         nsSteps times: A = X X^T, X = a X + (b A + c A A) X; transpose back
  adaptive: O = sum(mhat * O) O
  O   *= consistent_rms is None ? sqrt(max(1, cols / rows)) : sqrt(max(rows, cols)) consistent_rms
  p    = p - lr (O + weight_decay p)
Other parameters: AdamW (optax adamw without nesterov; eps = Muon's eps):
  m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
  p = p - lr_adam (m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + adam_weight_decay p)

The loss is a diagonal quadratic per parameter, L = sum_p 0.5 sum(h_p * (p - target_p)^2), so the
gradient h_p * (p - target_p) depends on the trajectory; the test computes it with tfjs autodiff
from the same float32 numbers (h, target, initial p are stored float32-exact).

Also stores NS(X) for a few matrices (float64), with the singular values of X and of NS(X), for the
orthogonality property test.
"""
import json
import os

import numpy as np

NS_COEFFS = (3.4445, -4.7750, 2.0315)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
OUT = os.path.join(ROOT, 'test', 'fixtures', 'muon-reference.json')


def f32(x):
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def newton_schulz(x, coeffs=NS_COEFFS, steps=5, eps=1e-8):
    a, b, c = coeffs
    transposed = x.shape[0] > x.shape[1]
    if transposed:
        x = x.T
    x = x / (np.linalg.norm(x) + eps)
    for _ in range(steps):
        A = x @ x.T
        x = a * x + (b * A + c * A @ A) @ x
    return x.T if transposed else x


def run(params, curv, targets, opts, steps):
    """Returns the parameters after each step (list over steps of dict name -> array)."""
    o = dict(lr=0.02, beta=0.95, eps=1e-8, weight_decay=0.0, nesterov=True, adaptive=False,
             consistent_rms=None, adam_b1=0.9, adam_b2=0.999, adam_weight_decay=0.0,
             adam_lr=None, ns_steps=5)
    o.update(opts)
    p = {k: v.copy() for k, v in params.items()}
    mu = {k: np.zeros_like(v) for k, v in params.items()}
    nu = {k: np.zeros_like(v) for k, v in params.items()}
    out = []
    for t in range(1, steps + 1):
        for k in p:
            g = curv[k] * (p[k] - targets[k])
            lr = o['lr']
            if p[k].ndim == 2:
                beta = o['beta']
                mu[k] = beta * mu[k] + (1 - beta) * g
                if o['nesterov']:
                    mhat = beta * mu[k] / (1 - beta ** (t + 1)) + (1 - beta) * g / (1 - beta ** t)
                else:
                    mhat = mu[k] / (1 - beta ** t)
                O = newton_schulz(mhat, steps=o['ns_steps'], eps=o['eps'])
                if o['adaptive']:
                    O = np.sum(mhat * O) * O
                rows, cols = p[k].shape
                if o['consistent_rms'] is None:
                    O = O * np.sqrt(max(1.0, cols / rows))
                else:
                    O = O * np.sqrt(max(rows, cols)) * o['consistent_rms']
                p[k] = p[k] - lr * (O + o['weight_decay'] * p[k])
            else:
                alr = lr if o['adam_lr'] is None else o['adam_lr']
                b1, b2 = o['adam_b1'], o['adam_b2']
                mu[k] = b1 * mu[k] + (1 - b1) * g
                nu[k] = b2 * nu[k] + (1 - b2) * g * g
                upd = (mu[k] / (1 - b1 ** t)) / (np.sqrt(nu[k] / (1 - b2 ** t)) + o['eps'])
                p[k] = p[k] - alr * (upd + o['adam_weight_decay'] * p[k])
        out.append({k: v.copy() for k, v in p.items()})
    return out


def main():
    rng = np.random.default_rng(17)
    shapes = {'square': (6, 6), 'tall': (9, 4), 'wide': (4, 9), 'bias': (5,)}
    params = {k: f32(rng.normal(size=s) * 0.5) for k, s in shapes.items()}
    curv = {k: f32(rng.uniform(0.2, 3.0, size=s)) for k, s in shapes.items()}
    targets = {k: f32(rng.normal(size=s)) for k, s in shapes.items()}

    cases = [
        ('defaults', {}, {}),
        ('heavy-ball, weight decay, adaptive, adam options',
         dict(nesterov=False, weight_decay=0.1, adaptive=True, beta=0.9, adam_b1=0.8, adam_b2=0.95,
              adam_weight_decay=0.05, adam_lr=0.01, lr=0.05),
         dict(nesterov=False, weightDecay=0.1, adaptive=True, beta=0.9, adamB1=0.8, adamB2=0.95,
              adamWeightDecay=0.05, adamLearningRate=0.01, learningRate=0.05)),
        ('consistentRms 0.2, nsSteps 3',
         dict(consistent_rms=0.2, ns_steps=3, lr=0.01),
         dict(consistentRms=0.2, nsSteps=3, learningRate=0.01)),
    ]
    steps = 20
    fixture = {
        'description': 'Muon float64 reference (scripts/reference/muon_reference.py); loss sum_p 0.5 sum(h (p - target)^2)',
        'shapes': {k: list(s) for k, s in shapes.items()},
        'init': {k: v.ravel().tolist() for k, v in params.items()},
        'curvature': {k: v.ravel().tolist() for k, v in curv.items()},
        'target': {k: v.ravel().tolist() for k, v in targets.items()},
        'steps': steps,
        'cases': [],
    }
    for name, py_opts, ts_opts in cases:
        traj = run(params, curv, targets, py_opts, steps)
        fixture['cases'].append({
            'name': name,
            'options': ts_opts,
            'afterStep1': {k: v.ravel().tolist() for k, v in traj[0].items()},
            'afterStep20': {k: v.ravel().tolist() for k, v in traj[-1].items()},
        })

    # NS outputs for matrices with a spread of singular values (well above the band's lower end).
    ns = []
    for shape, svals in [((8, 8), np.geomspace(1, 1e-2, 8)), ((12, 5), np.geomspace(3, 0.01, 5)),
                         ((5, 12), np.array([100.0, 10.0, 1.0, 0.5, 0.1]))]:
        m = min(shape)
        U, _ = np.linalg.qr(rng.normal(size=(shape[0], m)))
        V, _ = np.linalg.qr(rng.normal(size=(shape[1], m)))
        X = f32((U * svals) @ V.T)
        Y = newton_schulz(X)
        ns.append({
            'shape': list(shape),
            'x': X.ravel().tolist(),
            'ns': Y.ravel().tolist(),
            'singularValuesX': np.linalg.svd(X, compute_uv=False).tolist(),
            'singularValuesNS': np.linalg.svd(Y, compute_uv=False).tolist(),
        })
    fixture['newtonSchulz'] = ns
    with open(OUT, 'w') as f:
        json.dump(fixture, f, separators=(',', ':'))
    print('wrote', OUT, os.path.getsize(OUT), 'bytes')
    for e in ns:
        print(e['shape'], 'sv(NS) range', min(e['singularValuesNS']), max(e['singularValuesNS']))


if __name__ == '__main__':
    main()
