/**
 * `npm run bench`: runs every section in scripts/bench/*.ts (each exports
 * `run(): Promise<string>` returning a Markdown section) in one process, so that every ratio in a
 * section is measured in the same run, and writes BENCHMARKS.md with the machine and backend.
 *
 *   npm run bench                 all sections
 *   npm run bench -- linalg adam  only sections whose file name contains one of the words
 *                                 (printed only; BENCHMARKS.md is written by full runs)
 */
import { readdirSync, writeFileSync, renameSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { initBackend } from '../src/backend.js';

const here = dirname(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2);
const files = readdirSync(join(here, 'bench'))
  .filter((f) => f.endsWith('.ts'))
  .filter((f) => filters.length === 0 || filters.some((w) => f.includes(w)))
  .sort();

const backend = await initBackend(process.env.CURVATURE_BACKEND ?? 'wasm');
const cpu = cpus()[0]?.model ?? 'unknown CPU';
const header = [
  '# Benchmarks',
  '',
  `Measured ${new Date().toISOString().slice(0, 10)} by \`npm run bench\` on ${cpus().length} x ${cpu}, ` +
    `${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, tfjs backend **${backend}**. ` +
    'Ratios within a section are measured in the same run; absolute times vary on shared machines.',
  '',
];
const sections: string[] = [];
for (const f of files) {
  const mod = (await import(pathToFileURL(join(here, 'bench', f)).href)) as {
    run: () => Promise<string>;
  };
  process.stderr.write(`bench: ${f} ...\n`);
  const t0 = performance.now();
  sections.push(await mod.run());
  process.stderr.write(`bench: ${f} done in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}
// A filtered run prints its sections only: BENCHMARKS.md always holds a full run.
if (filters.length === 0) {
  const out = join(here, '..', 'BENCHMARKS.md');
  writeFileSync(out + '.tmp', header.concat(sections).join('\n') + '\n');
  renameSync(out + '.tmp', out);
}
process.stdout.write(header.concat(sections).join('\n') + '\n');
