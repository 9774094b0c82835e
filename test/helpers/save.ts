// Saving a tfjs-layers model with its optimizer into memory (the path docs/optimizers.md shows).
import * as tf from '@tensorflow/tfjs';

/** model.save(..., { includeOptimizer: true }) into memory; load it back with tf.io.fromMemory. */
export async function saveToMemory(m: tf.LayersModel): Promise<tf.io.ModelArtifacts> {
  let saved: tf.io.ModelArtifacts | undefined;
  await m.save(
    tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
    { includeOptimizer: true },
  );
  return saved!;
}
