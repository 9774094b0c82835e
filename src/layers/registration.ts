/**
 * Finding K-FAC blocks in a tfjs-layers model: every Dense layer (2-D kernel, optional bias)
 * becomes a dense block; layers with other trainable weights are reported as unsupported so
 * the optimizer can fall back to a diagonal preconditioner for them and warn once.
 */
import type * as tf from '@tensorflow/tfjs';
import type { DenseBlockSpec } from './dense.js';

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
}

export interface ModelBlocks {
  dense: DenseBlockSpec[];
  /** Names of layers with trainable weights that no block supports. */
  unsupported: string[];
  /** Activation class name of the last Dense layer (e.g. 'Softmax', 'Linear'). */
  outputActivation?: string;
}

/** The Dense layers of a Sequential or functional model (nested models are searched too). */
export function denseBlocksOf(model: tf.LayersModel): ModelBlocks {
  const out: ModelBlocks = { dense: [], unsupported: [] };
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
      out.outputActivation = layer.activation?.getClassName();
    } else {
      out.unsupported.push(layer.name);
    }
  };
  for (const l of (model as unknown as LayerLike).layers ?? []) visit(l);
  return out;
}

export { installCompileHook, type ModelAttachable } from '../tfjs-internals/layers-compile.js';
