/** `curvature spectrum`: Hessian (or Gauss-Newton) top eigenvalues, trace and spectral density of a problem. */
import { Option, type Command } from 'commander';
import { problems } from '../../experiments/index.js';
import { runSpectrumCommand } from '../report/spectrum.js';
import { fmt } from '../report/tables.js';
import { toUsage, UsageError, type CliIO } from './io.js';
import { problemOptionsFromText } from './options.js';
import { addCurvatureProblemOptions, parseNonNegativeInt, parsePositiveInt } from './parse.js';
import { checkProblemName, ensureWritableDir, useBackend, type GlobalOpts } from './validate.js';

export interface SpectrumOpts extends GlobalOpts {
  problem: string;
  problemOption?: string[];
  at: 'init' | 'trained';
  curvature: 'hessian' | 'ggn';
  k: number;
  runs: number;
  lanczosSteps: number;
  maxBatches?: number;
  trainSteps: number;
  seed: number;
  out?: string;
  json?: boolean;
  progress: boolean;
}

export async function spectrumCommand(io: CliIO, opts: SpectrumOpts): Promise<number> {
  checkProblemName(opts.problem);
  const outDir = opts.out !== undefined ? ensureWritableDir(opts.out) : undefined;
  await useBackend(opts);
  const problem = toUsage(() =>
    problems.get(opts.problem, { ...problemOptionsFromText(opts.problem, opts.problemOption), seed: opts.seed }),
  );
  const started = Date.now();
  const showPhases = opts.progress && !opts.json;
  try {
    const r = await runSpectrumCommand({
      problem,
      at: opts.at,
      curvature: opts.curvature,
      k: opts.k,
      runs: opts.runs,
      steps: opts.lanczosSteps,
      maxBatches: opts.maxBatches,
      trainSteps: opts.trainSteps,
      seed: opts.seed,
      outDir,
      // Each phase is one synchronous computation: a line as it starts is the progress there is.
      onPhase: showPhases
        ? (phase) => io.err(`spectrum: ${phase} (${((Date.now() - started) / 1000).toFixed(0)} s)\n`)
        : undefined,
    }).catch((e: Error) => {
      // Input the diagnostics reject (e.g. --curvature ggn on a problem without outputs).
      if (/^spectrum:/.test(e.message)) throw new UsageError(e.message);
      throw e;
    });
    if (opts.json) io.out(`${JSON.stringify(r)}\n`);
    else {
      io.out(
        `${r.problem} at ${r.at} (${r.numParams} params, ${r.curvature}, loss ${fmt(r.loss, 4)}, ${r.batches || 1} batch(es))\n` +
          `  top eigenvalues: ${r.topEigenvalues.map((v) => fmt(v, 4)).join(', ')}${r.eigenvaluesConverged ? '' : ' (not all converged)'}\n` +
          `  trace: ${fmt(r.trace.estimate, 4)} +/- ${fmt(r.trace.standardError, 2)} (standard error)\n` +
          `  density support: [${fmt(r.density.lambdaMin, 3)}, ${fmt(r.density.lambdaMax, 3)}], ${r.matvecs} products, ${r.seconds.toFixed(1)} s\n` +
          (r.files.markdown
            ? `  wrote ${[r.files.json, r.files.svg, r.files.markdown].filter(Boolean).join(', ')}\n`
            : ''),
      );
    }
    return 0;
  } finally {
    problem.dispose();
  }
}

export function registerSpectrum(
  program: Command,
  io: CliIO,
  action: (f: () => Promise<number>) => Promise<void>,
): void {
  addCurvatureProblemOptions(
    program
      .command('spectrum')
      .description('Hessian (or Gauss-Newton) spectrum of a problem: top eigenvalues, trace, density plot'),
  )
    .addOption(new Option('--k <n>', 'number of top eigenvalues').argParser(parsePositiveInt).default(10))
    .addOption(new Option('--runs <n>', 'stochastic Lanczos quadrature runs').argParser(parsePositiveInt).default(3))
    .addOption(new Option('--lanczos-steps <n>', 'Lanczos steps per run').argParser(parsePositiveInt).default(80))
    .addOption(
      new Option('--seed <n>', 'seed of parameters, probes and batches').argParser(parseNonNegativeInt).default(0),
    )
    .option('--out <dir>', 'write spectrum.json, spectrum.svg and spectrum.md here')
    .option('--json', 'print JSON')
    .option('--no-progress', 'no progress lines')
    .action((opts: SpectrumOpts, cmd: Command) =>
      action(() => spectrumCommand(io, { ...cmd.optsWithGlobals<GlobalOpts>(), ...opts })),
    );
}
