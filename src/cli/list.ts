/** `curvature list`: optimizers with every option, its type and default, problems, suites. */
import type { Command } from 'commander';
import { optimizerRegistry } from '../../optimizers/index.js';
import { problems, suites } from '../../experiments/index.js';
import type { CliIO } from './io.js';

export function listCommand(io: CliIO, opts: { json?: boolean }): void {
  const optimizers = [...optimizerRegistry.values()].map((e) => ({
    name: e.name,
    description: e.description,
    options: e.options.map((o) => ({ name: o.name, default: o.default, type: o.type, description: o.description })),
  }));
  const probs = problems.list().map((p) => ({
    name: p.name,
    description: p.description,
    options: p.options.map((o) => ({ name: o.name, default: o.default, type: o.type, description: o.description })),
  }));
  const suiteList = Object.values(suites).map((s) => ({
    name: s.name,
    description: s.description,
    seeds: s.seeds,
    problems: s.problems.map((p) => p.id ?? p.problem),
  }));
  if (opts.json) {
    io.out(`${JSON.stringify({ optimizers, problems: probs, suites: suiteList }, null, 2)}\n`);
    return;
  }
  const show = (v: unknown) => (typeof v === 'function' ? '(function)' : (JSON.stringify(v) ?? 'undefined'));
  const lines: string[] = ['Optimizers:'];
  for (const o of optimizers) {
    lines.push(`  ${o.name}  ${o.description}`);
    for (const x of o.options) {
      // Function-valued options (callbacks, probe generators) have no text form: set them in code.
      if (x.type === 'function') lines.push(`      (in code only) ${x.name}  (function) ${x.description}`);
      else lines.push(`      --set ${x.name}=${show(x.default)}  (${x.type}) ${x.description}`);
    }
  }
  lines.push('', 'Problems:');
  for (const p of probs) {
    lines.push(`  ${p.name}  ${p.description}`);
    for (const x of p.options) {
      lines.push(`      --problem-option ${x.name}=${show(x.default)}  (${x.type ?? 'JSON'}) ${x.description}`);
    }
  }
  lines.push('', 'Suites:');
  for (const s of suiteList) lines.push(`  ${s.name}  ${s.description} (${s.seeds} seeds: ${s.problems.join(', ')})`);
  io.out(`${lines.join('\n')}\n`);
}

export function registerList(program: Command, io: CliIO): void {
  program
    .command('list')
    .description('list optimizers (with their options and defaults), problems and suites')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => listCommand(io, opts));
}
