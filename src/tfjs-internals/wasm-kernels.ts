/**
 * When the wasm kernel swaps (wasm-matmul.ts: fast transposed matMul, shared Identity;
 * wasm-conv.ts: conv and pooling backprops) are installed: not on import, but by
 *
 *   - `initBackend` (src/backend.ts), whatever backend it selects (a user may switch to wasm
 *     later), and
 *   - lazily, by the first curvature optimizer constructed (src/optim/base.ts) or matrix-calculus
 *     call (src/autodiff/calculus.ts), so a user who selects wasm with tfjs's own
 *     `tf.setBackend('wasm')` and never calls `initBackend` still trains conv nets and takes fast
 *     transposed products with curvature's optimizers and calculus.
 *
 * A user who only imports the library and trains with tfjs's own optimizers keeps tfjs's stock
 * kernels unless they call `installWasmKernels()` (exported) or `initBackend`. The swaps register
 * kernels for the 'wasm' backend only: they change no value and no other backend's kernels.
 * Idempotent; the check after the first call is one boolean.
 */
import { installWasmIdentityShare, installWasmMatMulTranspose } from './wasm-matmul.js';
import { installWasmConvKernels } from './wasm-conv.js';

let installed = false;

/** Install curvature's wasm kernel swaps (idempotent). */
export function installWasmKernels(): void {
  if (installed) return;
  installed = true;
  installWasmMatMulTranspose();
  installWasmIdentityShare();
  installWasmConvKernels();
}
