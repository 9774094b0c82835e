/**
 * L-BFGS's state between `minimize` calls (torch.optim.LBFGS's state dict) and where it is saved:
 * the direction d, the step t, the (y, s, rho) history, H_diag, the previous gradient and loss,
 * n_iter and func_evals. Vectors live in the slots of the optimizer's '@lbfgs' state entry
 * (`d`, `prevFlatGrad`, `y<i>`, `s<i>`, `ro`), scalars in its numeric state, so getWeights /
 * setWeights continue the same trajectory. Used by optimizers/lbfgs.ts.
 */
import * as tf from '@tensorflow/tfjs';
import type { SlotState } from './slots.js';

/** The optimizer state entry that holds L-BFGS's vectors. */
export const KEY = '@lbfgs';

/** The step's working copy of the torch state (tensors owned by the step until committed). */
export interface WorkingState {
  d: tf.Tensor1D | null;
  t: number;
  oldDirs: tf.Tensor1D[];
  oldStps: tf.Tensor1D[];
  ro: number[];
  hDiag: number;
  prevFlatGrad: tf.Tensor1D | null;
  prevLoss: number;
  nIter: number;
  funcEvals: number;
}

/** The saved state, copied into a working state the step owns (tensors cloned). */
export function loadWorkingState(st: SlotState, ns: Record<string, number>, n: number): WorkingState {
  const len = ns.historyLength ?? 0;
  const take = (slot: string): tf.Tensor1D | null => {
    const v = st.get(slot);
    if (v === undefined) return null;
    if (v.size !== n) {
      throw new Error(
        `LBFGS: the variables have ${n} parameters but the optimizer's state was built for ${v.size}; ` +
          'use one LBFGS instance per set of variables (or a fresh one).',
      );
    }
    return tf.clone(v) as tf.Tensor1D;
  };
  const oldDirs: tf.Tensor1D[] = [];
  const oldStps: tf.Tensor1D[] = [];
  for (let i = 0; i < len; i++) {
    oldDirs.push(take(`y${i}`)!);
    oldStps.push(take(`s${i}`)!);
  }
  const roT = st.get('ro');
  const ro = len > 0 && roT !== undefined ? Array.from(roT.dataSync()).slice(0, len) : [];
  return {
    d: take('d'),
    t: ns.t ?? NaN,
    oldDirs,
    oldStps,
    ro,
    hDiag: ns.hDiag ?? 1,
    prevFlatGrad: take('prevFlatGrad'),
    prevLoss: ns.prevLoss ?? NaN,
    nIter: ns.nIter ?? 0,
    funcEvals: ns.funcEvals ?? 0,
  };
}

/** The working state saved back (slots copied, numbers into the numeric state). */
export function commitWorkingState(st: SlotState, ns: Record<string, number>, w: WorkingState): void {
  if (w.d !== null) st.set('d', w.d);
  if (w.prevFlatGrad !== null) st.set('prevFlatGrad', w.prevFlatGrad);
  for (let i = 0; i < w.oldDirs.length; i++) {
    st.set(`y${i}`, w.oldDirs[i]!);
    st.set(`s${i}`, w.oldStps[i]!);
  }
  if (w.ro.length > 0) {
    const roT = tf.tensor1d(Float32Array.from(w.ro));
    st.set('ro', roT);
    roT.dispose();
  }
  Object.assign(ns, {
    t: w.t,
    hDiag: w.hDiag,
    prevLoss: w.prevLoss,
    historyLength: w.oldDirs.length,
    nIter: w.nIter,
    funcEvals: w.funcEvals,
  });
}
