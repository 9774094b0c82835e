#!/usr/bin/python3
"""Float64 references for issue 13 part 4 (counters, influence status, sigmoid cross-entropy).

    /usr/bin/python3 scripts/reference/report_references.py

writes (small JSON, float64 numbers) under test/fixtures/:

  costs-quadratic.json
      f(x) = 1/2 (x - c)^T A (x - c), A 6x6 SPD (eigenvalues 0.2 .. 2, fixed rotation), start x0.
      Gradient descent x_{k+1} = x_k - lr grad f(x_k): the losses f(x_0..x_K) and the first k
      with f(x_k) <= target (steps to target, one gradient per step). Newton from x0 (float64,
      one full step with Newton's default damping 1e-3): f after the step.
      Read by test/harness-costs.test.ts: the harness's records (loss before each update),
      the final loss, the report's loss points and the steps / gradient-equivalents to target.

  sigmoid-ce-hvp.json
      PyTorch float64 (torch.nn.functional.binary_cross_entropy_with_logits, mean reduction,
      the same function as tf.losses.sigmoidCrossEntropy's default SUM_BY_NONZERO_WEIGHTS
      reduction) of logits = x W + b for a 5x3 input, 3x4 weights, hard and soft labels:
      loss, gradient and the Hessian-vector product in (W, b) along a fixed direction, by
      double backward. Read by test/sigmoid-ce-second-order.test.ts.

  influence-cg.json
      Quadratic training loss 1/2 theta^T H theta (H 8x8), test loss b^T theta, point losses
      p_i^T theta, so I_up,loss(z_i) = -p_i^T (H + damping I)^{-1} b exactly (numpy solve).
      Three cases: H SPD (CG converges: reference influence values); H SPD with condition
      3e4 and maxIter 3 (scipy.sparse.linalg.cg info 3: not converged); H indefinite (one
      eigenvalue -0.5) with b^T H b < 0 (CG meets negative curvature at once). Each with
      scipy's info code and relative residual and the exact influence for comparison. Read
      by test/influence-status.test.ts.
"""
import json
import os

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
import torch

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(__file__), '..', '..', 'test', 'fixtures')


def rotation(n, seed):
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def write(name, obj):
    path = os.path.join(OUT, name)
    with open(path, 'w') as fh:
        json.dump(obj, fh, indent=1)
        fh.write('\n')
    print('wrote', os.path.normpath(path))


def costs_quadratic():
    n = 6
    q = rotation(n, 1)
    lam = np.geomspace(0.2, 2.0, n)
    a = (q * lam) @ q.T
    a = 0.5 * (a + a.T)
    rng = np.random.default_rng(2)
    c = rng.standard_normal(n)
    x0 = c + rng.standard_normal(n) * 2.0
    f = lambda x: 0.5 * (x - c) @ a @ (x - c)
    lr = 0.5
    steps = 40
    xs = [x0]
    for _ in range(steps):
        x = xs[-1]
        xs.append(x - lr * (a @ (x - c)))
    losses = [float(f(x)) for x in xs]
    target = 1e-3 * losses[0]
    to_target = next(k for k, v in enumerate(losses) if v <= target)
    # Newton's first step with its default Levenberg-Marquardt damping 1e-3 (optimizers/newton.ts)
    # and the full step accepted by Armijo: x1 = x0 - (A + 1e-3 I)^{-1} grad f(x0).
    newton_damping = 1e-3
    x_newton = x0 - np.linalg.solve(a + newton_damping * np.eye(n), a @ (x0 - c))
    write('costs-quadratic.json', {
        'description': 'f(x) = 1/2 (x-c)^T A (x-c); gradient descent losses f(x_0..x_K); Newton step',
        'A': a.tolist(), 'c': c.tolist(), 'x0': x0.tolist(), 'learningRate': lr,
        'losses': losses, 'target': target, 'gdStepsToTarget': to_target,
        'newtonDamping': newton_damping, 'newtonLossAfterOneStep': float(f(x_newton)),
    })


def sigmoid_ce_hvp():
    rng = np.random.default_rng(3)
    x = torch.tensor(rng.standard_normal((5, 3)))
    w = torch.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    b = torch.tensor(rng.standard_normal(4) * 0.5, requires_grad=True)
    vw = torch.tensor(rng.standard_normal((3, 4)))
    vb = torch.tensor(rng.standard_normal(4))
    cases = {}
    for kind, y in (('hard', (rng.random((5, 4)) < 0.5).astype(float)), ('soft', rng.random((5, 4)))):
        yt = torch.tensor(y)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, yt, reduction='mean')
        gw, gb = torch.autograd.grad(loss, (w, b), create_graph=True)
        hw, hb = torch.autograd.grad((gw * vw).sum() + (gb * vb).sum(), (w, b))
        cases[kind] = {
            'y': y.tolist(), 'loss': float(loss),
            'gradW': gw.detach().numpy().tolist(), 'gradB': gb.detach().numpy().tolist(),
            'hvpW': hw.numpy().tolist(), 'hvpB': hb.numpy().tolist(),
        }
    write('sigmoid-ce-hvp.json', {
        'description': 'mean sigmoid cross-entropy of x W + b: loss, gradient, HVP along (vW, vB); PyTorch float64',
        'torch': torch.__version__,
        'x': x.numpy().tolist(), 'W': w.detach().numpy().tolist(), 'b': b.detach().numpy().tolist(),
        'vW': vw.numpy().tolist(), 'vB': vb.numpy().tolist(), 'cases': cases,
    })


def influence_cg():
    n = 8
    q = rotation(n, 4)
    rng = np.random.default_rng(5)
    points = rng.standard_normal((3, n))
    b_generic = rng.standard_normal(n)
    # Mostly along the eigenvector of the negative eigenvalue: b^T H b < 0, so CG meets
    # non-positive curvature at its first direction p = b.
    b_negative = 2.0 * q[:, 0] + 0.1 * rng.standard_normal(n)
    spd = np.geomspace(0.1, 3.0, n)
    ill = np.geomspace(1e-4, 3.0, n)
    indefinite = np.concatenate([[-0.5], np.geomspace(0.1, 3.0, n - 1)])
    cases = {}
    for name, lam, b, max_iter in (
        ('spd', spd, b_generic, 2 * n),
        ('max-iterations', ill, b_generic, 3),
        ('negative-curvature', indefinite, b_negative, 2 * n),
    ):
        h = (q * lam) @ q.T
        h = 0.5 * (h + h.T)
        s = np.linalg.solve(h, b)
        # scipy CG from x0 = 0 with the same relative tolerance and iteration cap.
        x, info = scipy.sparse.linalg.cg(h, b, tol=1e-6, atol=0.0, maxiter=max_iter)
        cases[name] = {
            'eigenvalues': lam.tolist(), 'H': h.tolist(), 'b': b.tolist(), 'maxIter': max_iter,
            'bHb': float(b @ h @ b),
            'influence': [-float(p @ s) for p in points],
            'scipyInfo': int(info),
            'scipyRelativeResidual': float(np.linalg.norm(h @ x - b) / np.linalg.norm(b)),
        }
    write('influence-cg.json', {
        'description': 'train loss 1/2 t^T H t, test loss b^T t, point losses p_i^T t: influence -p_i^T H^{-1} b; scipy cg info',
        'scipy': scipy.__version__, 'points': points.tolist(), 'tol': 1e-6, 'damping': 0.0,
        'cases': cases,
    })


if __name__ == '__main__':
    costs_quadratic()
    sigmoid_ce_hvp()
    influence_cg()
