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
// Influence functions (Koh & Liang 2017).
export { influence, dampedConjugateGradient } from './influence.js';
export type { InfluenceOptions, InfluenceResult, InfluenceSolve, InfluenceSolveStatus } from './influence.js';
// Second-order solver pieces (issue 6): truncated CG, LM damping, Armijo, flat vectors.
export { conjugateGradient, disposeCG } from './cg.js';
export type { CGOptions, CGResult, CGStop, SavedIterate } from './cg.js';
export { adaptDamping, reductionRatio } from './damping.js';
export type { DampingRule } from './damping.js';
export { armijoBacktracking } from './line-search.js';
export type { ArmijoOptions, ArmijoResult } from './line-search.js';
export { flatten, unflatten, dotNumber, ParameterPoint } from './vector.js';
export { releaseKept, lossValue } from './closure.js';
