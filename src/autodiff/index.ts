// Public surface of src/autodiff; re-exported by src/index.ts.
export {};
