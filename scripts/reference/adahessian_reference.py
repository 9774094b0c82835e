#!/usr/bin/python3
"""
Float64 reference of AdaHessian (issue 17), written from Yao et al. (2021) and the authors' code
(amirgholami/adahessian, instruction/adahessian.py: get_trace with spatial_average_block_size,
and the update of image_classification/optim_adahessian.py), independently of the TypeScript code.

    /usr/bin/python3 scripts/reference/adahessian_reference.py   (writes test/fixtures/adahessian-reference.json)

Per step (iteration i = 0, 1, ...; the gradient g and Hessian products are exact, torch float64):
  if i % update_each == 0: D = u * (H u) (u: stored +-1 probes); Dbar = spatial_average(|D|) in
      PyTorch layout (the authors' rules, below); v = b2 v + (1 - b2) Dbar^2; n += 1
  m = b1 m + (1 - b1) g;  denom = (sqrt(v) / sqrt(1 - b2^n))^k + eps      (t = i + 1)
  p = p - lr (m / (1 - b1^t) / denom + weight_decay p)
Spatial average (authors' get_trace, on torch layouts: Dense [out, in], conv2d [out, in, kh, kw]):
  block -1: 1-D none; 2-D mean over dim 1; 4-D mean over dims [2, 3]
  block b > 0: view(-1, b), mean over each block, repeat_interleave back.
The tfjs parameters are converted to torch layout for the average and back.
"""
import json
import os

import numpy as np

from diag_problems import f32, hutchinson, loss_and_grad, make_problem, problem_json, signs_string

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
OUT = os.path.join(ROOT, 'test', 'fixtures', 'adahessian-reference.json')
STEPS = 20

TO_TORCH = {2: (1, 0), 3: (2, 1, 0), 4: (3, 2, 0, 1)}


def spatial_average(d_tfjs, blocks):
    rank = d_tfjs.ndim
    if rank == 0 or rank > 4:
        return d_tfjs
    perm = TO_TORCH.get(rank)
    hv_abs = np.transpose(d_tfjs, perm) if perm else d_tfjs
    b = blocks[rank - 1]
    if b == -1:
        if rank == 1:
            out = hv_abs
        elif rank == 2:
            out = np.broadcast_to(hv_abs.mean(axis=1, keepdims=True), hv_abs.shape)
        elif rank == 3:
            out = np.broadcast_to(hv_abs.mean(axis=2, keepdims=True), hv_abs.shape)
        else:
            out = np.broadcast_to(hv_abs.mean(axis=(2, 3), keepdims=True), hv_abs.shape)
    else:
        out = np.repeat(hv_abs.reshape(-1, b).mean(axis=1), b).reshape(hv_abs.shape)
    if perm:
        out = np.transpose(out, np.argsort(perm))
    return np.array(out)


def run(problem, opts, rng):
    lr = opts.get('learningRate', 0.15)
    b1, b2 = opts.get('beta1', 0.9), opts.get('beta2', 0.999)
    eps = opts.get('eps', 1e-4)
    wd = opts.get('weightDecay', 0.0)
    k = opts.get('hessianPower', 1.0)
    blocks = opts.get('spatialAverageBlockSize', [-1, -1, -1, -1])
    each = opts.get('updateEach', 10)
    params = {n: v.copy() for n, v in problem['params'].items()}
    total = sum(v.size for v in params.values())
    m = {n: np.zeros_like(v) for n, v in params.items()}
    v = {n: np.zeros_like(p) for n, p in params.items()}
    n_est = 0
    probes, traj, losses = [], [], []
    for i in range(STEPS):
        L, g = loss_and_grad(problem, params)
        losses.append(L)
        if i % each == 0:
            signs = rng.choice([-1.0, 1.0], size=total)
            probes.append({'iteration': i, 'rademacher': signs_string(signs)})
            D = hutchinson(problem, params, signs)
            for name in params:
                dbar = spatial_average(np.abs(D[name]), blocks)
                v[name] = b2 * v[name] + (1 - b2) * dbar ** 2
            n_est += 1
        t = i + 1
        for name, p in params.items():
            m[name] = b1 * m[name] + (1 - b1) * g[name]
            denom = (np.sqrt(v[name]) / np.sqrt(1 - b2 ** n_est)) ** k + eps
            params[name] = p - lr * (m[name] / (1 - b1 ** t) / denom + wd * p)
        traj.append({n: p.ravel().tolist() for n, p in params.items()})
    return {'afterStep1': traj[0], 'afterStep20': traj[-1], 'losses': losses, 'probes': probes}


CASES = [
    ('mlp every step, row averaging', 'mlp-softmax', {'learningRate': 0.05, 'updateEach': 1}),
    ('mlp updateEach 3, power 0.5, decay, no averaging', 'mlp-softmax',
     {'learningRate': 0.02, 'updateEach': 3, 'hessianPower': 0.5, 'weightDecay': 0.01,
      'spatialAverageBlockSize': [1, 1, 1, 1], 'beta2': 0.99}),
    ('conv updateEach 2, kernel spatial averaging', 'conv-mse', {'learningRate': 0.02, 'updateEach': 2}),
    ('conv blocks [3, 1, 1, 6]', 'conv-mse',
     {'learningRate': 0.02, 'updateEach': 1, 'spatialAverageBlockSize': [3, 1, 1, 6]}),
]


def main():
    rng = np.random.default_rng(17)
    problems = {name: make_problem(name, rng) for name in ['mlp-softmax', 'conv-mse']}
    fixture = {'steps': STEPS, 'problems': {k: problem_json(p) for k, p in problems.items()}, 'cases': []}
    for label, pname, opts in CASES:
        r = run(problems[pname], opts, rng)
        fixture['cases'].append({'name': label, 'problem': pname, 'options': opts, **r})
        print(f'{label}: loss {r["losses"][0]:.4f} -> {r["losses"][-1]:.4f}')
    with open(OUT, 'w') as f:
        json.dump(fixture, f, separators=(',', ':'))
    print('wrote', OUT, os.path.getsize(OUT), 'bytes')


if __name__ == '__main__':
    main()
