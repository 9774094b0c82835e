/**
 * curvature: first- and second-order optimizers for TensorFlow.js.
 * The one public entry point; docs/ and ARCHITECTURE.md describe the contract.
 */
export { initBackend, currentBackend } from './backend.js';
export type { BackendName } from './backend.js';
export * from './autodiff/index.js';
export * from './optim/index.js';
export * from './linalg/index.js';
export * from './curvature/index.js';
export * from './layers/index.js';
export * from './harness/index.js';
export * from './report/index.js';
export * from '../optimizers/index.js';
export * from '../experiments/index.js';
