"""
Shared pieces of the AdaHessian and Sophia float64 references (adahessian_reference.py,
sophia_reference.py): the small problems, exact Hessian-vector products (torch float64 double
backward), the diagonal estimators written from the papers, and the deterministic random numbers
the fixtures share with the TypeScript tests.

Problems (parameters in tfjs layouts, all values float32-exact so both sides start equal):
  mlp-softmax  x [6, 4] -> tanh(x W1 + b1) W2 + b2 = logits [6, 3]; softmax cross-entropy vs one-hot y
  mlp-sigmoid  the same network; sigmoid cross-entropy (mean over elements) vs y in {0, 1}
  conv-mse     x [2, 5, 5, 2] (NHWC) -> tanh(conv2d_valid(x, K) + b) = [2, 3, 3, 3], K [3, 3, 2, 3]
               (tfjs [kh, kw, in, out]); mean squared error vs t
Estimators (src/optim/diagonal-hessian.ts states the same):
  hutchinson  D = u * (H u), u = +-1 (stored per estimation step, all parameters concatenated,
              row-major tfjs layout)
  gnb         targets sampled from the outputs with stored uniforms: softmax: first class whose
              cumulative probability exceeds u (one u per row); sigmoid: [u < sigmoid(z)] per
              element; mse: z + sqrt(1/2) sqrt(-2 log(1 - u1)) cos(2 pi u2) per element (u1, u2
              consecutive); D = S * g^2, g the gradient of the loss against the sampled targets,
              S = rows (softmax) or elements (sigmoid, mse).
"""
import numpy as np
import torch

torch.set_default_dtype(torch.float64)


def f32(x):
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def make_problem(name, rng):
    if name.startswith('mlp'):
        x = f32(rng.normal(size=(6, 4)))
        params = {
            'W1': f32(rng.normal(size=(4, 5)) * 0.6),
            'b1': f32(rng.normal(size=(5,)) * 0.1),
            'W2': f32(rng.normal(size=(5, 3)) * 0.6),
            'b2': f32(rng.normal(size=(3,)) * 0.1),
        }
        if name == 'mlp-softmax':
            y = np.eye(3)[rng.integers(0, 3, size=6)]
            kind = 'softmax-cross-entropy'
        else:
            y = (rng.uniform(size=(6, 3)) < 0.5).astype(np.float64)
            kind = 'sigmoid-cross-entropy'
        return {'name': name, 'kind': kind, 'x': x, 'y': f32(y), 'params': params}
    x = f32(rng.normal(size=(2, 5, 5, 2)))
    params = {'K': f32(rng.normal(size=(3, 3, 2, 3)) * 0.3), 'b': f32(rng.normal(size=(3,)) * 0.1)}
    t = f32(rng.uniform(-0.5, 0.5, size=(2, 3, 3, 3)))
    return {'name': name, 'kind': 'mse', 'x': x, 'y': t, 'params': params}


def outputs(problem, tp):
    x = torch.tensor(problem['x'])
    if problem['name'].startswith('mlp'):
        return torch.tanh(x @ tp['W1'] + tp['b1']) @ tp['W2'] + tp['b2']
    xin = x.permute(0, 3, 1, 2)
    w = tp['K'].permute(3, 2, 0, 1)
    out = torch.nn.functional.conv2d(xin, w) + tp['b'][None, :, None, None]
    return torch.tanh(out).permute(0, 2, 3, 1)


def loss_of_kind(kind, y, z):
    if kind == 'softmax-cross-entropy':
        return -(y * torch.log_softmax(z, dim=-1)).sum(-1).mean()
    if kind == 'sigmoid-cross-entropy':
        return (torch.relu(z) - z * y + torch.log1p(torch.exp(-z.abs()))).mean()
    return ((z - y) ** 2).mean()


def torch_params(params):
    return {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}


def loss_and_grad(problem, params):
    tp = torch_params(params)
    L = loss_of_kind(problem['kind'], torch.tensor(problem['y']), outputs(problem, tp))
    gs = torch.autograd.grad(L, list(tp.values()))
    return float(L), {k: g.detach().numpy() for k, g in zip(tp, gs)}


def hutchinson(problem, params, signs):
    """D = u * (H u) with u from the flat +-1 list `signs` (tfjs row-major, parameter order)."""
    tp = torch_params(params)
    names = list(tp)
    L = loss_of_kind(problem['kind'], torch.tensor(problem['y']), outputs(problem, tp))
    gs = torch.autograd.grad(L, [tp[k] for k in names], create_graph=True)
    us, off = [], 0
    for k in names:
        n = params[k].size
        us.append(torch.tensor(np.asarray(signs[off:off + n], dtype=np.float64).reshape(params[k].shape)))
        off += n
    assert off == len(signs)
    hus = torch.autograd.grad(gs, [tp[k] for k in names], grad_outputs=us)
    return {k: (u * hu).detach().numpy() for k, u, hu in zip(names, us, hus)}


def sample_targets(kind, z, uniforms):
    """Sampled targets and the smallest distance of a uniform to its decision boundary."""
    z = np.asarray(z)
    if kind == 'softmax-cross-entropy':
        k = z.shape[-1]
        zz = z.reshape(-1, k)
        p = np.exp(zz - zz.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        y = np.zeros_like(zz)
        margin = np.inf
        for r in range(zz.shape[0]):
            u = uniforms[r]
            c = np.cumsum(p[r])
            j = int(np.searchsorted(c, u, side='right'))
            j = min(j, k - 1)
            y[r, j] = 1
            margin = min(margin, np.min(np.abs(c - u)))
        return y.reshape(z.shape), zz.shape[0], margin, zz.shape[0]
    if kind == 'sigmoid-cross-entropy':
        p = 1 / (1 + np.exp(-z))
        u = np.asarray(uniforms[:z.size]).reshape(z.shape)
        return (u < p).astype(np.float64), z.size, float(np.min(np.abs(u - p))), z.size
    u = np.asarray(uniforms[:2 * z.size]).reshape(-1, 2)
    noise = np.sqrt(0.5) * np.sqrt(-2 * np.log(1 - u[:, 0])) * np.cos(2 * np.pi * u[:, 1])
    return z + noise.reshape(z.shape), z.size, np.inf, 2 * z.size


def gnb(problem, params, uniforms):
    tp = torch_params(params)
    z = outputs(problem, tp)
    y, terms, margin, used = sample_targets(problem['kind'], z.detach().numpy(), uniforms)
    L = loss_of_kind(problem['kind'], torch.tensor(y), z)
    gs = torch.autograd.grad(L, list(tp.values()))
    return {k: terms * g.detach().numpy() ** 2 for k, g in zip(tp, gs)}, margin, used


def n_uniforms(problem):
    """How many uniforms one GNB estimate draws."""
    if problem['kind'] == 'softmax-cross-entropy':
        return problem['y'].shape[0]
    if problem['kind'] == 'sigmoid-cross-entropy':
        return problem['y'].size
    return 2 * problem['y'].size


def problem_json(problem):
    return {
        'kind': problem['kind'],
        'x': problem['x'].ravel().tolist(),
        'xShape': list(problem['x'].shape),
        'y': problem['y'].ravel().tolist(),
        'yShape': list(problem['y'].shape),
        'params': {k: v.ravel().tolist() for k, v in problem['params'].items()},
        'shapes': {k: list(v.shape) for k, v in problem['params'].items()},
    }


def signs_string(signs):
    return ''.join('1' if s > 0 else '0' for s in signs)
