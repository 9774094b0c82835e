// Public surface of src/report; re-exported by src/index.ts.
import { join } from 'node:path';
import type { ComparisonResults } from '../harness/compare.js';
import { htmlReport } from './html.js';
import { writeFileAtomic, writeResults } from './results.js';
import { markdownReport } from './tables.js';

export { htmlReport, renderSvg, lossPoints, optimizerColors } from './html.js';
export { markdownReport, summaryText, markdownTable, textTable, fmt } from './tables.js';
export { writeFileAtomic, readResults, parseResults, writeResults, withoutTiming, canonicalRuns } from './results.js';

/** Write results.json, report.md and report.html into `dir` (each atomically). */
export async function writeReport(results: ComparisonResults, dir: string, title?: string): Promise<void> {
  writeResults(join(dir, 'results.json'), results);
  writeFileAtomic(join(dir, 'report.md'), markdownReport(results, title));
  writeFileAtomic(join(dir, 'report.html'), await htmlReport(results, title));
}
