/**
 * The K-FAC optimizer's bookkeeping, apart from its algorithm (optimizers/kfac.ts): which layers
 * have curvature blocks (registered by hand or found in the tfjs-layers model, attached when the
 * model compiles it), the output distribution (option lossKind, or the compiled model's loss
 * and output activation), the curvature estimation that follows from it, the damping state and
 * its validation, the check of restored block state, and the disposal of a captured pass.
 */
import * as tf from '@tensorflow/tfjs';
import { CurvatureOptimizer, type NamedTensorLike, type SkipEvent } from '../optim/base.js';
import { invalidOption } from '../optim/options.js';
import type { CaptureResult } from '../layers/capture.js';
import { denseBlocksOf } from '../layers/registration.js';
import { blockStateKey, KroneckerFactoredBlock, type KroneckerBlock } from './blocks.js';
import { CurvatureEstimator, warnOnce } from './estimator.js';
import { lossKindOfCompiledModel } from './losses.js';
import {
  KFAC_OPTIONS,
  modelOption,
  type Conv2dRegistration,
  type DenseRegistration,
  type KFACEstimation,
  type KFACLossKind,
  type KFACOptions,
} from './options.js';
import { LayerRegistry } from './registry.js';

export abstract class KFACBase extends CurvatureOptimizer<typeof KFAC_OPTIONS> {
  private readonly registry = new LayerRegistry();
  protected estimatorCache: CurvatureEstimator | undefined;
  protected unsupportedLayers: string[] = [];
  private resolvedLossKind: KFACLossKind | undefined;
  private resolvedEstimation: KFACEstimation | undefined;
  /** Whether the model came from the constructor (attachModel never replaces it). */
  private readonly modelGiven: boolean;

  constructor(options: KFACOptions = {}) {
    super('KFAC', KFAC_OPTIONS, options);
    const o = this.options;
    // factorRank not given: low-rank inverses (64) for the default fixed-lr step only; the
    // adaptive step (the quadratic model stretches the step along the truncated directions) and
    // the worker's inverses (Cholesky of the whole factor) take exact ones.
    if (options.factorRank === undefined && (o.adaptive || o.inverseStaleness > 0)) {
      (o as { factorRank: number }).factorRank = 0;
    }
    // adaptDamping not given: with the quadratic model's step (adaptive), as kfac-jax.
    if (options.adaptDamping === undefined) (o as { adaptDamping: boolean }).adaptDamping = o.adaptive;
    this.modelGiven = o.model !== undefined;
    if (o.minDamping > o.maxDamping) throw invalidOption('minDamping', o.minDamping, 'must be <= maxDamping');
    if (o.damping < o.minDamping || o.damping > o.maxDamping) {
      throw invalidOption(
        'damping',
        o.damping,
        `must be in [minDamping, maxDamping] = [${o.minDamping}, ${o.maxDamping}]`,
      );
    }
    if (o.factorRank > 0 && o.adaptive) {
      warnOnce(
        'KFAC: factorRank with adaptive: true is experimental (the quadratic model stretches the step along the ' +
          'truncated directions; a measured mlp-mnist run diverged): prefer adaptive: false with a learning rate (docs/kfac.md)',
      );
    }
    // float32-representable, as when scalar state was saved as float32 (it is now saved as
    // float64), so that trajectories are unchanged.
    this.numericState.damping = Math.fround(o.damping);
    this.numericState.rho = Number.NaN;
  }

  /** The curvature estimation in use ('empirical' when the output distribution is unknown). */
  get estimationInUse(): KFACEstimation {
    return this.blocks.length > 0 ? this.estimation() : 'empirical';
  }

  /** The output distribution used for sampled targets, if known. */
  get lossKindInUse(): KFACLossKind | undefined {
    return this.lossKind();
  }

  /** Current damping lambda. */
  get damping(): number {
    return this.numericState.damping!;
  }

  /** Register a dense layer of a plain-tf model (the matMul whose right operand is `kernel`). */
  registerDense(layer: DenseRegistration): this {
    this.registry.addDense(layer);
    this.estimatorCache = undefined;
    return this;
  }

  /**
   * Register a 2-D convolution of a plain-tf model (KFC block: the conv2d node whose filter is
   * `kernel`, with the registered strides and padding).
   */
  registerConv2d(layer: Conv2dRegistration): this {
    this.registry.addConv2d(layer);
    this.estimatorCache = undefined;
    return this;
  }

  /**
   * Use the Dense and Conv2D layers of `model` (a tfjs-layers model this optimizer is compiled with).
   * Called by `model.compile({ optimizer })` (src/layers/registration.ts installCompileHook),
   * which is how a K-FAC rebuilt by `tf.loadLayersModel` (fromConfig, no model) finds the
   * layers of the model it was reloaded with; call it yourself when you compile some other way.
   * A `model` given to the constructor is kept (this is then a no-op).
   */
  attachModel(model: tf.LayersModel): void {
    if (this.modelGiven || this.options.model === model) return;
    (this.options as { model: tf.LayersModel | undefined }).model = modelOption.parse(model, 'model');
    this.estimatorCache = undefined;
    this.resolvedLossKind = undefined;
    this.resolvedEstimation = undefined;
  }

  /** The estimator and its curvature blocks (resolved from the model on first use). */
  protected get estimator(): CurvatureEstimator {
    if (this.estimatorCache === undefined) {
      const { layers, unsupported } = this.registry.layers(this.options.model);
      if (this.options.model !== undefined) this.unsupportedLayers = unsupported;
      const blocks = layers.map((l) => new KroneckerFactoredBlock(l, () => this.stateFor(blockStateKey(l.name))));
      this.estimatorCache = new CurvatureEstimator(blocks);
    }
    return this.estimatorCache;
  }

  /** The layers with curvature blocks (resolved from the model on first use). */
  get blocks(): readonly KroneckerBlock[] {
    return this.estimator.layers;
  }

  /** Factors of a block (the EMA statistics), or undefined before its first update. */
  factors(blockName: string): { A: tf.Tensor2D; G: tf.Tensor2D } | undefined {
    const s = this.stateFor(blockStateKey(blockName));
    const A = s.get('A');
    const G = s.get('G');
    return A && G ? { A: A as tf.Tensor2D, G: G as tf.Tensor2D } : undefined;
  }

  override applyGradients(_variableGradients: tf.NamedTensorMap | NamedTensorLike[]): void {
    throw new Error(
      'KFAC needs the loss closure to capture layer activations: call minimize(f) or model.fit, not applyGradients',
    );
  }

  protected override onNonFinite(event: SkipEvent): void {
    this.numericState.damping = Math.fround(Math.min(this.damping * 10, this.options.maxDamping));
    super.onNonFinite(event);
  }

  protected lossKind(): KFACLossKind | undefined {
    if (this.resolvedLossKind !== undefined) return this.resolvedLossKind;
    const o = this.options;
    if (o.lossKind !== 'auto') return (this.resolvedLossKind = o.lossKind);
    const model = o.model as (tf.LayersModel & { loss?: unknown }) | undefined;
    if (model === undefined) return undefined;
    return (this.resolvedLossKind = lossKindOfCompiledModel(model.loss, denseBlocksOf(model).outputActivation));
  }

  protected estimation(): KFACEstimation {
    if (this.resolvedEstimation !== undefined) return this.resolvedEstimation;
    const want = this.options.estimation;
    if (want !== 'empirical' && this.lossKind() === undefined) {
      warnOnce(
        `KFAC: estimation '${want}' needs the output distribution; set lossKind (or compile the model with ` +
          "categoricalCrossentropy+softmax, binaryCrossentropy+sigmoid or meanSquaredError+linear). Using 'empirical'.",
      );
      return (this.resolvedEstimation = 'empirical');
    }
    return (this.resolvedEstimation = want);
  }

  protected disposeCapture(cap: CaptureResult): void {
    tf.dispose(cap.grads);
    for (const l of cap.layers) {
      if (!l) continue;
      l.a.dispose();
      l.dsTrue?.dispose();
      tf.dispose(l.dsSampled);
    }
  }

  protected finish(cap: CaptureResult, returnCost: boolean): tf.Scalar | null {
    this.disposeCapture(cap);
    if (returnCost) return cap.value;
    cap.value.dispose();
    return null;
  }
}
