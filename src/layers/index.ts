// Public surface of src/layers; re-exported by src/index.ts.
export {};
