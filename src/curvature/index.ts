// Public surface of src/curvature; re-exported by src/index.ts.
export {};
// Curvature diagnostics (issue 9; docs/curvature.md).
export { CurvatureOperator, curvatureOperator } from './operator.js';
export type { CurvatureKind, CurvatureSourceOptions, LossFn } from './operator.js';
export { hessianTopEigenvalues } from './eigenvalues.js';
export type { TopEigenvaluesOptions, TopEigenvaluesResult } from './eigenvalues.js';
export { hessianTrace, hessianDiagonal } from './trace.js';
export type { TraceOptions, TraceResult, DiagonalOptions, DiagonalResult } from './trace.js';
export { hessianSpectrum, spectralMass } from './spectrum.js';
export type { SpectrumOptions, SpectrumResult } from './spectrum.js';
