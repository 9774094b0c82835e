/**
 * Which layers K-FAC gives curvature blocks: layers registered by hand (plain-tf models:
 * registerDense / registerConv2d) and the Dense and Conv2D layers of a tfjs-layers model
 * (src/layers/registration.ts), in model order; and the check that restored block state
 * belongs to them.
 */
import * as tf from '@tensorflow/tfjs';
import { ConvBlock, type ConvBlockSpec } from '../layers/conv.js';
import { DenseBlock, type DenseBlockSpec } from '../layers/dense.js';
import { denseBlocksOf, isConvSpec, type BlockSpec } from '../layers/registration.js';
import { blockStateKey, type KroneckerBlock } from './blocks.js';
import type { Conv2dRegistration, DenseRegistration } from './options.js';

/** The layers registered by hand, validated as they are added. */
export class LayerRegistry {
  private readonly explicit: BlockSpec[] = [];

  /** A dense layer of a plain-tf model (the matMul whose right operand is `kernel`). */
  addDense(layer: DenseRegistration): void {
    if (!(layer.kernel instanceof tf.Variable)) throw new Error('KFAC.registerDense: kernel must be a tf.Variable');
    const spec: DenseBlockSpec = { name: layer.name ?? layer.kernel.name, kernel: layer.kernel };
    if (layer.bias !== undefined) spec.bias = layer.bias;
    new DenseBlock(spec); // validates shapes now
    this.add(spec, 'registerDense');
  }

  /** A 2-D convolution of a plain-tf model (the conv2d node whose filter is `kernel`). */
  addConv2d(layer: Conv2dRegistration): void {
    if (!(layer.kernel instanceof tf.Variable)) throw new Error('KFAC.registerConv2d: kernel must be a tf.Variable');
    const st = layer.strides ?? 1;
    const spec: ConvBlockSpec = {
      name: layer.name ?? layer.kernel.name,
      kernel: layer.kernel,
      strides: typeof st === 'number' ? [st, st] : [st[0], st[1]],
      padding: layer.padding ?? 'valid',
    };
    if (layer.bias !== undefined) spec.bias = layer.bias;
    new ConvBlock(spec); // validates shapes now
    this.add(spec, 'registerConv2d');
  }

  private add(spec: BlockSpec, method: string): void {
    if (this.explicit.some((s) => s.kernel === spec.kernel)) {
      throw new Error(`KFAC.${method}: kernel '${spec.kernel.name}' is already registered`);
    }
    this.explicit.push(spec);
  }

  /**
   * The layers with blocks: the registered ones, then the model's (a model layer whose kernel
   * is registered already is skipped), and the names of the model's layers with trainable
   * weights that no block supports.
   */
  layers(model: tf.LayersModel | undefined): { layers: KroneckerBlock[]; unsupported: string[] } {
    const specs = [...this.explicit];
    let unsupported: string[] = [];
    if (model !== undefined) {
      const found = denseBlocksOf(model);
      for (const s of found.all) if (!specs.some((e) => e.kernel === s.kernel)) specs.push(s);
      unsupported = found.unsupported;
    }
    return { layers: specs.map((s) => (isConvSpec(s) ? new ConvBlock(s) : new DenseBlock(s))), unsupported };
  }
}

/**
 * Restored factors ('@kfac/<layer>' state from setWeights / tf.loadLayersModel) must belong
 * to a block this optimizer has; otherwise it would train those layers with the diagonal
 * fallback from scratch and wreck a trained model. The error naming the fix, if they do not.
 */
export function orphanedStateError(stateKeys: readonly string[], layers: readonly KroneckerBlock[]): Error | undefined {
  const have = new Set(layers.map((b) => blockStateKey(b.name)));
  const prefix = blockStateKey('');
  const orphans = stateKeys.filter((k) => k.startsWith(prefix) && !have.has(k));
  if (orphans.length === 0) return undefined;
  const names = orphans.map((k) => `'${k.slice(prefix.length)}'`).join(', ');
  return new Error(
    layers.length === 0
      ? `KFAC holds restored factors for layers ${names} but has no model: it was rebuilt from its config ` +
          '(tf.loadLayersModel / fromConfig) and not compiled with a tfjs-layers model. Compile the model with it ' +
          '(model.compile({ optimizer, loss })) or call kfac.attachModel(model) before training.'
      : `KFAC holds restored factors for layers ${names}, which its model does not have (its layers with blocks: ` +
          `${layers.map((b) => `'${b.name}'`).join(', ')}). Restore into the model the state was saved with ` +
          '(tf.loadLayersModel keeps layer names) or start a fresh KFAC.',
  );
}
