/**
 * tfjs-curvature: first- and second-order optimizers for TensorFlow.js.
 *
 * The main entry, browser-safe: optimizers, matrix calculus, curvature diagnostics, float64
 * linear algebra and backend selection. Nothing reachable from here imports a Node built-in
 * (test/browser-safe.test.ts bundles it for the browser to check). The harness, problems,
 * reports and CLI are Node-only: 'tfjs-curvature/harness' (src/harness-entry.ts).
 * docs/ and ARCHITECTURE.md describe the contract.
 */
export { initBackend, currentBackend } from './backend.js';
export type { BackendName, InitBackendOptions } from './backend.js';
export * from './autodiff/index.js';
export * from './optim/index.js';
export * from './linalg/index.js';
export * from './curvature/index.js';
export * from './layers/index.js';
export * from '../optimizers/index.js';
export * from './async/index.js';
