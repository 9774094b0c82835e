#!/usr/bin/env python3
"""Float64 reference trajectories for test/save-reload-reference.test.ts (issue 13, part 3).

A 4-8-3 tanh/softmax classifier is trained on 48 examples in batches of 16 (no shuffling,
as tfjs-layers' fit with shuffle: false) for 3 epochs, its model and optimizer state are
saved, a fresh model and optimizer are built and loaded from the saved state, and training
continues for 2 more epochs. Independently of curvature's code:

  * SGD (Nesterov, weight decay), RMSprop (centered, momentum), Adam, Adam (amsgrad) and AdamW
    are PyTorch's own torch.optim classes in float64; the save/reload is torch.save /
    torch.load of the model's and the optimizer's state_dict through a byte buffer.
  * Newton is written here from its documented algorithm (optimizers/newton.ts header; Nocedal &
    Wright ch. 3 and 10.3): exact float64 Hessian by torch.autograd.functional.hessian,
    Cholesky of H + lambda I (else the |eigenvalue| modification floored at
    max(lambda, eigenFloor ||H||_F)), Armijo backtracking from t = 1 halving up to 30 times,
    rho against the undamped model, lambda * 2 (rho < 1/4) or * 1/3 (rho > 3/4) within
    [minDamping, maxDamping] (lambda 0.1, minDamping 0.02 here; see NEWTON). Its state
    (lambda) is saved as JSON text and parsed back.
  * K-FAC (empirical Fisher, fixed step sizes as KFAC.FAST_SETTINGS, statistics every 2 and
    inverses every 4 steps) is written here from Martens & Grosse (2015) and the algorithm in
    optimizers/kfac.ts's header (see kfac_step); its state (factors, inverses, update counts,
    momentum) is saved as JSON text and parsed back.
  * Shampoo (mergeDims false; AdaGrad grafting, or no grafting with beta2 < 1 and momentum),
    written here from Gupta et al. (2018) and optimizers/shampoo.ts's header (see
    shampoo_param), roots first computed at step 4 and refreshed at 8 and 12 (after the
    reload); its state (statistics, roots, moments, step counts) is saved as JSON text and
    parsed back.

The loss is tfjs-layers' categoricalCrossentropy on the softmax output (renormalised,
clipped to [1e-7, 1 - 1e-7]), averaged over the batch. For each case the script checks that the
reloaded run equals the uninterrupted one bit for bit in float64, then writes the batch losses
(the loss each step sees, before its update, as fit reports it), the weights after epoch 3 (the
save point) and epoch 5, and for Newton the damping after every step, to
test/fixtures/save-reload-reference.json. Inputs and initial weights are float32 values, so the
tfjs run starts from exactly the same point.

Run: /usr/bin/python3 scripts/reference/save_reload_reference.py
"""
import io
import json
import os

import numpy as np
import torch

torch.set_default_dtype(torch.float64)

N, D, H, C = 48, 4, 8, 3
BATCH = 16
FIRST, MORE = 3, 2
EPS = 1e-7

rng = np.random.default_rng(13)
f32 = lambda a: np.asarray(a, dtype=np.float32).astype(np.float64)
X = f32(rng.uniform(-1, 1, size=(N, D)))
Wlab = rng.normal(size=(D, C))
Y = np.eye(C)[np.argmax(X @ Wlab, axis=1)]
INIT = [
    f32(rng.uniform(-0.6, 0.6, size=(D, H))),
    f32(rng.uniform(-0.6, 0.6, size=(H,))),
    f32(rng.uniform(-0.6, 0.6, size=(H, C))),
    f32(rng.uniform(-0.6, 0.6, size=(C,))),
]
Xt = torch.tensor(X)
Yt = torch.tensor(Y)
BATCHES = [(Xt[i:i + BATCH], Yt[i:i + BATCH]) for i in range(0, N, BATCH)]


def forward(params, x):
    W1, b1, W2, b2 = params
    h = torch.tanh(x @ W1 + b1)
    return torch.softmax(h @ W2 + b2, dim=1)


def cce(params, x, y):
    p = forward(params, x)
    p = p / p.sum(dim=1, keepdim=True)
    p = torch.clamp(p, EPS, 1 - EPS)
    return -(y * torch.log(p)).sum(dim=1).mean()


def fresh_params():
    return [torch.tensor(w.copy(), requires_grad=True) for w in INIT]


def flat(params):
    return np.concatenate([p.detach().numpy().ravel() for p in params]).tolist()


# ----------------------------------------------------------------------------- first-order

FIRST_ORDER = {
    'sgd-nesterov-wd': lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    'rmsprop-centered-momentum': lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.99, eps=1e-8, centered=True, momentum=0.5),
    'adam': lambda ps: torch.optim.Adam(ps, lr=0.02, betas=(0.9, 0.999), eps=1e-8),
    'adam-amsgrad': lambda ps: torch.optim.Adam(ps, lr=0.02, betas=(0.9, 0.999), eps=1e-8, amsgrad=True),
    'adamw': lambda ps: torch.optim.AdamW(ps, lr=0.02, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1),
}


def first_order_epochs(params, opt, epochs, losses, weights):
    for _ in range(epochs):
        for x, y in BATCHES:
            opt.zero_grad()
            loss = cce(params, x, y)
            loss.backward()
            losses.append(loss.item())
            opt.step()
        weights.append(flat(params))


def first_order_case(make):
    def run(interrupt):
        params = fresh_params()
        opt = make(params)
        losses, weights = [], []
        first_order_epochs(params, opt, FIRST, losses, weights)
        if interrupt:
            buf = io.BytesIO()
            torch.save({'params': [p.detach().clone() for p in params], 'opt': opt.state_dict()}, buf)
            buf.seek(0)
            saved = torch.load(buf, weights_only=False)
            params = [torch.tensor(p.numpy().copy(), requires_grad=True) for p in saved['params']]
            opt = make(params)
            opt.load_state_dict(saved['opt'])
        first_order_epochs(params, opt, MORE, losses, weights)
        return {'losses': losses, 'weights': weights}

    return run(False), run(True)


# ----------------------------------------------------------------------------- Newton

# Newton's defaults except damping 0.1 and minDamping 0.02: with 67 parameters and 16 examples
# per batch the Hessian is far from full rank, and at the default lambda (1e-3, shrinking by 3
# per good step) the solve amplifies float32 rounding in tfjs's Hessian until the two runs part
# after 5 steps; a damping floor keeps the comparison about the algorithm and its saved state.
NEWTON = dict(learningRate=1.0, damping=0.1, dampingIncrease=2.0, dampingDecrease=1 / 3,
              minDamping=0.02, maxDamping=1e12, eigenFloor=1e-8, c1=1e-4, maxLineSearch=30)
SHAPES = [w.shape for w in INIT]
SIZES = [w.size for w in INIT]


def unflat(theta):
    out, o = [], 0
    for s, n in zip(SHAPES, SIZES):
        out.append(theta[o:o + n].reshape(s))
        o += n
    return out


def newton_direction(Hm, g, lam, eigen_floor):
    n = len(g)
    damped = Hm + lam * np.eye(n)
    try:
        L = np.linalg.cholesky(damped)
        return -np.linalg.solve(L.T, np.linalg.solve(L, g))
    except np.linalg.LinAlgError:
        floor = max(lam, eigen_floor * max(np.linalg.norm(Hm), 1e-30))
        vals, vecs = np.linalg.eigh(damped)
        vals = np.maximum(np.abs(vals), floor)
        return -(vecs @ ((vecs.T @ g) / vals))


def newton_step(theta, lam, x, y):
    o = NEWTON
    f = lambda t: cce(unflat(t), x, y)
    th = torch.tensor(theta)
    f0 = f(th).item()
    g = torch.autograd.functional.jacobian(f, th).numpy()
    Hm = torch.autograd.functional.hessian(f, th).numpy()
    Hm = 0.5 * (Hm + Hm.T)
    d = newton_direction(Hm, g, lam, o['eigenFloor'])
    slope = float(g @ d)
    curv = float(d @ Hm @ d)
    t = o['learningRate']
    for _ in range(o['maxLineSearch']):
        ft = f(torch.tensor(theta + t * d)).item()
        if np.isfinite(ft) and ft <= f0 + o['c1'] * t * slope:
            pred = t * slope + 0.5 * t * t * curv
            rho = (ft - f0) / pred if pred != 0 else (1.0 if ft - f0 <= 0 else -np.inf)
            return theta + t * d, adapt(lam, rho), f0
        t *= 0.5
    return theta, adapt(lam, -np.inf), f0


def adapt(lam, rho):
    o = NEWTON
    if not rho >= 0.25:
        nxt = max(lam, o['minDamping'] if o['minDamping'] > 0 else 1e-12) * o['dampingIncrease']
    elif rho > 0.75:
        nxt = lam * o['dampingDecrease']
    else:
        nxt = lam
    return min(o['maxDamping'], max(o['minDamping'], nxt))


def newton_case():
    def epochs(theta, lam, n, losses, weights, dampings):
        for _ in range(n):
            for x, y in BATCHES:
                theta, lam, f0 = newton_step(theta, lam, x, y)
                losses.append(f0)
                dampings.append(lam)
            weights.append(theta.tolist())
        return theta, lam

    def run(interrupt):
        theta = np.concatenate([w.ravel() for w in INIT])
        lam = NEWTON['damping']
        losses, weights, dampings = [], [], []
        theta, lam = epochs(theta, lam, FIRST, losses, weights, dampings)
        if interrupt:
            saved = json.dumps({'theta': theta.tolist(), 'damping': lam})
            back = json.loads(saved)
            theta, lam = np.array(back['theta']), back['damping']
        epochs(theta, lam, MORE, losses, weights, dampings)
        return {'losses': losses, 'weights': weights, 'dampings': dampings}

    return run(False), run(True)


# ----------------------------------------------------------------------------- K-FAC

# K-FAC with the empirical Fisher (deterministic: no sampled targets) and fixed step sizes as in
# KFAC.FAST_SETTINGS (adaptive false, adaptDamping false, momentum 0.9, klClip 1e-3), statistics
# every 2 steps and inverses every 4, so both happen after the reload (steps 10..15). Written
# from Martens & Grosse (2015) and optimizers/kfac.ts's header:
#   A = EMA([a, 1]^T [a, 1] / n), G = EMA(n ds^T ds) (ds: gradients of the batch-mean loss at
#   the pre-activations), EMA weight min(1 - 1/t, statsDecay) on the old value (t = update count);
#   pi^2 = (tr A / dim A) / (tr G / dim G); Ainv = (A + pi sqrt(lambda) I)^-1,
#   Ginv = (G + sqrt(lambda) / pi I)^-1; Delta = -Ainv [gW; gb] Ginv;
#   Delta *= min(1, sqrt(klClip / (lr^2 |g.Delta|))); u = lr Delta + momentum u_prev; theta += u.
KFAC = dict(learningRate=0.2, momentum=0.9, klClip=1e-3, damping=1e-2, statsDecay=0.95,
            statsUpdatePeriod=2, inverseUpdatePeriod=4)


def kfac_step(params, st, k, x, y):
    o = KFAC
    W1, b1, W2, b2 = [torch.tensor(p, requires_grad=True) for p in params]
    n = x.shape[0]
    s1 = x @ W1 + b1
    s1.retain_grad()
    s2 = torch.tanh(s1) @ W2 + b2
    s2.retain_grad()
    p = torch.softmax(s2, dim=1)
    p = torch.clamp(p / p.sum(dim=1, keepdim=True), EPS, 1 - EPS)
    loss = -(y * torch.log(p)).sum(dim=1).mean()
    loss.backward()
    acts = [x.numpy(), torch.tanh(s1).detach().numpy()]
    dss = [s1.grad.numpy(), s2.grad.numpy()]
    grads = [np.vstack([W1.grad.numpy(), b1.grad.numpy()[None, :]]), np.vstack([W2.grad.numpy(), b2.grad.numpy()[None, :]])]
    lam = o['damping']
    dirs = []
    for l in range(2):
        L = st['layers'][l]
        if k % o['statsUpdatePeriod'] == 0:
            ah = np.hstack([acts[l], np.ones((n, 1))])
            An = ah.T @ ah / n
            Gn = n * dss[l].T @ dss[l]
            t = L['t'] + 1
            decay = min(1 - 1 / t, o['statsDecay'])
            L['A'] = An if L['A'] is None else decay * np.array(L['A']) + (1 - decay) * An
            L['G'] = Gn if L['G'] is None else decay * np.array(L['G']) + (1 - decay) * Gn
            L['t'] = t
        if k % o['inverseUpdatePeriod'] == 0 or L['Ainv'] is None:
            A, G = np.array(L['A']), np.array(L['G'])
            ta, tg = np.trace(A) / A.shape[0], np.trace(G) / G.shape[0]
            pi = np.sqrt(ta / tg) if ta > 0 and tg > 0 else 1.0
            L['Ainv'] = np.linalg.inv(A + pi * np.sqrt(lam) * np.eye(A.shape[0]))
            L['Ginv'] = np.linalg.inv(G + np.sqrt(lam) / pi * np.eye(G.shape[0]))
        dirs.append(-(np.array(L['Ainv']) @ grads[l] @ np.array(L['Ginv'])))
    alpha, mu = o['learningRate'], o['momentum']
    gd = abs(sum(float(np.sum(g * d)) for g, d in zip(grads, dirs)))
    sq = alpha * alpha * gd
    if sq > o['klClip']:
        c = np.sqrt(o['klClip'] / sq)
        dirs = [d * c for d in dirs]
    new = []
    for l in range(2):
        u = alpha * dirs[l]
        if st['velocity'][l] is not None:
            u = u + mu * np.array(st['velocity'][l])
        st['velocity'][l] = u
        fan_in = u.shape[0] - 1
        new.append(params[2 * l] + u[:fan_in])
        new.append(params[2 * l + 1] + u[fan_in])
    return new, loss.item()


def kfac_case():
    def epochs(params, st, k, n_epochs, losses, weights):
        for _ in range(n_epochs):
            for x, y in BATCHES:
                params, f0 = kfac_step(params, st, k, x, y)
                k += 1
                losses.append(f0)
            weights.append(np.concatenate([p.ravel() for p in params]).tolist())
        return params, k

    def run(interrupt):
        params = [w.copy() for w in INIT]
        st = {'layers': [{'A': None, 'G': None, 't': 0, 'Ainv': None, 'Ginv': None} for _ in range(2)], 'velocity': [None, None]}
        losses, weights = [], []
        params, k = epochs(params, st, 0, FIRST, losses, weights)
        if interrupt:
            enc = lambda v: v.tolist() if isinstance(v, np.ndarray) else v
            text = json.dumps({
                'params': [p.tolist() for p in params], 'k': k,
                'layers': [{key: enc(v) for key, v in L.items()} for L in st['layers']],
                'velocity': [enc(v) for v in st['velocity']],
            })
            back = json.loads(text)
            params = [np.array(p) for p in back['params']]
            k = back['k']
            st = {'layers': back['layers'], 'velocity': back['velocity']}
        epochs(params, st, k, MORE, losses, weights)
        return {'losses': losses, 'weights': weights}

    return run(False), run(True)


# ----------------------------------------------------------------------------- Shampoo

# Shampoo (Gupta, Koren & Singer 2018) with the Distributed Shampoo options as documented in
# optimizers/shampoo.ts's header, mergeDims false (kernels keep their two factors):
#   2-D g: L = acc(L, g g^T), R = acc(R, g^T g) (acc: sum for beta2 = 1, else EMA);
#     at t == start or t > start with t % preconditionFrequency == 0:
#     P = (S / c2 + eps I)^(-1/4), c2 = 1 - beta2^t (beta2 < 1) else 1;  d = P_L f P_R
#   1-D g (biases): v = acc(v, g^2);  d = f (v / c2 + eps)^(-1/2)
#   f = bias-corrected EMA(beta1) of g; AdaGrad grafting a = a + g^2,
#   graft = f / (sqrt(a) + eps_g); before start d = graft ('none': f); grafting rescales d to
#   the norm of graft (whole tensor: one block here);
#   momentum buf = mu buf + d (buf_1 = d), d = buf;  p -= lr d.
SHAMPOO = {
    'shampoo-adagrad-graft': dict(learningRate=0.05, beta1=0.9, beta2=1.0, epsilon=1e-6, frequency=4, start=4,
                                  grafting='adagrad', graftingEpsilon=1e-10, momentum=0.0),
    'shampoo-no-graft-ema-momentum': dict(learningRate=0.02, beta1=0.9, beta2=0.99, epsilon=1e-6, frequency=4, start=4,
                                          grafting='none', graftingEpsilon=None, momentum=0.5),
}


def shampoo_acc(prev, x, b2):
    if b2 == 1:
        return x if prev is None else prev + x
    return (1 - b2) * x if prev is None else b2 * prev + (1 - b2) * x


def inverse_root(S, eps, r):
    vals, vecs = np.linalg.eigh(0.5 * (S + S.T))
    return (vecs * (vals + eps) ** (-1.0 / r)) @ vecs.T


def shampoo_param(p, g, st, o):
    t = st['t'] + 1
    b2 = o['beta2']
    c2 = 1 - b2 ** t if b2 < 1 else 1.0
    if g.ndim == 2:
        st['L'] = shampoo_acc(st['L'], g @ g.T, b2)
        st['R'] = shampoo_acc(st['R'], g.T @ g, b2)
        if t == o['start'] or (t > o['start'] and t % o['frequency'] == 0):
            st['PL'] = inverse_root(st['L'] / c2, o['epsilon'], 4)
            st['PR'] = inverse_root(st['R'] / c2, o['epsilon'], 4)
    else:
        st['v'] = shampoo_acc(st['v'], g * g, b2)
    if o['grafting'] == 'adagrad':
        st['a'] = g * g if st['a'] is None else st['a'] + g * g
    st['m'] = (1 - o['beta1']) * g if st['m'] is None else o['beta1'] * st['m'] + (1 - o['beta1']) * g
    f = st['m'] / (1 - o['beta1'] ** t)
    graft = f / (np.sqrt(st['a']) + o['graftingEpsilon']) if o['grafting'] == 'adagrad' else f
    if t < o['start']:
        d = graft
    else:
        d = st['PL'] @ f @ st['PR'] if g.ndim == 2 else f * (st['v'] / c2 + o['epsilon'] + 1e-30) ** -0.5
        if o['grafting'] != 'none':
            d = d * (np.linalg.norm(graft) / (np.linalg.norm(d) + 1e-16))
    if o['momentum'] > 0:
        st['buf'] = d if st['buf'] is None else o['momentum'] * st['buf'] + d
        d = st['buf']
    st['t'] = t
    return p - o['learningRate'] * d


def shampoo_case(o):
    def epochs(params, states, n_epochs, losses, weights):
        for _ in range(n_epochs):
            for x, y in BATCHES:
                tp = [torch.tensor(w, requires_grad=True) for w in params]
                loss = cce(tp, x, y)
                loss.backward()
                losses.append(loss.item())
                params = [shampoo_param(w, q.grad.numpy(), st, o) for w, q, st in zip(params, tp, states)]
            weights.append(np.concatenate([w.ravel() for w in params]).tolist())
        return params

    def run(interrupt):
        params = [w.copy() for w in INIT]
        keys = ['L', 'R', 'PL', 'PR', 'v', 'a', 'm', 'buf']
        states = [dict(t=0, **{k: None for k in keys}) for _ in params]
        losses, weights = [], []
        params = epochs(params, states, FIRST, losses, weights)
        if interrupt:
            enc = lambda v: v.tolist() if isinstance(v, np.ndarray) else v
            text = json.dumps({'params': [w.tolist() for w in params], 'states': [{k: enc(v) for k, v in st.items()} for st in states]})
            back = json.loads(text)
            params = [np.array(w) for w in back['params']]
            states = [{k: (np.array(v) if isinstance(v, list) else v) for k, v in st.items()} for st in back['states']]
        epochs(params, states, MORE, losses, weights)
        return {'losses': losses, 'weights': weights}

    return run(False), run(True)


def main():
    cases = {}
    for name, make in FIRST_ORDER.items():
        straight, resumed = first_order_case(make)
        assert straight == resumed, f'{name}: reloaded PyTorch run differs'
        cases[name] = straight
    straight, resumed = newton_case()
    assert straight == resumed, 'newton: reloaded run differs'
    cases['newton'] = straight
    straight, resumed = kfac_case()
    assert straight == resumed, 'kfac: reloaded run differs'
    cases['kfac-empirical-fixed-lr'] = straight
    for name, o in SHAMPOO.items():
        straight, resumed = shampoo_case(o)
        assert straight == resumed, f'{name}: reloaded run differs'
        cases[name] = straight
    out = {
        'generator': 'scripts/reference/save_reload_reference.py',
        'torch': torch.__version__,
        'numpy': np.__version__,
        'batchSize': BATCH,
        'firstEpochs': FIRST,
        'moreEpochs': MORE,
        'x': X.tolist(),
        'y': Y.tolist(),
        'init': [w.ravel().tolist() for w in INIT],
        'shapes': [list(s) for s in SHAPES],
        'cases': {
            k: {
                'losses': v['losses'],
                # weights after the save point (epoch FIRST) and at the end
                'weightsAtSave': v['weights'][FIRST - 1],
                'weightsAtEnd': v['weights'][-1],
                **({'dampings': v['dampings']} if 'dampings' in v else {}),
            }
            for k, v in cases.items()
        },
    }
    path = os.path.join(os.path.dirname(__file__), '..', '..', 'test', 'fixtures', 'save-reload-reference.json')
    with open(path, 'w') as fh:
        json.dump(out, fh, separators=(',', ':'))
        fh.write('\n')
    for k, v in cases.items():
        print(k, ' '.join(f'{l:.4f}' for l in v['losses']), *(['damping', v['dampings'][-1]] if 'dampings' in v else []))


if __name__ == '__main__':
    main()
