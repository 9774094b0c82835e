/** `curvature check`: a problem's gradient and Hessian-vector products against central differences. */
import { Option, type Command } from 'commander';
import { problems } from '../../experiments/index.js';
import { checkProblem } from '../harness/check.js';
import { fmt } from '../report/tables.js';
import { toUsage, type CliIO } from './io.js';
import { problemOptionsFromText } from './options.js';
import { collect, parseNonNegativeInt } from './parse.js';
import { checkProblemName, useBackend, type GlobalOpts } from './validate.js';

export interface CheckOpts extends GlobalOpts {
  problem: string;
  problemOption?: string[];
  seed: number;
  json?: boolean;
}

export async function checkCommand(io: CliIO, opts: CheckOpts): Promise<number> {
  checkProblemName(opts.problem);
  await useBackend(opts);
  const problem = toUsage(() =>
    problems.get(opts.problem, { ...problemOptionsFromText(opts.problem, opts.problemOption), seed: opts.seed }),
  );
  try {
    const r = checkProblem(problem, { seed: opts.seed });
    if (opts.json) io.out(`${JSON.stringify(r)}\n`);
    else {
      io.out(
        `${r.problem} (${r.numParams} params)\n` +
          `  gradient: directional derivative ${fmt(r.gradient.analytic, 6)} vs central difference ${fmt(r.gradient.numeric, 6)}, ` +
          `relative error ${fmt(r.gradient.relError, 2)} ${r.gradient.ok ? 'ok' : 'FAILED'}\n` +
          `  HVP: |Hv| = ${fmt(r.hvp.norm, 4)}, relative error vs gradient differences ${fmt(r.hvp.relError, 2)} ${r.hvp.ok ? 'ok' : 'FAILED'}\n` +
          (!r.hvp.ok && problem.options.activation === 'relu'
            ? '  note: relu networks have kinks that finite differences of gradients cross; check the same architecture with --problem-option activation=tanh\n'
            : ''),
      );
    }
    return r.ok ? 0 : 1;
  } finally {
    problem.dispose();
  }
}

export function registerCheck(program: Command, io: CliIO, action: (f: () => Promise<number>) => Promise<void>): void {
  program
    .command('check')
    .description("check a problem's gradient and Hessian-vector products against central differences")
    .requiredOption('--problem <name>', 'problem')
    .option('--problem-option <key=value>', 'problem option (repeatable)', collect)
    .addOption(
      new Option('--seed <n>', 'seed of the parameters and the direction').argParser(parseNonNegativeInt).default(0),
    )
    .option('--json', 'print JSON')
    .action((opts: CheckOpts, cmd: Command) =>
      action(() => checkCommand(io, { ...cmd.optsWithGlobals<GlobalOpts>(), ...opts })),
    );
}
