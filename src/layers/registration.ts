/**
 * Finding K-FAC blocks in a tfjs-layers model: every Dense layer (2-D kernel, optional bias)
 * becomes a dense block, every Conv2D layer (channelsLast, padding 'same' or 'valid', dilation 1)
 * a KFC conv block; layers with other trainable weights (depthwise/separable/transposed
 * convolutions, dilated or channelsFirst Conv2D, ...) are reported as unsupported so the
 * optimizer can fall back to a diagonal preconditioner for them and warn once, naming them.
 */
import type * as tf from '@tensorflow/tfjs';
import type { DenseBlockSpec } from './dense.js';
import type { ConvBlockSpec } from './conv.js';

interface LayerVariableLike {
  read(): tf.Variable;
}

interface LayerLike {
  name: string;
  getClassName(): string;
  trainable: boolean;
  trainableWeights: LayerVariableLike[];
  layers?: LayerLike[];
  kernel?: LayerVariableLike | null;
  bias?: LayerVariableLike | null;
  activation?: { getClassName(): string } | null;
  strides?: number[];
  padding?: string;
  dilationRate?: number[];
  dataFormat?: string;
}

/** A block spec in model order: dense, or conv (it has `strides` and `padding`). */
export type BlockSpec = DenseBlockSpec | ConvBlockSpec;

export function isConvSpec(s: BlockSpec): s is ConvBlockSpec {
  return (s as ConvBlockSpec).strides !== undefined;
}

export interface ModelBlocks {
  dense: DenseBlockSpec[];
  /** Conv2D layers with a KFC block. */
  conv: ConvBlockSpec[];
  /** Dense and conv blocks in the model's layer order. */
  all: BlockSpec[];
  /** Names of layers with trainable weights that no block supports. */
  unsupported: string[];
  /** Activation class name of the last Dense layer (e.g. 'Softmax', 'Linear'). */
  outputActivation?: string;
}

/** The Dense layers of a Sequential or functional model (nested models are searched too). */
export function denseBlocksOf(model: tf.LayersModel): ModelBlocks {
  const out: ModelBlocks = { dense: [], conv: [], all: [], unsupported: [] };
  const visit = (layer: LayerLike): void => {
    if (layer.layers !== undefined && layer.getClassName() !== 'Dense') {
      for (const l of layer.layers) visit(l);
      return;
    }
    if (!layer.trainable || layer.trainableWeights.length === 0) return;
    if (layer.getClassName() === 'Dense' && layer.kernel != null && layer.kernel.read().rank === 2) {
      out.dense.push({
        name: layer.name,
        kernel: layer.kernel.read(),
        ...(layer.bias != null ? { bias: layer.bias.read() } : {}),
      });
      out.all.push(out.dense.at(-1)!);
      out.outputActivation = layer.activation?.getClassName();
    } else if (isKfcConv(layer)) {
      out.conv.push({
        name: layer.name,
        kernel: layer.kernel!.read(),
        ...(layer.bias != null ? { bias: layer.bias.read() } : {}),
        strides: [layer.strides![0]!, layer.strides![1]!],
        padding: layer.padding as 'same' | 'valid',
      });
      out.all.push(out.conv.at(-1)!);
    } else {
      out.unsupported.push(layer.name);
    }
  };
  for (const l of (model as unknown as LayerLike).layers ?? []) visit(l);
  return out;
}

/** A tfjs-layers Conv2D the KFC block supports (NHWC, 'same'/'valid', dilation 1, rank-4 kernel). */
function isKfcConv(layer: LayerLike): boolean {
  return (
    layer.getClassName() === 'Conv2D' &&
    layer.kernel != null &&
    layer.kernel.read().rank === 4 &&
    (layer.dataFormat === undefined || layer.dataFormat === 'channelsLast') &&
    (layer.padding === 'same' || layer.padding === 'valid') &&
    Array.isArray(layer.strides) &&
    layer.strides.length === 2 &&
    (layer.dilationRate === undefined || layer.dilationRate.every((d) => d === 1))
  );
}

export { installCompileHook, type ModelAttachable } from '../tfjs-internals/layers-compile.js';
