// Problems and dataset loaders; re-exported by src/index.ts.
export {};
