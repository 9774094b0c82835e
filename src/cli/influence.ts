/** `curvature influence`: influence of training examples on one example's loss (Koh & Liang), with the solve status. */
import { Option, type Command } from 'commander';
import { problems } from '../../experiments/index.js';
import { runInfluenceCommand, solveLine } from '../report/influence.js';
import { fmt } from '../report/tables.js';
import { toUsage, UsageError, type CliIO } from './io.js';
import { problemOptionsFromText } from './options.js';
import {
  addCurvatureProblemOptions,
  parseNonNegativeInt,
  parseNonNegativeNumber,
  parsePositiveInt,
  parsePositiveNumber,
} from './parse.js';
import { checkProblemName, ensureWritableDir, useBackend, type GlobalOpts } from './validate.js';

export interface InfluenceOpts extends GlobalOpts {
  problem: string;
  problemOption?: string[];
  at: 'init' | 'trained';
  curvature: 'hessian' | 'ggn';
  damping: number;
  solver: 'cg' | 'lissa';
  maxIter?: number;
  tol?: number;
  points: number;
  testIndex: number;
  maxBatches?: number;
  trainSteps: number;
  seed: number;
  out?: string;
  json?: boolean;
}

export async function influenceCommand(io: CliIO, opts: InfluenceOpts): Promise<number> {
  checkProblemName(opts.problem);
  const outDir = opts.out !== undefined ? ensureWritableDir(opts.out) : undefined;
  await useBackend(opts);
  const problem = toUsage(() =>
    problems.get(opts.problem, { ...problemOptionsFromText(opts.problem, opts.problemOption), seed: opts.seed }),
  );
  try {
    const r = await runInfluenceCommand({
      problem,
      at: opts.at,
      curvature: opts.curvature,
      damping: opts.damping,
      solver: opts.solver,
      maxIter: opts.maxIter,
      tol: opts.tol,
      points: opts.points,
      testIndex: opts.testIndex,
      maxBatches: opts.maxBatches,
      trainSteps: opts.trainSteps,
      seed: opts.seed,
      outDir,
    }).catch((e: Error) => {
      if (/^influence:/.test(e.message)) throw new UsageError(e.message);
      throw e;
    });
    // The warning goes to stderr too, so that it is seen even when stdout is parsed (--json).
    if (r.solve.warning !== undefined) io.err(`curvature: warning: ${r.solve.warning}\n`);
    if (opts.json) io.out(`${JSON.stringify(r)}\n`);
    else {
      const top = r.points.slice(0, 10);
      io.out(
        `${r.problem} at ${r.at} (${r.numParams} params, ${r.curvature}, damping ${r.damping}): influence on the loss of training example ${r.testIndex}\n` +
          `  solve: ${solveLine(r.solve)}${r.solve.warning !== undefined ? ' -- UNRELIABLE, see the warning' : ''}\n` +
          `  most influential: ${top.map((p) => `#${p.index} ${fmt(p.influence, 3)}`).join(', ')}\n` +
          `  ${r.matvecs} curvature products, ${r.seconds.toFixed(1)} s\n` +
          (r.files.markdown ? `  wrote ${r.files.json}, ${r.files.markdown}\n` : ''),
      );
    }
    return 0;
  } finally {
    problem.dispose();
  }
}

export function registerInfluence(
  program: Command,
  io: CliIO,
  action: (f: () => Promise<number>) => Promise<void>,
): void {
  addCurvatureProblemOptions(
    program
      .command('influence')
      .description('influence of training examples on the loss of one example (Koh & Liang), with the solve status'),
  )
    .addOption(
      new Option('--damping <x>', 'damping added to the curvature').argParser(parseNonNegativeNumber).default(0.01),
    )
    .addOption(new Option('--solver <name>', 'linear solver').choices(['cg', 'lissa']).default('cg'))
    .addOption(
      new Option('--max-iter <n>', 'CG iterations (default 2 x params, at most 500)').argParser(parsePositiveInt),
    )
    .addOption(
      new Option('--tol <x>', 'relative residual tolerance (CG 1e-6, LiSSA 1e-2)').argParser(parsePositiveNumber),
    )
    .addOption(new Option('--points <n>', 'score training examples 0 .. n-1').argParser(parsePositiveInt).default(20))
    .addOption(
      new Option('--test-index <i>', 'the training example whose loss is attributed')
        .argParser(parseNonNegativeInt)
        .default(0),
    )
    .addOption(
      new Option('--seed <n>', 'seed of parameters and training batches').argParser(parseNonNegativeInt).default(0),
    )
    .option('--out <dir>', 'write influence.json and influence.md here')
    .option('--json', 'print JSON')
    .action((opts: InfluenceOpts, cmd: Command) =>
      action(() => influenceCommand(io, { ...cmd.optsWithGlobals<GlobalOpts>(), ...opts })),
    );
}
