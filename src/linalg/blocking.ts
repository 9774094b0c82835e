/**
 * Blocking for Shampoo-style preconditioners, pure functions of shapes (no tensors).
 *
 * - splitDim(dim, maxDim): block sizes [maxDim, ..., maxDim, rest] covering dim.
 * - mergeSmallDims(shape, maxDim): Distributed Shampoo's merge_small_dims
 *   (facebookresearch/optimizers, distributed_shampoo/utils/shampoo_utils.py): a shape with a 0
 *   gives [0]; dimensions of size 1 are dropped (all ones give [1]); then, left to right,
 *   a dimension is merged into the previous one while their product is <= maxDim.
 *   E.g. [1, 2, 512, 1, 2048, 1, 3, 4] with maxDim 1024 -> [1024, 2048, 12].
 * - blockPlan(shape, maxDim, { merge }): merge (unless merge is false), then cut every merged dimension into blocks of <= maxDim;
 *   returns every block's offset and size in the merged shape (row-major block order).
 */

function checkMaxDim(maxDim: number, where: string): void {
  if (!(Number.isInteger(maxDim) && maxDim >= 1))
    throw new Error(`${where}: maxDim must be a positive integer, got ${maxDim}`);
}

function checkShape(shape: readonly number[], where: string): void {
  for (const d of shape) {
    if (!(Number.isInteger(d) && d >= 0))
      throw new Error(`${where}: shape entries must be integers >= 0, got [${shape.join(', ')}]`);
  }
}

/** Block sizes covering `dim`, each <= maxDim (the last one may be smaller). */
export function splitDim(dim: number, maxDim: number): number[] {
  checkMaxDim(maxDim, 'splitDim');
  if (!(Number.isInteger(dim) && dim >= 0)) throw new Error(`splitDim: dim must be an integer >= 0, got ${dim}`);
  const out: number[] = [];
  for (let start = 0; start < dim; start += maxDim) out.push(Math.min(maxDim, dim - start));
  return out;
}

/** Distributed Shampoo's merge_small_dims (see the file header). */
export function mergeSmallDims(shape: readonly number[], maxDim: number): number[] {
  checkMaxDim(maxDim, 'mergeSmallDims');
  checkShape(shape, 'mergeSmallDims');
  if (shape.includes(0)) return [0];
  const squeezed = shape.filter((d) => d !== 1);
  if (squeezed.length === 0) return [1];
  const out = [squeezed[0]];
  for (let i = 1; i < squeezed.length; i++) {
    const merged = out[out.length - 1] * squeezed[i];
    if (merged <= maxDim) out[out.length - 1] = merged;
    else out.push(squeezed[i]);
  }
  return out;
}

/** The shape without its dimensions of size 1 ([1] when none is left, [0] for an empty shape). */
function squeezeDims(shape: readonly number[], maxDim: number): number[] {
  checkMaxDim(maxDim, 'blockPlan');
  checkShape(shape, 'blockPlan');
  if (shape.includes(0)) return [0];
  const squeezed = shape.filter((d) => d !== 1);
  return squeezed.length === 0 ? [1] : squeezed;
}

export interface Block {
  /** Start index of the block along each merged dimension. */
  offset: number[];
  /** Size of the block along each merged dimension (each <= maxDim). */
  size: number[];
}

export interface BlockPlan {
  /** The tensor reshaped by mergeSmallDims. */
  mergedShape: number[];
  blocks: Block[];
}

/**
 * Merge small dims, then split every merged dim into blocks of <= maxDim. `merge: false`
 * (Distributed Shampoo without merge_small_dims) only drops the dimensions of size 1.
 */
export function blockPlan(shape: readonly number[], maxDim: number, options: { merge?: boolean } = {}): BlockPlan {
  const mergedShape = options.merge === false ? squeezeDims(shape, maxDim) : mergeSmallDims(shape, maxDim);
  if (mergedShape.length === 1 && mergedShape[0] === 0) return { mergedShape, blocks: [] };
  const splits = mergedShape.map((d) => splitDim(d, maxDim));
  let blocks: Block[] = [{ offset: [], size: [] }];
  for (const sizes of splits) {
    const next: Block[] = [];
    for (const b of blocks) {
      let start = 0;
      for (const s of sizes) {
        next.push({ offset: [...b.offset, start], size: [...b.size, s] });
        start += s;
      }
    }
    blocks = next;
  }
  return { mergedShape, blocks };
}
