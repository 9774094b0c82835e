#!/usr/bin/env python3
"""Float64 numpy reference for test/async.test.ts (issue 16, the matrix worker of src/async).

Three symmetric matrices, independent of curvature's code:
    A0: 6 x 6 PSD, G G^T / 6 with G 6 x 9 Gaussian
    A1: 12 x 12 PSD with a rank deficiency, G G^T with G 12 x 5 (seven zero eigenvalues)
    A2: 9 x 9 symmetric indefinite, (H + H^T) / 2
Written: the eigenvalues (numpy.linalg.eigh, ascending) of all three, and the inverse 4th roots
(A + eps I)^(-1/4) with eps = 1e-3 of A0 and A1 (V diag((lambda + eps)^(-1/4)) V^T with negative
round-off eigenvalues clamped to 0, as Shampoo uses them), to test/fixtures/async-reference.json.

Run:  /usr/bin/python3 scripts/reference/async_reference.py
"""
import json
import os

import numpy as np

rng = np.random.default_rng(16)
G0 = rng.standard_normal((6, 9))
G1 = rng.standard_normal((12, 5))
H = rng.standard_normal((9, 9))
mats = [G0 @ G0.T / 6, G1 @ G1.T, (H + H.T) / 2]
EPS = 1e-3
P = 4


def inv_root(a, p, eps):
    w, v = np.linalg.eigh(a)
    w = np.maximum(w, 0.0)
    return (v * (w + eps) ** (-1.0 / p)) @ v.T


out = {
    "matrices": [{"n": a.shape[0], "data": a.reshape(-1).tolist()} for a in mats],
    "eigenvalues": [np.linalg.eigh(a)[0].tolist() for a in mats],
    "inverseRoot": {"p": P, "epsilon": EPS, "roots": [inv_root(a, P, EPS).reshape(-1).tolist() for a in mats[:2]]},
}
path = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "async-reference.json")
with open(path, "w") as f:
    json.dump(out, f)
print("wrote", os.path.normpath(path))
