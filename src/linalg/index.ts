/**
 * src/linalg: float64 dense linear algebra for curvature factors (docs/linalg.md).
 * Matrices are Mat64 (row-major Float64Array); every function also accepts number[][],
 * ml-matrix matrices and 2-D tf tensors, and validates shape, finiteness and symmetry.
 */
export type { Mat64, MatrixInput } from './matrix.js';
export { toTensor } from './tensor.js';
export {
  mat64,
  identity,
  toMat64,
  toArray2D,
  toMlMatrix,
  matmul,
  matmulABt,
  matvec,
  transpose,
  frobeniusNorm,
  relativeDifference,
  addDiagonal,
} from './matrix.js';
export type { CholeskyOptions, CholeskyResult, SpdSolveResult, SpdInverseResult } from './cholesky.js';
export { cholesky, choleskySolveInPlace, spdSolve, spdInverse, lowerTriangularInverse } from './cholesky.js';
export type { EighResult, EighRows } from './eigh.js';
export { eigh, eighRows, eighUnsorted, eighResidual } from './eigh.js';
export type {
  EpsilonMode,
  InverseRootMethod,
  SpectralOptions,
  InverseRootOptions,
  InverseRootResult,
  MatrixPowerResult,
  SpectralWeights,
} from './roots.js';
export { inverseRootFromEigen, matrixPower, inverseRootError, reconstruct } from './roots.js';
export { inverseRoot } from './roots-f32.js';
export type { ModificationStrategy, ModifiedSolveOptions, ModifiedSolveResult } from './modified.js';
export { solveModified } from './modified.js';
export type { LinalgKernel } from './kernels.js';
export { linalgKernel, setLinalgKernel, linalgKernelError } from './kernels.js';
export type { Block, BlockPlan } from './blocking.js';
export { splitDim, mergeSmallDims, blockPlan } from './blocking.js';
export type { QrResult } from './qr.js';
export { qr, orthonormalBasis } from './qr.js';
