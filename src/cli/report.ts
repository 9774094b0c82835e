/** `curvature report`: merge results (e.g. shards) and (re)write results.json, report.md, report.html. */
import type { Command } from 'commander';
import { join } from 'node:path';
import { mergeResults } from '../harness/compare.js';
import { readResults } from '../report/results.js';
import { summaryText } from '../report/tables.js';
import { writeReport } from '../report/index.js';
import { toUsage, type CliIO } from './io.js';
import { ensureWritableDir } from './validate.js';

export async function reportCommand(io: CliIO, dirs: string[], opts: { out: string; title?: string }): Promise<number> {
  const out = ensureWritableDir(opts.out);
  const parts = dirs.map((d) => toUsage(() => readResults(d.endsWith('.json') ? d : join(d, 'results.json'))));
  const merged = toUsage(() => mergeResults(parts));
  await writeReport(merged, out, opts.title ?? 'curvature comparison');
  io.out(
    `${summaryText(merged)}\n\nmerged ${parts.length} result file(s), ${merged.runs.length} runs` +
      (merged.pending > 0 ? `, ${merged.pending} planned run(s) missing` : '') +
      `; wrote ${join(out, 'report.html')}\n`,
  );
  return 0;
}

export function registerReport(program: Command, io: CliIO, action: (f: () => Promise<number>) => Promise<void>): void {
  program
    .command('report')
    .description('merge results (shards) from one or more directories and write the report')
    .argument('<dirs...>', 'directories containing results.json (or results.json paths)')
    .requiredOption('--out <dir>', 'output directory')
    .option('--title <text>', 'report title')
    .action((dirs: string[], opts: { out: string; title?: string }) => action(() => reportCommand(io, dirs, opts)));
}
