/**
 * The one patch of tfjs-layers: `LayersModel.prototype.compile` tells an attachable optimizer
 * (K-FAC) which model it was compiled with. tfjs-layers' `tf.loadLayersModel` rebuilds the
 * optimizer from its config -- without its model -- compiles the reloaded model with it and then
 * restores the optimizer's weights (test/save-reload.test.ts exercises exactly that path).
 */
import * as tf from '@tensorflow/tfjs';

/** An optimizer that wants to know the tfjs-layers model it is compiled with (K-FAC). */
export interface ModelAttachable {
  attachModel(model: tf.LayersModel): void;
}

function isAttachable(x: unknown): x is ModelAttachable {
  return typeof x === 'object' && x !== null && typeof (x as ModelAttachable).attachModel === 'function';
}

const COMPILE_HOOK = Symbol.for('curvature.layers.compileHook');

/**
 * Make `LayersModel.compile` tell an attachable optimizer which model it was compiled with
 * (idempotent; installed when K-FAC is imported). tfjs-layers' `tf.loadLayersModel` rebuilds
 * the optimizer with `fromConfig` -- without its model -- and compiles the reloaded model with
 * it (training.ts loadTrainingConfig), then restores the optimizer's weights: this hook is what
 * lets a reloaded K-FAC find its layers again. `compile` itself is unchanged (the original runs
 * first, with the same arguments); for a Sequential model the hook sees its inner LayersModel,
 * which holds the same layers and the compiled loss.
 */
export function installCompileHook(): void {
  const proto = tf.LayersModel.prototype as unknown as Record<PropertyKey, unknown> & {
    compile: (this: tf.LayersModel, args: tf.ModelCompileArgs) => void;
  };
  if (proto[COMPILE_HOOK] === true) return;
  const original = proto.compile;
  proto.compile = function compile(this: tf.LayersModel, args: tf.ModelCompileArgs): void {
    original.call(this, args);
    const opt: unknown = args?.optimizer;
    if (isAttachable(opt)) opt.attachModel(this);
  };
  proto[COMPILE_HOOK] = true;
}
