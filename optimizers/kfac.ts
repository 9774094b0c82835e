/**
 * K-FAC: Kronecker-factored approximate curvature (Martens & Grosse 2015), a drop-in
 * `tf.Optimizer` for tfjs-layers models and for plain-tf models with registered layers: a
 * Kronecker block per Dense layer and per Conv2D layer (KFC, Grosse & Martens 2016:
 * src/layers/conv.ts, ã = patches with a 1, statistics over examples and output locations,
 * kfac-jax's Conv2DTwoKroneckerFactored scaling).
 *
 *   per step k, on the mini-batch the loss closure sees (one forward, one backward):
 *     capture a_l (layer inputs) and ds_l (pre-activation gradients) from the gradient tape;
 *       ds_l from targets sampled from the model ('fisher'), the data ('empirical'), or every
 *       output direction ('exact': sqrt of the output Fisher, for small outputs)
 *     every statsUpdatePeriod steps:  A_l <- EMA(ã^T ã / n),  G_l <- EMA(n ds^T ds)
 *       (conv: A_l <- EMA(sum_{i,t} p_it p_it^T / (n L)) over the patches p of the L output
 *       locations, G_l <- EMA(n sum_{i,t} ds_it ds_it^T), i.e. kfac-jax's G times L)
 *       with EMA weight min(1 - 1/t, statsDecay) on the old value (t = update count)
 *     every inverseUpdatePeriod steps: pi_l^2 = (tr A_l / dim A_l) / (tr G_l / dim G_l),
 *       Ainv_l = (A_l + pi_l sqrt(lambda) I)^-1,  Ginv_l = (G_l + sqrt(lambda) / pi_l I)^-1
 *     g = grad + weightDecay * theta;      Delta_l = -Ainv_l [gW; gb]_l Ginv_l
 *     adaptive:  (alpha, mu) = argmin of the quadratic model
 *                  m(alpha, mu) = g.u + 1/2 u^T (F + lambda I + wd I) u,  u = alpha Delta + mu delta
 *                with F = J^T H_L J the exact Gauss-Newton matrix (= Fisher for these losses) of
 *                this batch (quadraticModel 'exact'; J: Jacobian of the logits, H_L: the loss's
 *                Hessian in the logits): the d columns c_k of a root of H_L (sum_k c_k c_k^T =
 *                H_L per example) are back-propagated from the logits through the tape, and
 *                u^T F u = n sum_{i,k} (sum_l ã_il^T V_l ds_il^k)^2 with ds^k the back-propagated
 *                c_k / n (no Kronecker approximation);
 *                momentum clipped to [0, 0.99]; m(delta) for rho reuses these 2x2 products;
 *                rejectSteps: L(theta + delta) on the same batch every step (one more loss
 *                evaluation; the damping check's when due): if it is above L(theta) or not
 *                finite, theta and the momentum stay as they were and lambda *= 10;
 *                adaptivePeriod P > 1: the model (with its check) only on the steps k with
 *                (k + 1) % P = 0 and when no alpha is at hand (the first two steps, after a
 *                rejection); the steps between take that alpha with mu = 0 and need no
 *                curvature pass unless their statistics are due (the model's alpha for Delta
 *                alone is longer, and reused it overshot: mlp-mnist 215 against 65 steps)
 *     else:      alpha = learningRate, mu = momentum, and Delta scaled by
 *                min(1, sqrt(klClip / (alpha^2 |g.Delta|)))  when klClip > 0
 *     delta = alpha Delta + mu delta;  theta += delta
 *     every dampingInterval steps (adaptDamping): rho = (L(theta + delta) - L(theta)) / m0(delta),
 *       m0(delta) = g.delta + 1/2 delta^T (F + wd I) delta: the model WITHOUT lambda (Martens &
 *       Grosse 2015 sec. 6.5; kfac-jax), unlike the m(alpha, mu) above that chooses the step
 *       (closure re-evaluated on the same batch, its extra outputs disposed);
 *       rho > 3/4: lambda *= omega,  rho < 1/4: lambda /= omega,  omega = dampingDecay^interval
 *   factorRank r > 0 (randomized K-FAC; r = 64 by default without adaptive): a factor of size n > 2r is inverted as
 *     (M + d I)^-1 ~ t I + U diag(1/(s + d) - t) U^T, t = 1/(s_r + d), with its top-r eigenpairs
 *     (U, s) from a Nystrom sketch warm-started at the previous refresh's Ritz vectors
 *     (src/layers/lowrank.ts): exact on the top-r eigenspace, eigenvalues below s_r raised to
 *     s_r (never a longer step than the exact inverse), and the preconditioning costs 4 n r m
 *     instead of n^2 m + n m^2 multiply-adds.
 *   Layers without a block (neither Dense nor a channelsLast, 'same'/'valid', undilated Conv2D:
 *   depthwise, separable, transposed convolutions, ...) get a diagonal fallback
 *   -g / (n EMA(g^2) + lambda), with a one-time warning naming them. burnIn steps only accumulate statistics.
 *
 * Defaults (chosen by seconds to target, issue 16; docs/kfac.md, "Defaults chosen by time to
 * target", has the candidates measured): adaptive false with learningRate 0.2, momentum 0.9 and
 * klClip 1e-3 (kfac-pytorch's kl_clip), adaptDamping as adaptive (false), damping 1e-2, statsUpdatePeriod 5,
 * inverseUpdatePeriod 20, factorRank 64 (not given: 0 with adaptive or inverseStaleness > 0),
 * statsBatchSize 32 (the factor statistics from the batch's first 32 examples, as Martens 2010's
 * curvature mini-batch; kfac-jax: the whole batch), estimation 'fisher', lossKind 'auto',
 * statsDecay 0.95, weightDecay 0, burnIn 0, seed 0, inverseStaleness 0. Why: on mlp-mnist and
 * autoencoder-mnist (3 seeds, ratios to tuned Adam) the adaptive step (the previous defaults,
 * KFAC.STEP_EFFICIENT_SETTINGS) needs the fewest steps (0.33-0.36 / 0.29) but costs 8.2x / 6.0x an
 * Adam step (the quadratic model's 10 exact output columns or 2 samples, its projections, the
 * step check, statistics every step, exact inverses every 5), about 2.7x / 1.8x Adam's seconds;
 * these defaults take 0.48 / 0.60 of Adam's steps at 1.8x its step cost, about 0.9x / 1.1x its
 * seconds, the best of the candidates on both problems, and are safe on the quick suite and in
 * the small-batch model.fit cases (test/kfac-quadratic.test.ts). A non-finite step raises the
 * damping 10x (shortening the clipped step, sqrt(klClip / lambda) per step); without damping
 * adaptation it then decays back to `damping` by dampingDecay per applied step. With adaptive true (the
 * quadratic model's options): adaptivePeriod 1, quadraticModel 'exact' (outputs up to
 * exactQuadraticMaxOutputs 64; wider: 'sampled'), rejectSteps true (kfac-jax: false),
 * dampingInterval 5, dampingDecay 0.9 (kfac-jax), quadraticBatchSize 0 (all). What each part of
 * the adaptive step costs against its FLOP floor: docs/kfac.md, "Where a default step's time goes".
 *
 * References: Martens & Grosse (2015), "Optimizing Neural Networks with Kronecker-factored
 * Approximate Curvature"; Grosse & Martens (2016) (KFC, conv layers); Ba, Grosse & Martens (2017)
 * "Distributed second-order optimization using Kronecker-factored approximations" (KL clipping);
 * Puiu (2022) "Randomized K-FACs: speeding up K-FAC with randomized numerical linear algebra"
 * (low-rank factor inverses); Frangella, Tropp & Udell (2023) "Randomized Nystrom
 * preconditioning" (the s_r tail); Tropp et al. (2017) (stable Nystrom sketch);
 * kfac-jax (google-deepmind/kfac-jax, optimizer.py, curvature_blocks/); tensorflow/kfac
 * (kfac/python/keras/optimizers.py, ops/fisher_blocks.py).
 *
 * Differences from kfac-jax / tensorflow-kfac:
 * - Capture reads the tfjs gradient tape (src/layers/capture.ts) instead of tracing the graph
 *   (kfac-jax) or layer collections (tensorflow-kfac); the model is not modified.
 * - The quadratic model's exact curvature (kfac-jax's `_compute_exact_quad_model` with
 *   'ggn', tensorflow/kfac's `_compute_qmodel`) comes from d reverse passes from the logits (one
 *   per output unit, above the first layer only) instead of one forward-mode product per vector;
 *   cheap for few outputs, so above exactQuadraticMaxOutputs the model falls back to 'sampled':
 *   the sampled Fisher of the batch, exact in its quadratic forms, averaged over two target
 *   samples (the statistics' one and a fresh one, freshQuadraticSample). On small batches the
 *   sampled model underestimates u^T F u along the step and alpha overshoots: a 4-8-3 softmax
 *   MLP in model.fit (batch 16) reached 5-10x its first epoch loss with it, and never exceeds
 *   its first epoch loss with the exact one (test/kfac-quadratic.test.ts). Momentum is clipped to
 *   [0, 0.99] (kfac-jax leaves it free).
 * - Step rejection is on by default (kfac-jax's use_step_rejection, off there) and multiplies the
 *   damping by 10 (kfac-jax: reject_damping_increase_factor, default 1). The exact model is
 *   exact at theta only and can be far off along a long step: at batch 8 the same MLP had one
 *   step (alpha 1.1, ten times the usual) raise its own batch's loss from 0.58 to 3.1 and ended
 *   at 9.7x its first epoch loss; with rejection (x10) it trains (a x1.69 increase was not
 *   enough: 1.8x). Batches much smaller than the parameter count (4 of 48 examples there) can
 *   still fit each batch and overshoot on the others (3 of 9 seeds end above their first epoch
 *   loss); raise the damping (1 trains all nine) or the batch size then.
 * - Inverses come from a block Schur-complement inverse on tfjs matMuls (float32) with float64
 *   leaves, recomputed every inverseUpdatePeriod steps; damping changes take effect at the next
 *   refresh (kfac-jax can re-damp eigendecompositions without refactorising).
 * - inverseStaleness k > 0 (off by default): the refresh of step s submits a float64 snapshot of
 *   the damped factors A + pi sqrt(lambda) I, G + sqrt(lambda)/pi I (lambda of step s) to a
 *   src/async worker, which inverts them by Cholesky; the result replaces Ainv/Ginv at step s + k
 *   at the latest (src/kfac/async-inverses.ts; a block's first inverses are computed inline).
 *   Cholesky, not eigh: the blocks need no eigenbasis since damping changes wait for the next
 *   refresh anyway, and it is ~9x fewer flops. Not with factorRank > 0 (refused).
 * - Loss scaling follows tfjs (mean over the batch and over outputs for MSE / sigmoid
 *   cross-entropy): the sampled cotangents are scaled so that E[g g^T] equals the loss's
 *   Gauss-Newton matrix.
 * - Burn-in happens inside training (the first burnIn steps update statistics only) instead
 *   of a separate pass over data.
 *
 * State: per block '@kfac/<layer>' slots A, G, Ainv, Ginv, or with factorRank for a large
 * factor X: XU, XUt, Xcoef, Xtail, Xbasis (step = statistics updates); per variable the momentum
 * buffer 'velocity'. Checkpoints (getWeights/setWeights) capture these slots: with
 * inverseStaleness the inverses in use, not the worker's job in flight, which setWeights drops
 * (the restored run keeps the saved inverses until its next scheduled refresh arrives).
 *
 * Structure (kfac-jax's): curvature blocks own their factors and inverse cache
 * (src/kfac/blocks.ts: updateCurvatureEstimate, updateCache, multiplyMatpower), the estimator
 * owns the blocks and the target sampling (src/kfac/estimator.ts), loss objects sample targets
 * and give their Fisher roots (src/kfac/losses.ts), the quadratic model picks the step sizes
 * (src/kfac/quadratic-model.ts), the damping follows the shared Levenberg-Marquardt rule
 * (src/curvature/damping.ts) and L2 decay and momentum the shared transforms (src/optim);
 * layer registration, the output distribution and state checks are src/kfac/base.ts. This
 * file is the algorithm: minimize (capture) and step (its named stages).
 */
import * as tf from '@tensorflow/tfjs';
import { adaptDamping } from '../src/curvature/damping.js';
import type { EvaluationCounters } from '../src/optim/base.js';
import { optionDocs } from '../src/optim/options.js';
import { addL2WeightDecay, momentumDirection } from '../src/optim/transforms.js';
import { captureGradients, type CaptureResult } from '../src/layers/capture.js';
import { installCompileHook } from '../src/layers/registration.js';
import { registeredVariable, releaseKept } from '../src/tfjs-internals/engine.js';
import { KFACBase } from '../src/kfac/base.js';
import { cotangentSampler, diagonalFallback, type CotangentPlan, type StepEntry } from '../src/kfac/estimator.js';
import { KFAC_OPTIONS, type KFACEstimation, type KFACLossKind, type KFACOptions } from '../src/kfac/options.js';
import { dot, QuadraticModel, solveQuadraticModel, type VectorMap } from '../src/kfac/quadratic-model.js';
import { orphanedStateError } from '../src/kfac/registry.js';
import { AsyncInverses } from '../src/kfac/async-inverses.js';
import { blockStateKey } from '../src/kfac/blocks.js';
import type { MatrixService } from '../src/async/index.js';
import type { NamedTensorLike } from '../src/optim/base.js';
import { invalidOption } from '../src/optim/options.js';

export { KFAC_OPTIONS } from '../src/kfac/options.js';
export type {
  Conv2dRegistration,
  DenseRegistration,
  KFACEstimation,
  KFACLossKind,
  KFACOptions,
  KFACQuadraticModel,
  KroneckerBlock,
} from '../src/kfac/options.js';

/** Internal and test hooks (not part of the saved config). */
export interface KFACInternals {
  /** inverseStaleness > 0: the service computing the inverses (default: one shared worker). */
  matrixService?: MatrixService;
  /** inverseStaleness > 0: swap each result in exactly inverseStaleness steps after its snapshot (reproducible). */
  deterministicInverses?: boolean;
}

/** Damping factor after a rejected step (rejectSteps). */
const REJECT_DAMPING_INCREASE = 10;

/** What the step stages share. */
interface StepContext {
  k: number;
  burnIn: boolean;
  statsStep: boolean;
  dampingStep: boolean;
  /** adaptive: the quadratic model chooses (alpha, mu) this step (else the last ones are reused). */
  modelStep: boolean;
  f: () => tf.Scalar;
  est: KFACEstimation;
  plan: CotangentPlan;
  cap: CaptureResult;
  entries: StepEntry[];
}

/** The chosen step: u = alpha Delta + mu delta, and m0(u) when the quadratic model chose it. */
interface ChosenStep {
  alpha: number;
  mu: number;
  update: VectorMap;
  modelChange: number | undefined;
  /** The alpha the steps to the next model step reuse (with mu = 0); none: they ask the model. */
  reuseAlpha?: number;
}

export class KFAC extends KFACBase {
  static get className(): string {
    return 'CurvatureKFAC';
  }

  /**
   * The defaults before issue 16's time-to-target choice (kfac-jax's adaptive step): (alpha, mu)
   * from the exact quadratic model and Levenberg-Marquardt damping every step, statistics every
   * step, exact inverses every 5, step rejection. Fewest steps (0.29-0.36x tuned Adam's on the
   * MNIST problems) but 6-8x an Adam step, so 1.6-2.7x its seconds to target (docs/kfac.md,
   * "Defaults chosen by time to target"): for when steps (data passes, gradient evaluations)
   * cost more than the optimizer's own work. `new KFAC({ model, ...KFAC.STEP_EFFICIENT_SETTINGS })`.
   */
  static readonly STEP_EFFICIENT_SETTINGS: Readonly<KFACOptions> = Object.freeze({
    adaptive: true,
    adaptDamping: true,
    learningRate: 1e-3,
    klClip: 0,
    statsUpdatePeriod: 1,
    inverseUpdatePeriod: 5,
    factorRank: 0,
  });

  /**
   * Settings that cost about 2 SGD steps per step on wide layers (docs/kfac.md, "Fast
   * settings"): tensorflow/kfac-style fixed learning rate and momentum with the KL clip,
   * statistics every 10 steps, inverses every 20, rank-64 factor inverses. Since issue 16 the
   * defaults are the same kind of step (learning rate 0.2, statistics every 5 steps). Spread them into the
   * options: `new KFAC({ model, ...KFAC.FAST_SETTINGS })`.
   */
  static readonly FAST_SETTINGS: Readonly<KFACOptions> = Object.freeze({
    adaptive: false,
    adaptDamping: false,
    learningRate: 0.1,
    momentum: 0.9,
    klClip: 1e-3,
    statsUpdatePeriod: 10,
    inverseUpdatePeriod: 20,
    factorRank: 64,
  });

  /**
   * Cumulative evaluation counts (the harness reads them): loss evaluations (one per step, one
   * more per damping check) and backward passes (the gradient plus one per sampled-target draw).
   */
  readonly counters: EvaluationCounters = { lossEvals: 0, gradEvals: 0, hvpEvals: 0 };

  /** Steps undone because they raised the batch loss (rejectSteps; not saved with the weights). */
  rejectedSteps = 0;
  /** Step sizes chosen at the last update (learning rate alpha, momentum mu). */
  lastStep: { alpha: number; mu: number } = { alpha: Number.NaN, mu: Number.NaN };
  /** Inverses refreshed in a worker (inverseStaleness > 0), else null (computed in the step). */
  readonly asyncInverses: AsyncInverses | null;
  /** Asynchronous inverse refreshes that failed or were non-finite (the previous inverses were kept). */
  failedInverses = 0;

  /** `internals`: internal and test hooks (KFACInternals), not part of the saved config. */
  constructor(options: KFACOptions = {}, internals: KFACInternals = {}) {
    super(options);
    const o = this.options;
    if (o.inverseStaleness > 0 && o.factorRank > 0) {
      throw invalidOption(
        'inverseStaleness',
        o.inverseStaleness,
        'asynchronous inverses need exact factor inverses (factorRank 0); low-rank inverses stay synchronous',
      );
    }
    if (o.adaptivePeriod > 1 && !o.adaptive) {
      throw invalidOption(
        'adaptivePeriod',
        o.adaptivePeriod,
        'spaces the quadratic model of the adaptive step; with adaptive false there is none (set adaptive: true or leave adaptivePeriod at 1)',
      );
    }
    // Saved from the start, so that restoring an early checkpoint into a used optimizer does not
    // keep a later step size (setWeights merges the saved numbers into the current ones).
    this.numericState.stepAlpha = Number.NaN;
    this.asyncInverses =
      o.inverseStaleness > 0
        ? new AsyncInverses(
            {
              maxStaleness: o.inverseStaleness,
              deterministic: internals.deterministicInverses ?? false,
              ...(internals.matrixService ? { service: internals.matrixService } : {}),
            },
            () => (this.failedInverses += 1),
          )
        : null;
  }

  override async setWeights(weights: NamedTensorLike[]): Promise<void> {
    await super.setWeights(weights);
    this.asyncInverses?.reset(); // work in flight belongs to the old state
  }

  override dispose(): void {
    this.asyncInverses?.reset();
    super.dispose();
  }

  // ------------------------------------------------------------------ the step

  override minimize(f: () => tf.Scalar, returnCost = false, varList?: tf.Variable[]): tf.Scalar | null {
    const o = this.options;
    const layers = this.blocks;
    const restoreError = orphanedStateError(this.stateKeys(), layers);
    if (restoreError) throw restoreError;
    const k = this.iterations;
    const burnIn = k < o.burnIn;
    const statsStep = burnIn || k % o.statsUpdatePeriod === 0;
    const dampingStep = o.adaptDamping && !burnIn && (k + 1) % o.dampingInterval === 0;
    // adaptivePeriod P > 1: the model chooses (alpha, mu) on steps k with (k + 1) % P = 0 (with
    // P = dampingInterval, the damping checks') and whenever no step sizes are at hand.
    const modelStep =
      o.adaptive &&
      !burnIn &&
      (o.adaptivePeriod === 1 ||
        (k + 1) % o.adaptivePeriod === 0 ||
        !Number.isFinite(this.numericState.stepAlpha ?? NaN));
    const wantQuad = modelStep || dampingStep;
    const needCurvature = statsStep || wantQuad;
    const est = layers.length > 0 ? this.estimation() : 'empirical';
    const kind = this.lossKind();
    const plan: CotangentPlan = { sets: 0, stats: 0, quadFrom: 0, quadExact: false };
    const useSampler =
      needCurvature && kind !== undefined && (est !== 'empirical' || (wantQuad && o.quadraticModel === 'exact'));
    const sampling = {
      estimation: est,
      // tfjs treats a seed of 0 as 'no seed' (Math.random): start at 1.
      seed: 1 + o.seed * 1_000_003 + k * 2,
      wantQuad,
      exactQuadraticMaxOutputs: o.quadraticModel === 'exact' ? o.exactQuadraticMaxOutputs : undefined,
      freshQuadraticSample: o.freshQuadraticSample,
      statsStep,
    };
    // One loss and gradient pass (a gradient includes its loss value: src/harness/cost.ts); each
    // back-propagated cotangent set (a target sample or a column of the output curvature's root)
    // adds one backward pass above the first layer.
    this.counters.gradEvals += 1;
    const cap = captureGradients(f, varList, [...layers], {
      recordTrueGradients: needCurvature && est === 'empirical',
      ...(useSampler ? { sampler: cotangentSampler({ ...sampling, kind }, plan) } : {}),
    });
    this.counters.gradEvals += plan.sets;
    try {
      const vars = varList ?? Object.keys(cap.grads).map((n) => registeredVariable(n)!);
      const entries = vars
        .filter((v) => cap.grads[v.name] != null)
        .map((v) => ({ name: v.name, variable: v, grad: cap.grads[v.name]! }));
      const names = entries.map((e) => e.name);
      if (o.skipNonFinite) {
        if (!this.allFinite([cap.value])) {
          this.recordSkip('loss', names);
          return this.finish(cap, returnCost);
        }
        // Activations feed the statistics and the quadratic model only: not checked otherwise
        // (the gradient already is).
        const curv = needCurvature
          ? cap.layers.flatMap((l) => (l ? [l.a, ...(l.dsTrue ? [l.dsTrue] : []), ...l.dsSampled] : []))
          : [];
        if (!this.allFinite([...entries.map((e) => e.grad), ...curv])) {
          this.recordSkip('gradient', names);
          return this.finish(cap, returnCost);
        }
      }
      this.claimByName(names);
      const applied = this.step({ k, burnIn, statsStep, dampingStep, modelStep, f, est, plan, cap, entries });
      if (applied) {
        this.incrementIterations();
        if (!o.adaptDamping) this.relaxDamping();
      }
      return this.finish(cap, returnCost);
    } catch (err) {
      this.disposeCapture(cap);
      cap.value.dispose();
      throw err;
    }
  }

  /** One K-FAC update from a captured gradient pass; false when it was skipped. */
  private step(s: StepContext): boolean {
    const o = this.options;
    const { active, fallback } = this.estimator.activeBlocks(s.cap, s.entries, this.unsupportedLayers);
    const batch = s.cap.layers.find((l) => l !== undefined)?.a.shape[0] ?? 1;
    const lambda = this.damping;
    const names = s.entries.map((e) => e.name);
    return tf.tidy(() => {
      const rows = (count: number) => (count === 0 ? batch : Math.min(count, batch));
      if (s.statsStep) {
        this.estimator.updateCurvatureEstimate(active, s.plan, o.statsDecay, s.est !== 'exact', rows(o.statsBatchSize));
      }
      if (s.burnIn) return true;
      let refresh = s.k % o.inverseUpdatePeriod === 0;
      if (this.asyncInverses !== null) {
        for (const { block } of active) {
          if (!block.hasEstimate) continue;
          this.asyncInverses.step(block.name, this.stateFor(blockStateKey(block.name)), s.k, refresh, lambda);
        }
        refresh = false; // the slots hold the inverses in use (computed inline when there were none)
      }
      const inverses = this.estimator.updateCache(active, lambda, refresh, o.factorRank, 1 + o.seed * 7919 + s.k);
      const grad = new Map(s.entries.map((e) => [e.name, addL2WeightDecay(e.grad, e.variable, o.weightDecay)]));
      const dir = this.estimator.multiplyMatpower(active, grad, inverses);
      const slots = (name: string) => this.variableState(name);
      const diagonal = diagonalFallback(fallback, grad, dir, {
        batch,
        lambda,
        decay: o.statsDecay,
        statsStep: s.statsStep,
        slots,
      });
      const model = new QuadraticModel(active, s.plan, batch, diagonal, rows(o.quadraticBatchSize));
      const chosen = this.chooseStep(s.modelStep, model, names, grad, dir, lambda);
      // A finite gradient can still give a non-finite step (an overflowing preconditioner or
      // step size): skip it rather than write it into the weights.
      if (o.skipNonFinite && !this.allFinite([...chosen.update.values()])) {
        this.recordSkip('update', names);
        return false;
      }
      this.lastStep = { alpha: chosen.alpha, mu: chosen.mu };
      const rejected = this.applyAndCheck(s, model, grad, chosen);
      if (!rejected) this.rememberUpdate(s.entries, chosen.update);
      if (o.adaptivePeriod > 1 && s.modelStep) {
        // Reused until the next model step; after a rejected step the next step asks the model again.
        const keep = !rejected && chosen.reuseAlpha !== undefined && chosen.reuseAlpha > 0;
        this.numericState.stepAlpha = keep ? chosen.reuseAlpha! : Number.NaN;
      }
      return true;
    });
  }

  /**
   * The step sizes: (alpha, mu) minimising the quadratic model (adaptive), or the learning rate
   * and momentum with Delta shrunk to the KL clip.
   */
  private chooseStep(
    modelStep: boolean,
    model: QuadraticModel,
    names: string[],
    g: VectorMap,
    dir: VectorMap,
    lambda: number,
  ): ChosenStep {
    const o = this.options;
    const prev: VectorMap = new Map();
    for (const n of names) {
      const p = this.variableState(n).get('velocity');
      if (p !== undefined) prev.set(n, p);
    }
    const combine = (alpha: number, mu: number): VectorMap =>
      new Map(
        names.map((n) => {
          const c = { momentum: mu, dampening: 0, nesterov: false };
          return [n, momentumDirection(mu !== 0 ? prev.get(n) : undefined, tf.mul(dir.get(n)!, alpha), c).buffer];
        }),
      );
    if (o.adaptive && !modelStep) {
      // adaptivePeriod > 1, between model steps: the last model step's momentum-free alpha.
      const alpha = this.numericState.stepAlpha!;
      return { alpha, mu: 0, update: combine(alpha, 0), modelChange: undefined };
    }
    if (o.adaptive && model.available) {
      const hasPrev = prev.size > 0;
      const Q = model.curvatureGram(hasPrev ? [dir, prev] : [dir]);
      const extras = [dot(names, g, dir), dot(names, dir, dir)];
      if (hasPrev) extras.push(dot(names, g, prev), dot(names, dir, prev), dot(names, prev, prev));
      const v = [...tf.concat([Q, tf.stack(extras)]).dataSync()];
      const products = hasPrev
        ? { F: v.slice(0, 4), gd: v[4]!, dd: v[5]!, gp: v[6]!, dp: v[7]!, pp: v[8]! }
        : { F: v.slice(0, 1), gd: v[1]!, dd: v[2]! };
      const { alpha, mu, modelChange } = solveQuadraticModel(products, lambda + o.weightDecay, o.weightDecay);
      // The steps until the next model step reuse this alpha without momentum; not the first
      // step's (no momentum yet: the model's alpha for Delta alone is several times longer).
      return { alpha, mu, update: combine(alpha, mu), modelChange, ...(hasPrev ? { reuseAlpha: alpha } : {}) };
    }
    const alpha = this.currentLearningRate();
    if (o.klClip > 0) {
      const sq = alpha * alpha * Math.abs(dot(names, g, dir).dataSync()[0]!);
      if (sq > o.klClip) for (const n of names) dir.set(n, tf.mul(dir.get(n)!, Math.sqrt(o.klClip / sq)));
    }
    return { alpha, mu: o.momentum, update: combine(alpha, o.momentum), modelChange: undefined };
  }

  /**
   * theta += u; then the loss after the step on the same batch: Levenberg-Marquardt damping
   * adaptation every dampingInterval steps, and (rejectSteps) undoing a step that raised it.
   * Returns whether the step was undone.
   */
  private applyAndCheck(s: StepContext, model: QuadraticModel, g: VectorMap, c: ChosenStep): boolean {
    const o = this.options;
    const { entries } = s;
    const names = entries.map((e) => e.name);
    const reject = o.rejectSteps && s.modelStep;
    const before = reject ? entries.map((e) => tf.clone(e.variable)) : [];
    for (const e of entries) e.variable.assign(tf.add(e.variable, c.update.get(e.name)!));
    const adapt = s.dampingStep && model.available;
    if (!adapt && !reject) return false;
    const wd = o.weightDecay;
    const u = c.update;
    // The predicted change m0(u), without lambda (the one the step sizes came from, if any).
    const predicted = !adapt
      ? tf.scalar(0)
      : c.modelChange !== undefined
        ? tf.scalar(c.modelChange)
        : tf.add(dot(names, g, u), tf.mul(tf.add(model.curvatureGram([u]), tf.mul(dot(names, u, u), wd)), 0.5));
    let wdChange: tf.Tensor = tf.scalar(0);
    if (wd > 0) {
      // theta was updated in place: wd/2 (|theta|^2 - |theta - u|^2) = wd (theta.u) - wd/2 |u|^2.
      const th = new Map(entries.map((e) => [e.name, e.variable as tf.Tensor]));
      wdChange = tf.sub(tf.mul(dot(names, th, u), wd), tf.mul(dot(names, u, u), wd / 2));
    }
    const newLoss = this.evaluateClosure(s.f);
    this.counters.lossEvals += 1;
    const vals = tf.stack([tf.reshape(predicted, []), tf.sub(tf.add(newLoss, wdChange), s.cap.value)]).dataSync();
    const actual = vals[1]!;
    let d = this.damping;
    if (adapt) {
      const rho = actual / vals[0]!;
      this.numericState.rho = rho;
      const omega = o.dampingDecay ** o.dampingInterval;
      d = adaptDamping(d, Number.isFinite(rho) ? rho : Number.NaN, { increase: 1 / omega, decrease: omega });
    }
    // kfac-jax's use_step_rejection: the model failed badly (the loss went up, or is not
    // finite): back to the old parameters and momentum, with 10x the damping (as after a
    // non-finite step; one Levenberg-Marquardt factor barely shortens the next step).
    const rejected = reject && !(actual <= 0);
    if (rejected) {
      entries.forEach((e, i) => e.variable.assign(before[i]!));
      d *= REJECT_DAMPING_INCREASE;
      this.rejectedSteps += 1;
    }
    this.numericState.damping = Math.fround(Math.min(Math.max(d, o.minDamping), o.maxDamping));
    return rejected;
  }

  /**
   * adaptDamping false: a damping raised by a non-finite or rejected step (x10) decays back to the
   * configured `damping` by `dampingDecay` per applied step (~66 steps from 1000x), instead of
   * staying raised for the rest of training with nothing to lower it.
   */
  private relaxDamping(): void {
    const target = Math.fround(this.options.damping);
    if (this.damping > target) {
      this.numericState.damping = Math.fround(Math.max(target, this.damping * this.options.dampingDecay));
    }
  }

  /** Remember the update for momentum. */
  private rememberUpdate(entries: StepEntry[], update: VectorMap): void {
    for (const e of entries) {
      const vs = this.variableState(e.name);
      vs.set('velocity', update.get(e.name)!);
      vs.step += 1;
    }
  }

  /**
   * The closure's loss at the current parameters, without leaking what the closure keeps
   * (tfjs-layers' totalLossFunction keeps its metric tensors; those of this extra call are
   * disposed, so fit reports the metrics of its own call).
   */
  private evaluateClosure(f: () => tf.Scalar): tf.Scalar {
    return releaseKept(() => tf.tidy(f));
  }
}

tf.serialization.registerClass(KFAC);
// A K-FAC rebuilt by tf.loadLayersModel learns its model when the reloaded model compiles it.
installCompileHook();

export const kfacEntry = {
  name: 'kfac',
  className: KFAC.className,
  description: 'K-FAC: Kronecker-factored natural gradient for Dense and Conv2D layers (tfjs-layers models)',
  options: optionDocs(KFAC_OPTIONS),
  create: (options: Record<string, unknown>, context?: { problem?: unknown }) => {
    const problem = context?.problem as { model?: tf.LayersModel; lossKind?: KFACLossKind } | undefined;
    const opts: KFACOptions = { ...(options as KFACOptions) };
    if (opts.model === undefined && problem?.model !== undefined) opts.model = problem.model;
    if (opts.lossKind === undefined && problem?.lossKind !== undefined) opts.lossKind = problem.lossKind;
    return new KFAC(opts);
  },
};
