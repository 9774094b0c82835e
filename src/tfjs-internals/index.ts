// The only folder that touches tfjs engine internals or swaps kernels (eslint.config.js enforces it).
export {
  engineState,
  untaped,
  registeredVariable,
  trainableVariables,
  releaseKept,
  runKernel,
  silenceCpuFirstUseNotice,
} from './engine.js';
export type { TapeNode, EngineState } from './engine.js';
export { installCompileHook } from './layers-compile.js';
export { installWasmKernels } from './wasm-kernels.js';
export type { ModelAttachable } from './layers-compile.js';
