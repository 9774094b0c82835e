// Public surface of src/curvature; re-exported by src/index.ts.
export {};
