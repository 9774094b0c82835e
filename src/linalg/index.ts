// Public surface of src/linalg; re-exported by src/index.ts.
export {};
