// The seeded generator lives in src/rng.ts (used by the browser-safe core too); re-exported here
// for the harness, problems and experiments.
export * from '../rng.js';
