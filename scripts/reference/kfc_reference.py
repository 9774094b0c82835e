#!/usr/bin/env python3
"""Float64 reference for K-FAC's convolution blocks (KFC; test/kfac-conv.test.ts).

A tiny conv net, NHWC as tfjs-layers builds it:
  x [4, 6, 6, 2]
  conv1: 3x3, 2 -> 3 channels, stride 1, padding 'same', bias, tanh     (s1 [4, 6, 6, 3])
  conv2: 3x3, 3 -> 4 channels, stride 2, padding 'valid', bias, linear  (s2 [4, 2, 2, 4])
  flatten (NHWC order), dense 16 -> 3, softmax; loss: mean categorical cross-entropy.
Forward and backward in torch float64 give the layer inputs and the gradients ds of the batch-mean
loss at each pre-activation (the empirical Fisher's cotangents). From them, written from
Grosse & Martens (2016) and kfac-jax's Conv2DTwoKroneckerFactored, with patches extracted by
explicit loops (not by the code under test's strided slices):

  p_it  patch of example i at output location t, ordered (row, column, channel), 1 appended
  g_it  = n ds_it (per-example loss gradient at location t),  L = number of output locations
  A_jax = sum_{i,t} p_it p_it^T / (n L),   G_jax = sum_{i,t} g_it g_it^T / (n L),   F ~ L A_jax (x) G_jax

and kfac-jax's damped inverse of that block for damping lambda (pi-adjusted factored Tikhonov on
the unscaled factors with lambda / L, the result scaled by 1 / L):
  pi^2 = (tr A_jax / dim A) / (tr G_jax / dim G)
  F^-1 V ~ (1/L) (A_jax + pi sqrt(lambda/L) I)^-1 V (G_jax + sqrt(lambda/L)/pi I)^-1
The dense output layer is the same with L = 1 (inputs a_i, no patches). The preconditioned update
of one K-FAC step with a fixed learning rate and no momentum is  -lr F^-1 [dW; db]  per block.
The fixture stores A = A_jax and G = L G_jax (how src/layers/conv.ts stores them, see its header),
the gradients, the updates, the per-example projections u_i = sum_t (p_it^T V) . ds_it of the
conv blocks for V = their update (the quadratic model's J u), and G of 'exact' estimation (the
columns of a root of the softmax Hessian back-propagated to each conv layer, Gexact). Run with /usr/bin/python3:

  /usr/bin/python3 scripts/reference/kfc_reference.py   # writes test/fixtures/kfc-reference.json
"""
import json
import os

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20261201)
N, H, W, CIN = 4, 6, 6, 2
LR, DAMPING = 0.5, 0.1

x = rng.normal(size=(N, H, W, CIN))
labels = np.array([0, 2, 1, 2])
y = np.eye(3)[labels]
convs = [
    # name, kh, kw, cin, cout, stride, padding, activation
    ('conv1', 3, 3, 2, 3, 1, 'same', 'tanh'),
    ('conv2', 3, 3, 3, 4, 2, 'valid', 'linear'),
]
params = {}
for name, kh, kw, cin, cout, *_ in convs:
    params[name] = (rng.normal(size=(kh, kw, cin, cout)) * 0.3, rng.normal(size=(cout,)) * 0.1)
params['dense'] = (rng.normal(size=(16, 3)) * 0.3, rng.normal(size=(3,)) * 0.1)


def pads(size, k, stride, padding):
    """(out, before, after) with TensorFlow's 'same' / 'valid' rule."""
    if padding == 'valid':
        return (size - k) // stride + 1, 0, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return out, total // 2, total - total // 2


def patches(a, kh, kw, stride, padding):
    """[n, Ho, Wo, kh*kw*cin] by explicit loops over locations and taps."""
    n, h, w, c = a.shape
    ho, top, bottom = pads(h, kh, stride, padding)
    wo, left, right = pads(w, kw, stride, padding)
    ap = np.zeros((n, h + top + bottom, w + left + right, c))
    ap[:, top:top + h, left:left + w, :] = a
    out = np.zeros((n, ho, wo, kh * kw * c))
    for r in range(ho):
        for q in range(wo):
            col = 0
            for i in range(kh):
                for j in range(kw):
                    out[:, r, q, col:col + c] = ap[:, r * stride + i, q * stride + j, :]
                    col += c
    return out


# ---- forward / backward in torch (NCHW inside, NHWC at the boundaries)
tp = {k: (torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)) for k, (w, b) in params.items()}
h_in = torch.tensor(x)
inputs, pre = {}, {}
for name, kh, kw, cin, cout, stride, padding, act in convs:
    inputs[name] = h_in.detach().numpy().copy()
    wk, bk = tp[name]
    _, top, bottom = pads(h_in.shape[1], kh, stride, padding)
    _, left, right = pads(h_in.shape[2], kw, stride, padding)
    xin = torch.nn.functional.pad(h_in.permute(0, 3, 1, 2), (left, right, top, bottom))
    s = torch.nn.functional.conv2d(xin, wk.permute(3, 2, 0, 1), bk, stride=stride).permute(0, 2, 3, 1)
    s.retain_grad()
    pre[name] = s
    h_in = torch.tanh(s) if act == 'tanh' else s
flat = h_in.reshape(N, -1)
inputs['dense'] = flat.detach().numpy().copy()
z = flat @ tp['dense'][0] + tp['dense'][1]
z.retain_grad()
pre['dense'] = z
loss = -(torch.tensor(y) * torch.log_softmax(z, 1)).sum(1).mean()
loss.backward(retain_graph=True)
# Snapshot now: retain_grad hooks also accumulate the exact-curvature back-propagations below.
true_ds = {k: t.grad.detach().numpy().copy() for k, t in pre.items()}


# 'exact' estimation: G from the columns c_k of a root of the softmax cross-entropy Hessian in the
# logits (per example sum_k c_k c_k^T = diag(p) - p p^T; c_k = sqrt(p_k) (e_k - p) / n, scaled like
# the batch-mean loss) back-propagated to each conv pre-activation:
#   G_exact = n sum_k sum_{i,t} ds^k_it ds^k_it^T   (ds^k = J_s^T c_k; the sum over k is not averaged)
p_soft = torch.softmax(z, 1).detach()
exact_G = {c[0]: np.zeros((c[4], c[4])) for c in convs}
for k in range(3):
    e = torch.zeros(3)
    e[k] = 1
    ck = torch.sqrt(p_soft[:, k:k + 1]) * (e[None, :] - p_soft) / N
    grads = torch.autograd.grad(z, [pre[c[0]] for c in convs], grad_outputs=ck, retain_graph=True)
    for c, dsk in zip(convs, grads):
        d = dsk.detach().numpy().reshape(-1, c[4])
        exact_G[c[0]] += N * d.T @ d


def damped_inverse_apply(A, G, V, lam, L):
    """kfac-jax: (1/L) (A + pi sqrt(lam/L))^-1 V (G + sqrt(lam/L)/pi)^-1."""
    lam_n = lam / L
    pi = np.sqrt((np.trace(A) / A.shape[0]) / (np.trace(G) / G.shape[0]))
    Ainv = np.linalg.inv(A + pi * np.sqrt(lam_n) * np.eye(A.shape[0]))
    Ginv = np.linalg.inv(G + np.sqrt(lam_n) / pi * np.eye(G.shape[0]))
    return Ainv @ V @ Ginv / L


blocks = {}
for name, kh, kw, cin, cout, stride, padding, act in convs:
    ds = true_ds[name]  # [n, Ho, Wo, cout], gradients of the batch-mean loss
    P = patches(inputs[name], kh, kw, stride, padding)
    L = P.shape[1] * P.shape[2]
    Pm = np.concatenate([P.reshape(-1, P.shape[-1]), np.ones((N * L, 1))], 1)
    g = (N * ds).reshape(-1, cout)
    A_jax = Pm.T @ Pm / (N * L)
    G_jax = g.T @ g / (N * L)
    wk, bk = tp[name]
    grad = np.concatenate([wk.grad.numpy().reshape(-1, cout), bk.grad.numpy()[None, :]], 0)
    update = -LR * damped_inverse_apply(A_jax, G_jax, grad, DAMPING, L)
    # The quadratic model's projections for V = update: u_i = sum_t (p_it^T V) . ds_it.
    pv = (Pm @ update).reshape(N, L, cout)
    u = (pv * ds.reshape(N, L, cout)).sum((1, 2))
    blocks[name] = {
        'locations': L,
        'A': A_jax.tolist(),
        'G': (L * G_jax).tolist(),
        'ds': ds.reshape(-1).tolist(),
        'kernelUpdate': update[:-1].reshape(kh, kw, cin, cout).reshape(-1).tolist(),
        'biasUpdate': update[-1].tolist(),
        'projections': u.tolist(),
        'Gexact': exact_G[name].tolist(),
    }

a = np.concatenate([inputs['dense'], np.ones((N, 1))], 1)
g = N * true_ds['dense']
A = a.T @ a / N
G = g.T @ g / N
grad = np.concatenate([tp['dense'][0].grad.numpy(), tp['dense'][1].grad.numpy()[None, :]], 0)
update = -LR * damped_inverse_apply(A, G, grad, DAMPING, 1)
blocks['dense'] = {
    'locations': 1,
    'A': A.tolist(),
    'G': G.tolist(),
    'kernelUpdate': update[:-1].reshape(-1).tolist(),
    'biasUpdate': update[-1].tolist(),
}

fixture = {
    'description': 'scripts/reference/kfc_reference.py: float64 KFC factors (A = kfac-jax A, G = locations * kfac-jax G), '
                   'empirical-Fisher K-FAC update -lr F^-1 grad with kfac-jax pi-adjusted damping, projections',
    'learningRate': LR,
    'damping': DAMPING,
    'x': x.reshape(-1).tolist(),
    'xShape': [N, H, W, CIN],
    'y': y.tolist(),
    'loss': float(loss.item()),
    'layers': [{'name': c[0], 'kernelSize': c[1], 'filters': c[4], 'strides': c[5], 'padding': c[6], 'activation': c[7]}
               for c in convs],
    'params': {k: {'kernel': w.reshape(-1).tolist(), 'kernelShape': list(w.shape), 'bias': b.tolist()}
               for k, (w, b) in params.items()},
    'conv1Input': inputs['conv1'].reshape(-1).tolist(),
    'conv2Input': inputs['conv2'].reshape(-1).tolist(),
    'blocks': blocks,
}
out = os.path.join(os.path.dirname(__file__), '..', '..', 'test', 'fixtures', 'kfc-reference.json')


def rounded(v):
    if isinstance(v, float):
        return float(f'{v:.12g}')
    if isinstance(v, list):
        return [rounded(e) for e in v]
    if isinstance(v, dict):
        return {k: rounded(e) for k, e in v.items()}
    return v


with open(out, 'w') as f:
    json.dump(rounded(fixture), f, separators=(',', ':'))
print(f'wrote {os.path.normpath(out)} ({os.path.getsize(out)} bytes), loss {loss.item():.6f}')
