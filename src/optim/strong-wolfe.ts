/**
 * The strong-Wolfe line search of L-BFGS, a port of torch.optim.lbfgs's `_strong_wolfe` and
 * `_cubic_interpolate` (after minFunc and the Lua torch/optim lswolfe.lua / polyinterp.lua):
 * bracketing with cubic extrapolation in [t + 0.01 (t - t_prev), 10 t], then zoom with cubic
 * interpolation, safeguarded 0.1 away from the bracket ends (Nocedal & Wright, Numerical
 * Optimization, 2nd ed., Algorithms 3.5 / 3.6). It works on plain numbers: the caller's
 * `evaluate(t)` returns the loss, an opaque gradient and the slope g^T d at x + t d, so the same
 * search serves tensors or arrays. Used by optimizers/lbfgs.ts; the backtracking (Armijo) search
 * of Newton and HessianFree is src/curvature/line-search.ts.
 */

/**
 * torch's `_cubic_interpolate`: the minimiser of the cubic through (x1, f1, g1), (x2, f2, g2),
 * clamped to bounds (default [min(x1, x2), max(x1, x2)]); the bounds' midpoint when the cubic
 * has no real minimiser.
 */
export function cubicInterpolate(
  x1: number,
  f1: number,
  g1: number,
  x2: number,
  f2: number,
  g2: number,
  bounds?: [number, number],
): number {
  let xmin: number;
  let xmax: number;
  if (bounds !== undefined) [xmin, xmax] = bounds;
  else [xmin, xmax] = x1 <= x2 ? [x1, x2] : [x2, x1];
  const d1 = g1 + g2 - (3 * (f1 - f2)) / (x1 - x2);
  const d2Square = d1 * d1 - g1 * g2;
  if (d2Square >= 0) {
    const d2 = Math.sqrt(d2Square);
    const minPos =
      x1 <= x2
        ? x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        : x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2));
    return pyMin(pyMax(minPos, xmin), xmax);
  }
  return (xmin + xmax) / 2;
}

// Python's min/max (first argument unless the second compares strictly better), NaN included.
function pyMax(a: number, b: number): number {
  return b > a ? b : a;
}
function pyMin(a: number, b: number): number {
  return b < a ? b : a;
}

/** One evaluation of the line search: loss, gradient (opaque) and slope g^T d. */
export interface LinePoint<G> {
  f: number;
  g: G;
  gtd: number;
}

export interface StrongWolfeOptions {
  c1?: number;
  c2?: number;
  toleranceChange?: number;
  maxLs?: number;
}

/**
 * torch's `_strong_wolfe` (lswolfe.lua): `evaluate(t)` returns f, g and g^T d at x + t d;
 * `dNorm` is max|d|. Returns the accepted step, its loss and gradient, and the number of
 * evaluations. Gradients are opaque here: the caller owns (and frees) what `evaluate` made.
 */
export function strongWolfe<G>(
  evaluate: (t: number) => LinePoint<G>,
  t: number,
  f: number,
  g: G,
  gtd: number,
  dNorm: number,
  options: StrongWolfeOptions = {},
): { f: number; g: G; t: number; evals: number } {
  const c1 = options.c1 ?? 1e-4;
  const c2 = options.c2 ?? 0.9;
  const toleranceChange = options.toleranceChange ?? 1e-9;
  const maxLs = options.maxLs ?? 25;
  let { f: fNew, g: gNew, gtd: gtdNew } = evaluate(t);
  let evals = 1;
  let tPrev = 0;
  let fPrev = f;
  let gPrev = g;
  let gtdPrev = gtd;
  let done = false;
  let lsIter = 0;
  let bracket: number[] = [];
  let bracketF: number[] = [];
  let bracketG: G[] = [];
  let bracketGtd: number[] = [];
  while (lsIter < maxLs) {
    if (fNew > f + c1 * t * gtd || (lsIter > 1 && fNew >= fPrev)) {
      bracket = [tPrev, t];
      bracketF = [fPrev, fNew];
      bracketG = [gPrev, gNew];
      bracketGtd = [gtdPrev, gtdNew];
      break;
    }
    if (Math.abs(gtdNew) <= -c2 * gtd) {
      bracket = [t];
      bracketF = [fNew];
      bracketG = [gNew];
      done = true;
      break;
    }
    if (gtdNew >= 0) {
      bracket = [tPrev, t];
      bracketF = [fPrev, fNew];
      bracketG = [gPrev, gNew];
      bracketGtd = [gtdPrev, gtdNew];
      break;
    }
    // extrapolate
    const minStep = t + 0.01 * (t - tPrev);
    const maxStep = t * 10;
    const tmp = t;
    t = cubicInterpolate(tPrev, fPrev, gtdPrev, t, fNew, gtdNew, [minStep, maxStep]);
    tPrev = tmp;
    fPrev = fNew;
    gPrev = gNew;
    gtdPrev = gtdNew;
    ({ f: fNew, g: gNew, gtd: gtdNew } = evaluate(t));
    evals++;
    lsIter++;
  }
  if (lsIter === maxLs) {
    bracket = [0, t];
    bracketF = [f, fNew];
    bracketG = [g, gNew];
  }

  // zoom
  let insufProgress = false;
  let [lowPos, highPos] = bracketF[0]! <= bracketF[bracketF.length - 1]! ? [0, 1] : [1, 0];
  while (!done && lsIter < maxLs) {
    if (Math.abs(bracket[1]! - bracket[0]!) * dNorm < toleranceChange) break;
    t = cubicInterpolate(bracket[0]!, bracketF[0]!, bracketGtd[0]!, bracket[1]!, bracketF[1]!, bracketGtd[1]!);
    const bMax = Math.max(bracket[0]!, bracket[1]!);
    const bMin = Math.min(bracket[0]!, bracket[1]!);
    const eps = 0.1 * (bMax - bMin);
    if (pyMin(bMax - t, t - bMin) < eps) {
      if (insufProgress || t >= bMax || t <= bMin) {
        t = Math.abs(t - bMax) < Math.abs(t - bMin) ? bMax - eps : bMin + eps;
        insufProgress = false;
      } else {
        insufProgress = true;
      }
    } else {
      insufProgress = false;
    }
    ({ f: fNew, g: gNew, gtd: gtdNew } = evaluate(t));
    evals++;
    lsIter++;
    if (fNew > f + c1 * t * gtd || fNew >= bracketF[lowPos]!) {
      bracket[highPos] = t;
      bracketF[highPos] = fNew;
      bracketG[highPos] = gNew;
      bracketGtd[highPos] = gtdNew;
      [lowPos, highPos] = bracketF[0]! <= bracketF[1]! ? [0, 1] : [1, 0];
    } else {
      if (Math.abs(gtdNew) <= -c2 * gtd) {
        done = true;
      } else if (gtdNew * (bracket[highPos]! - bracket[lowPos]!) >= 0) {
        bracket[highPos] = bracket[lowPos]!;
        bracketF[highPos] = bracketF[lowPos]!;
        bracketG[highPos] = bracketG[lowPos]!;
        bracketGtd[highPos] = bracketGtd[lowPos]!;
      }
      bracket[lowPos] = t;
      bracketF[lowPos] = fNew;
      bracketG[lowPos] = gNew;
      bracketGtd[lowPos] = gtdNew;
    }
  }
  return { f: bracketF[lowPos]!, g: bracketG[lowPos]!, t: bracket[lowPos]!, evals };
}
