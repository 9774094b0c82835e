#!/usr/bin/env python3
"""Float64 PyTorch reference for test/conv-wasm.test.ts (issue 18, conv training on wasm).

A small conv net, written here with torch.nn.functional in float64, independently of curvature's
code and of tfjs:

    x [2, 8, 8, 2] (NHWC in the fixture; NCHW inside torch)
    -> conv 3x3, 3 filters, stride 1, 'same' (pad 1), + b1, tanh        [2, 8, 8, 3]
    -> max pool 2x2, stride 2, 'valid'                                   [2, 4, 4, 3]
    -> conv 3x3, 4 filters, stride 2, TensorFlow 'same' (pad 0 top/left, 1 bottom/right) + b2,
       tanh                                                              [2, 2, 2, 4]
    -> average pool 2x2, stride 1, 'valid'                               [2, 1, 1, 4]
    -> flatten, dense 4 -> 3 (+ b3), mean softmax cross-entropy with integer labels

Parameters theta = (W1 [3,3,2,3] HWIO, b1, W2 [3,3,3,4], b2, W3 [4,3], b3), a direction v of the
same shapes. Written: the loss, its gradient and the Hessian-vector product H v (double backward
through torch.autograd.grad), all in the tfjs layouts, to test/fixtures/conv-hvp.json.

Run:  /usr/bin/python3 scripts/reference/conv_reference.py
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(18)


def r(*shape, scale=1.0):
    return np.round(rng.normal(0.0, scale, size=shape), 6)


x_nhwc = r(2, 8, 8, 2)
labels = [1, 2]
shapes = {'W1': (3, 3, 2, 3), 'b1': (3,), 'W2': (3, 3, 3, 4), 'b2': (4,), 'W3': (4, 3), 'b3': (3,)}
theta = {k: r(*s, scale=0.5) for k, s in shapes.items()}
v = {k: r(*s) for k, s in shapes.items()}


def hwio_to_oihw(w):
    return w.permute(3, 2, 0, 1)


def loss_fn(p):
    x = torch.tensor(x_nhwc).permute(0, 3, 1, 2)  # NCHW
    h = torch.tanh(F.conv2d(x, hwio_to_oihw(p['W1']), p['b1'], stride=1, padding=1))
    h = F.max_pool2d(h, 2, 2)
    h = F.pad(h, (0, 1, 0, 1))  # TF 'same' for 4 -> 2 with a 3x3 kernel at stride 2
    h = torch.tanh(F.conv2d(h, hwio_to_oihw(p['W2']), p['b2'], stride=2))
    h = F.avg_pool2d(h, 2, 1)
    h = h.reshape(h.shape[0], -1)
    logits = h @ p['W3'] + p['b3']
    return F.cross_entropy(logits, torch.tensor(labels))


params = {k: torch.tensor(a, requires_grad=True) for k, a in theta.items()}
keys = list(shapes)
loss = loss_fn(params)
grads = torch.autograd.grad(loss, [params[k] for k in keys], create_graph=True)
gv = sum((g * torch.tensor(v[k])).sum() for g, k in zip(grads, keys))
hv = torch.autograd.grad(gv, [params[k] for k in keys])

# Self-check against central differences of the gradient (float64).
eps = 1e-5
def grad_at(shift):
    p = {k: torch.tensor(theta[k] + shift * v[k], requires_grad=True) for k in keys}
    return torch.autograd.grad(loss_fn(p), [p[k] for k in keys])
gp, gm = grad_at(eps), grad_at(-eps)
for k, a, b, h in zip(keys, gp, gm, hv):
    fd = (a - b) / (2 * eps)
    assert torch.allclose(fd, h, rtol=1e-6, atol=1e-8), k

out = {
    'description': 'scripts/reference/conv_reference.py: float64 PyTorch loss, gradient and HVP of a conv net',
    'x': x_nhwc.reshape(-1).tolist(),
    'xShape': list(x_nhwc.shape),
    'labels': labels,
    'theta': {k: theta[k].reshape(-1).tolist() for k in keys},
    'shapes': {k: list(s) for k, s in shapes.items()},
    'v': {k: v[k].reshape(-1).tolist() for k in keys},
    'loss': float(loss),
    'grad': {k: g.detach().numpy().reshape(-1).tolist() for k, g in zip(keys, grads)},
    'hvp': {k: h.numpy().reshape(-1).tolist() for k, h in zip(keys, hv)},
}
path = os.path.join(os.path.dirname(__file__), '..', '..', 'test', 'fixtures', 'conv-hvp.json')
with open(path, 'w') as f:
    json.dump(out, f)
print('wrote', os.path.normpath(path), 'loss', out['loss'])
