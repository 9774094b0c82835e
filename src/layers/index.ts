// Public surface of src/layers (K-FAC curvature blocks and layer registration); re-exported by
// src/index.ts.
export { DenseBlock } from './dense.js';
export type { DenseBlockSpec } from './dense.js';
export { ConvBlock } from './conv.js';
export type { ConvBlockSpec } from './conv.js';
export { denseBlocksOf } from './registration.js';
export type { BlockSpec, ModelBlocks } from './registration.js';
export { captureGradients } from './capture.js';
export type { CaptureOptions, CaptureResult, CotangentSampler, DenseTarget, LayerCapture } from './capture.js';
export { captureGaussNewton } from './gauss-newton-capture.js';
export type { CapturedLoss, GaussNewtonCapture, TapeGaussNewton } from './gauss-newton-capture.js';
export { spdInverse as dampedFactorInverse } from './inverse.js';
export { lowRankDampedInverse } from './lowrank.js';
export type { LowRankInverse, LowRankOptions } from './lowrank.js';
export type { FactorInverse } from './dense.js';
