#!/usr/bin/env python3
"""Float64 reference for K-FAC's exact quadratic model (test/kfac-quadratic.test.ts).

For a tiny tanh MLP 3-4-3 (s1 = x W1 + b1, h = tanh(s1), z = h W2 + b2) on 6 examples and the
three losses K-FAC knows, as tfjs computes them:
  softmax-cross-entropy  mean_i CE(softmax(z_i), y_i)             (tf.losses.softmaxCrossEntropy)
  sigmoid-cross-entropy  mean_{i,k} BCE(sigmoid(z_ik), y_ik)      (tf.losses.sigmoidCrossEntropy)
  mse                    mean_{i,k} (z_ik - y_ik)^2               (tf.losses.meanSquaredError)
writes the parameters, data, loss, gradient and the full Gauss-Newton matrix
GGN = J^T H_L J (J: Jacobian of the logits w.r.t. the flattened parameters [W1, b1, W2, b2],
row-major, by torch.autograd.functional.jacobian; H_L: Hessian of the loss w.r.t. the logits,
by torch.autograd.functional.hessian),
which for these losses equals the Fisher. Run with /usr/bin/python3 (numpy + torch):

  /usr/bin/python3 scripts/reference/kfac_ggn.py   # writes test/fixtures/kfac-ggn.json
"""
import json
import os

import numpy as np
import torch
from torch.autograd.functional import hessian, jacobian

torch.set_default_dtype(torch.float64)
N, IN, HID, OUT = 6, 3, 4, 3
rng = np.random.default_rng(20261201)

x = np.array([[np.sin(i + 1.0), np.cos(1.7 * i), 0.5 * np.sin(0.3 * i + 2.0)] for i in range(N)])
shapes = [(IN, HID), (HID,), (HID, OUT), (OUT,)]
sizes = [int(np.prod(s)) for s in shapes]


def unflatten(theta):
    out, o = [], 0
    for s, n in zip(shapes, sizes):
        out.append(theta[o:o + n].reshape(s))
        o += n
    return out


def logits(theta, xt):
    W1, b1, W2, b2 = unflatten(theta)
    return torch.tanh(xt @ W1 + b1) @ W2 + b2


def loss_fn(kind, y):
    def f(z):
        if kind == 'softmax-cross-entropy':
            return -(y * torch.log_softmax(z, dim=1)).sum(1).mean()
        if kind == 'sigmoid-cross-entropy':
            return (torch.clamp(z, min=0) - z * y + torch.log1p(torch.exp(-z.abs()))).mean()
        return ((z - y) ** 2).mean()
    return f


cases = {}
for kind in ['softmax-cross-entropy', 'sigmoid-cross-entropy', 'mse']:
    theta = np.concatenate([rng.normal(0, 0.9, n) for n in sizes])
    if kind == 'softmax-cross-entropy':
        y = np.eye(OUT)[rng.integers(0, OUT, N)]
    elif kind == 'sigmoid-cross-entropy':
        y = (rng.random((N, OUT)) < 0.5).astype(float)
    else:
        y = rng.normal(0, 1, (N, OUT))
    th = torch.tensor(theta)
    xt = torch.tensor(x)
    yt = torch.tensor(y)
    L = loss_fn(kind, yt)
    z = logits(th, xt)
    J = jacobian(lambda t: logits(t, xt), th).reshape(N * OUT, -1)  # [N*OUT, P]
    H = hessian(L, z).reshape(N * OUT, N * OUT)
    ggn = J.T @ H @ J
    value = L(z)
    th_req = th.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(L(logits(th_req, xt)), th_req)
    cases[kind] = {
        'theta': theta.tolist(),
        'y': y.tolist(),
        'loss': float(value),
        'grad': g.numpy().tolist(),
        'ggn': [[float(f'{v:.12g}') for v in row] for row in ggn.numpy()],
    }

out = {
    'description': 'tanh MLP 3-4-3, params [W1 (3x4 row-major), b1, W2 (4x3), b2]; GGN = J^T H_L J in float64 (scripts/reference/kfac_ggn.py)',
    'shapes': [list(s) for s in shapes],
    'x': x.tolist(),
    'cases': cases,
}
path = os.path.join(os.path.dirname(__file__), '..', '..', 'test', 'fixtures', 'kfac-ggn.json')
with open(path, 'w') as fh:
    json.dump(out, fh)
print('wrote', os.path.normpath(path), os.path.getsize(path), 'bytes')
