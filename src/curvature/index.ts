
// Second-order solver pieces (issue 6): truncated CG, LM damping, Armijo, flat vectors.
export { conjugateGradient, disposeCG } from './cg.js';
export type { CGOptions, CGResult, CGStop, SavedIterate } from './cg.js';
export { adaptDamping, reductionRatio } from './damping.js';
export type { DampingRule } from './damping.js';
export { armijoBacktracking } from './line-search.js';
export type { ArmijoOptions, ArmijoResult } from './line-search.js';
export { flatten, unflatten, dotNumber, ParameterPoint } from './vector.js';
export { releaseKept, lossValue } from './closure.js';
