// Public surface of src/harness; re-exported by src/index.ts.
export * from './problem.js';
