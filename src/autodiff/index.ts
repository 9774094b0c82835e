// Public surface of src/autodiff; re-exported by src/index.ts.
import { installHigherOrderGradients } from './registrations.js';
import { installConvGradients } from './conv-gradients.js';

/**
 * Install curvature's higher-order gradient registrations (conv and pooling included); they run
 * on import of `curvature`. The wasm kernel swaps (transposed matMul, conv gradient kernels) are
 * not installed on import: `initBackend`, the first curvature optimizer or matrix-calculus call,
 * or `installWasmKernels()` install them (src/tfjs-internals/wasm-kernels.ts). Idempotent.
 */
export function installAutodiff(): void {
  installHigherOrderGradients();
  installConvGradients();
}
installAutodiff();

export { installHigherOrderGradients, REGISTERED_GRADIENT_KERNELS } from './registrations.js';
export { installConvGradients, CONV_GRADIENT_KERNELS } from './conv-gradients.js';
export { installWasmConvKernels, WASM_CONV_KERNELS } from '../tfjs-internals/wasm-conv.js';
export { installWasmKernels } from '../tfjs-internals/wasm-kernels.js';
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
