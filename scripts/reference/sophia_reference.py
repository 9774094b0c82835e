#!/usr/bin/python3
"""
Float64 reference of Sophia (issue 17), written from Liu et al. (2023), Algorithm 3 (with the
Hutchinson and Gauss-Newton-Bartlett estimators of Algorithms 1 and 2), the authors' SophiaG
(Liuhong99/Sophia sophia.py) and optax contrib sophia, independently of the TypeScript code.

    /usr/bin/python3 scripts/reference/sophia_reference.py   (writes test/fixtures/sophia-reference.json)

Per step (iteration i = 0, 1, ...; exact gradients and Hessian products, torch float64):
  if i % k == 0: D = estimator (hutchinson: u * (H u), stored probes; gnb: S * g^2 of the loss
                 against targets sampled with stored uniforms); h = b2 h + (1 - b2) D
  m = b1 m + (1 - b1) g
  p = p (1 - lr weight_decay)
  p = p - lr clip(m / max(rho h, eps), -c, c)
Also records the fraction of clipped coordinates per step (the fixtures exercise both regimes) and
the smallest distance of a sampling uniform to its decision boundary (so float32 sampling on the
TypeScript side draws the same targets).
"""
import json
import os

import numpy as np

from diag_problems import gnb, hutchinson, loss_and_grad, make_problem, n_uniforms, problem_json, signs_string

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
OUT = os.path.join(ROOT, 'test', 'fixtures', 'sophia-reference.json')
STEPS = 20


def run(problem, opts, rng):
    lr = opts.get('learningRate', 1e-4)
    b1, b2 = opts.get('beta1', 0.965), opts.get('beta2', 0.99)
    rho = opts.get('rho', 0.04)
    wd = opts.get('weightDecay', 0.1)
    k = opts.get('updateInterval', 10)
    c = opts.get('clipThreshold', 1.0)
    eps = opts.get('eps', 1e-15)
    est = opts['estimator']
    params = {n: v.copy() for n, v in problem['params'].items()}
    total = sum(v.size for v in params.values())
    m = {n: np.zeros_like(v) for n, v in params.items()}
    h = {n: np.zeros_like(v) for n, v in params.items()}
    probes, traj, losses, clipped = [], [], [], []
    margin = np.inf
    for i in range(STEPS):
        L, g = loss_and_grad(problem, params)
        losses.append(L)
        if i % k == 0:
            if est == 'hutchinson':
                signs = rng.choice([-1.0, 1.0], size=total)
                probes.append({'iteration': i, 'rademacher': signs_string(signs)})
                D = hutchinson(problem, params, signs)
            else:
                u = np.round(rng.uniform(size=n_uniforms(problem)), 8)
                u = np.minimum(u, 1 - 1e-8)
                D, mg, used = gnb(problem, params, u)
                assert used == len(u)
                margin = min(margin, mg)
                probes.append({'iteration': i, 'uniforms': u.tolist()})
            for name in params:
                h[name] = b2 * h[name] + (1 - b2) * D[name]
        nclip = 0
        for name, p in params.items():
            m[name] = b1 * m[name] + (1 - b1) * g[name]
            p = p * (1 - lr * wd)
            ratio = m[name] / np.maximum(rho * h[name], eps)
            nclip += int(np.sum(np.abs(ratio) >= c))
            params[name] = p - lr * np.clip(ratio, -c, c)
        clipped.append(nclip / total)
        traj.append({n: p.ravel().tolist() for n, p in params.items()})
    return {'afterStep1': traj[0], 'afterStep20': traj[-1], 'losses': losses, 'probes': probes,
            'clippedFraction': clipped, 'samplingMargin': None if margin == np.inf else margin}


CASES = [
    ('mlp Sophia-G (softmax) k 3', 'mlp-softmax',
     {'estimator': 'gnb', 'learningRate': 0.01, 'updateInterval': 3, 'rho': 20.0}),
    ('mlp Sophia-H k 1, clip 0.5', 'mlp-softmax',
     {'estimator': 'hutchinson', 'learningRate': 0.01, 'updateInterval': 1, 'rho': 20.0, 'clipThreshold': 0.5,
      'weightDecay': 0.0}),
    ('mlp Sophia-G (sigmoid) k 2', 'mlp-sigmoid',
     {'estimator': 'gnb', 'learningRate': 0.02, 'updateInterval': 2, 'rho': 20.0, 'beta1': 0.9}),
    ('conv Sophia-G (mse) k 3', 'conv-mse',
     {'estimator': 'gnb', 'learningRate': 0.01, 'updateInterval': 3, 'rho': 0.5}),
    ('conv Sophia-H k 2', 'conv-mse',
     {'estimator': 'hutchinson', 'learningRate': 0.01, 'updateInterval': 2, 'rho': 0.3, 'beta2': 0.9}),
]


def main():
    rng = np.random.default_rng(23)
    problems = {name: make_problem(name, rng) for name in ['mlp-softmax', 'mlp-sigmoid', 'conv-mse']}
    fixture = {'steps': STEPS, 'problems': {k: problem_json(p) for k, p in problems.items()}, 'cases': []}
    for label, pname, opts in CASES:
        r = run(problems[pname], opts, rng)
        fixture['cases'].append({'name': label, 'problem': pname, 'options': opts, **r})
        cf = r['clippedFraction']
        print(f'{label}: loss {r["losses"][0]:.4f} -> {r["losses"][-1]:.4f}; clipped fraction '
              f'{min(cf):.2f}..{max(cf):.2f}; sampling margin {r["samplingMargin"]}')
    with open(OUT, 'w') as f:
        json.dump(fixture, f, separators=(',', ':'))
    print('wrote', OUT, os.path.getsize(OUT), 'bytes')


if __name__ == '__main__':
    main()
