// Public surface of src/autodiff; re-exported by src/index.ts.
import { installHigherOrderGradients } from './registrations.js';
import { installWasmIdentityShare, installWasmMatMulTranspose } from '../tfjs-internals/wasm-matmul.js';
import { installWasmConvKernels } from '../tfjs-internals/wasm-conv.js';
import { installConvGradients } from './conv-gradients.js';

/**
 * Install curvature's higher-order gradient registrations (conv and pooling included), the wasm
 * transposed-matMul fix and the wasm conv gradient kernels. Idempotent; runs on import of
 * `curvature`.
 */
export function installAutodiff(): void {
  installHigherOrderGradients();
  installConvGradients();
  installWasmMatMulTranspose();
  installWasmIdentityShare();
  installWasmConvKernels();
}
installAutodiff();

export { installHigherOrderGradients, REGISTERED_GRADIENT_KERNELS } from './registrations.js';
export { installConvGradients, CONV_GRADIENT_KERNELS } from './conv-gradients.js';
export { installWasmConvKernels, WASM_CONV_KERNELS } from '../tfjs-internals/wasm-conv.js';
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
