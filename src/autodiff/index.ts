// Public surface of src/autodiff; re-exported by src/index.ts.
import { installHigherOrderGradients } from './registrations.js';
import { installWasmIdentityShare, installWasmMatMulTranspose } from './wasm-matmul.js';

/**
 * Install curvature's higher-order gradient registrations and the wasm transposed-matMul fix.
 * Idempotent; runs on import of `curvature`.
 */
export function installAutodiff(): void {
  installHigherOrderGradients();
  installWasmMatMulTranspose();
  installWasmIdentityShare();
}
installAutodiff();

export { installHigherOrderGradients, REGISTERED_GRADIENT_KERNELS } from './registrations.js';
export {
  DEFAULT_MAX_ENTRIES,
  valueAndGrad,
  grad,
  hvp,
  vjp,
  jvp,
  ggnvp,
  valueAndGradVars,
  hvpVars,
  ggnvpVars,
  jvpVars,
  jacobian,
  hessian,
  gradcheck,
} from './calculus.js';
export type {
  ScalarFn,
  TensorFn,
  ExplicitOptions,
  JacobianLayout,
  GradcheckOptions,
  GradcheckResult,
} from './calculus.js';
import * as losses from './losses.js';
export { losses };
