/**
 * How Shampoo cuts a parameter into blocks (Distributed Shampoo's merge_small_dims and block
 * partitioning), from src/linalg's `blockPlan`, plus the tfjs helpers that cut a tensor into
 * those blocks and join them back.
 */
import * as tf from '@tensorflow/tfjs';
import { blockPlan } from '../../src/linalg/index.js';
import type { BlockGrid2d } from '../../src/optim/shampoo-kernels.js';

export interface Layout {
  /** Shape after merging (order k). */
  merged: number[];
  /** Block sizes along each merged dimension (each <= maxPreconditionerDim). */
  splits: number[][];
  /** Every block's size, row-major over the block grid. */
  blocks: number[][];
  /** Start offset of every block along each merged dimension (parallel to `splits`). */
  offsets: number[][];
  /**
   * Per merged dimension: has statistics and roots (false: larger than skipPreconditioningDimSizeGt,
   * left unpreconditioned, i.e. one-sided Shampoo for that parameter).
   */
  preconditioned: boolean[];
  /** Vectors (one dimension > 1) get a diagonal preconditioner. */
  diagonal: boolean;
  empty: boolean;
}

/** `skipGt` > 0: merged dimensions larger than it get no preconditioner (scalable_shampoo's skip_preconditioning_dim_size_gt). */
export function layoutOf(shape: readonly number[], maxDim: number, merge: boolean, skipGt = 0): Layout {
  const plan = blockPlan(shape, maxDim, { merge });
  const merged = plan.mergedShape;
  const k = merged.length;
  // Along axis a, the blocks whose other offsets are all 0 give that axis's cuts in order.
  const along = (a: number) => plan.blocks.filter((b) => b.offset.every((o, j) => j === a || o === 0));
  const splits = merged.map((_, a) => along(a).map((b) => b.size[a]!));
  const offsets = merged.map((_, a) => along(a).map((b) => b.offset[a]!));
  return {
    merged,
    splits,
    blocks: plan.blocks.map((b) => b.size),
    offsets,
    preconditioned: merged.map((d) => skipGt <= 0 || d <= skipGt),
    // Biases and other vectors (one dimension > 1) are diagonal; a small matrix merged into
    // one dimension (e.g. [6, 5] -> [30]) keeps a full preconditioner, as in DS.
    diagonal: shape.filter((d) => d !== 1).length <= 1,
    empty: plan.blocks.length === 0 || k === 0,
  };
}

/**
 * The blocks of `x` (reshaped to the merged shape), row-major. Separate 2-D matMuls per block
 * are used rather than one batched matMul: on wasm the batched kernel is ~6x slower.
 */
export function splitBlocks(x: tf.Tensor, L: Layout): tf.Tensor[] {
  let parts = [tf.reshape(x, L.merged)];
  L.splits.forEach((sizes, axis) => {
    if (sizes.length > 1) parts = parts.flatMap((p) => tf.split(p, sizes, axis));
  });
  return parts;
}

export function joinBlocks(blocks: tf.Tensor[], L: Layout, shape: readonly number[]): tf.Tensor {
  let parts = blocks;
  for (let axis = L.splits.length - 1; axis >= 0; axis--) {
    const n = L.splits[axis]!.length;
    if (n === 1) continue;
    const next: tf.Tensor[] = [];
    for (let i = 0; i < parts.length; i += n) next.push(tf.concat(parts.slice(i, i + n), axis));
    parts = next;
  }
  return tf.reshape(parts[0]!, shape as number[]);
}

/** The block grid of a 2-D (merged) layout, as the WebAssembly kernels take it. */
export function grid2d(L: Layout): BlockGrid2d {
  return {
    m: L.merged[0]!,
    n: L.merged[1]!,
    rows: L.splits[0]!,
    rowOffsets: L.offsets[0]!,
    cols: L.splits[1]!,
    colOffsets: L.offsets[1]!,
  };
}
