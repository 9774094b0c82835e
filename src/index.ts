/**
 * curvature: first- and second-order optimizers for TensorFlow.js.
 * The one public entry point; see docs/ and ../shared/design/ARCHITECTURE.md for the contract.
 */
export { initBackend, currentBackend } from './backend.js';
export type { BackendName } from './backend.js';
