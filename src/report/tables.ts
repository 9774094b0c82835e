/**
 * Tables of a comparison: the summary (final loss mean +/- std over seeds, steps, seconds and
 * gradient evaluations to target, per-step cost) as rows of strings, rendered as Markdown,
 * plain text (CLI) or HTML.
 */
import type { ComparisonResults } from '../harness/compare.js';
import type { PerformanceProfile, SummaryRow } from '../harness/stats.js';
import { EVALUATION_COSTS, formatCounts } from '../harness/cost.js';

export function fmt(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '-';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(digits - 1);
  return Number(v.toPrecision(digits)).toString();
}

export function fmtInt(v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '-' : String(Math.round(v));
}

export const SUMMARY_HEADER = [
  'problem',
  'optimizer',
  'final train loss',
  'test acc',
  'reached',
  'steps to target',
  'seconds to target',
  'grad-equiv to target',
  'f/g/Hv to target',
  'grad-equiv / step',
  'f/g/Hv / step',
  'ms / step',
  'diverged',
];

export function summaryCells(r: SummaryRow): string[] {
  return [
    r.problemId,
    r.optimizer,
    r.finalLossMean === null ? '-' : `${fmt(r.finalLossMean, 4)} ± ${fmt(r.finalLossStd ?? 0, 2)}`,
    r.testAccuracyMean === null ? '-' : `${(100 * r.testAccuracyMean).toFixed(1)}%`,
    `${r.reached}/${r.seeds}`,
    fmtInt(r.stepsToTarget),
    fmt(r.secondsToTarget),
    fmt(r.gradEquivalentsToTarget, 4),
    formatCounts(r.evalsToTarget),
    fmt(r.gradEquivalentsPerStep, 3),
    formatCounts(r.evalsPerStep),
    fmt(1000 * r.secondsPerStep, 3),
    `${r.diverged}/${r.seeds}${r.failed > 0 ? ` (${r.failed} failed)` : ''}`,
  ];
}

/** What the cost columns mean and that runs stop at the target (report.md, report.html). */
export const COST_NOTE =
  `Gradient-equivalents (grad-equiv) = gradients + ${EVALUATION_COSTS.curvatureProduct} x curvature-vector products ` +
  `(Hessian- or Gauss-Newton-vector) + ${EVALUATION_COSTS.loss} x loss values computed without a gradient ` +
  '(measured ratios: docs/harness.md); "f/g/Hv" are the raw counts of loss values alone, gradients and ' +
  'curvature-vector products.';

export const TARGET_NOTE =
  'Runs stop when they reach the target (unless configured not to), so an optimizer that reaches it early ' +
  'stops with a loss near the target while a slower one keeps training: final losses are NOT comparable ' +
  'across optimizers that reached the target; compare the "to target" columns instead.';

/** Readable names of the profile measures (headings, chart titles). */
export const MEASURE_TITLE: Record<PerformanceProfile['measure'], string> = {
  steps: 'steps',
  seconds: 'seconds',
  gradEquivalents: 'gradient-equivalents',
};

export function markdownTable(header: string[], rows: string[][]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  return [
    `| ${header.map(esc).join(' | ')} |`,
    `| ${header.map((_, i) => (i < 2 ? '---' : '---:')).join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

/** Fixed-width text table for terminals. */
export function textTable(header: string[], rows: string[][]): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i < 2 ? c.padEnd(w[i]) : c.padStart(w[i])))
      .join('  ')
      .trimEnd();
  return [line(header), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}

/**
 * The terminal's summary: the columns of SUMMARY_HEADER a reader compares first, under short
 * headings, so that it fits about 120 columns; report.md and report.html have all of them.
 */
const TERMINAL_COLUMNS: [number, string][] = [
  [0, 'problem'],
  [1, 'optimizer'],
  [2, 'final loss'],
  [3, 'test acc'],
  [4, 'at target'],
  [5, 'steps'],
  [6, 'seconds'],
  [7, 'grad-equiv'],
  [11, 'ms/step'],
  [12, 'diverged'],
];

export function summaryText(results: ComparisonResults): string {
  const excluded = exclusionLines(results);
  const rows = results.summary.map(summaryCells).map((cells) => TERMINAL_COLUMNS.map(([i]) => cells[i]!));
  return (
    textTable(
      TERMINAL_COLUMNS.map(([, h]) => h),
      rows,
    ) +
    '\nsteps, seconds, grad-equiv: to the target (median over seeds, when every seed reached it). Runs stop at the' +
    '\ntarget, so the final losses of optimizers that reached it are not comparable. All columns: report.md.' +
    (excluded.length === 0
      ? ''
      : excluded.length <= 5
        ? `\n\nNot run (not applicable): ${excluded.join('; ')}`
        : `\n\nNot run (not applicable): optimizers excluded on ${new Set(excluded.map((l) => l.split(':')[0])).size} problem entries, listed in report.md.`)
  );
}

/**
 * Ratio table of a performance profile (cost / best cost per problem). Optimizers a problem
 * excludes show 'n/a'; the profile curve counts them as unsolved, as Dolan-More profiles do.
 */
export function profileCells(
  p: PerformanceProfile,
  results?: ComparisonResults,
): { header: string[]; rows: string[][] } {
  const excluded = new Set<string>();
  for (const c of results?.spec.problems ?? [])
    for (const o of Object.keys(c.exclude ?? {})) excluded.add(`${o}\u0000${c.id ?? c.problem}`);
  const cell = (o: string, q: string): string => {
    if (excluded.has(`${o}\u0000${q}`)) return 'n/a';
    return p.ratios[o][q] === null ? 'unsolved' : fmt(p.ratios[o][q], 3);
  };
  return {
    header: ['optimizer', ...p.problems],
    rows: p.optimizers.map((o) => [o, ...p.problems.map((q) => cell(o, q))]),
  };
}

/** Optimizers a problem excludes, with the reason: "problem: optimizer (reason)". */
export function exclusionLines(results: ComparisonResults): string[] {
  const lines: string[] = [];
  for (const p of results.spec.problems) {
    // One line per problem and reason: "q: sgd, adam (reason)".
    const byReason = new Map<string, string[]>();
    for (const [o, why] of Object.entries(p.exclude ?? {})) {
      if (results.spec.optimizers.includes(o)) byReason.set(why, [...(byReason.get(why) ?? []), o]);
    }
    for (const [why, os] of byReason) lines.push(`${p.id ?? p.problem}: ${os.join(', ')} (${why})`);
  }
  return lines;
}

function targetsLine(results: ComparisonResults): string[] {
  const seen = new Map<string, number | null>();
  for (const r of results.summary) if (!seen.has(r.problemId)) seen.set(r.problemId, r.target);
  return [...seen].map(([p, t]) => `- **${p}**: target training loss ${t === null ? 'none' : fmt(t, 4)}`);
}

/** report.md: the summary, targets, and the performance-profile ratio tables. */
export function markdownReport(results: ComparisonResults, title = 'curvature comparison'): string {
  const lines: string[] = [];
  const seeds = results.spec.seeds.length;
  lines.push(`# ${title}`, '');
  lines.push(
    `${results.runs.length} runs: ${results.spec.optimizers.join(', ')} on ${results.spec.problems.length} problem(s), ` +
      `${seeds} seed(s) each. Backend: ${results.runs[0]?.backend ?? '-'}.` +
      (results.pending > 0 ? ` **${results.pending} planned run(s) missing** (incomplete or sharded).` : ''),
    '',
  );
  lines.push('## Summary', '');
  lines.push(
    'Final training loss: mean ± sample std over seeds (diverged runs excluded). "to target": median over ' +
      'seeds, shown only when every seed reached the target. Seconds are optimizer time (evaluations excluded). ' +
      COST_NOTE,
    '',
    TARGET_NOTE,
    '',
  );
  lines.push(markdownTable(SUMMARY_HEADER, results.summary.map(summaryCells)), '');
  const excluded = exclusionLines(results);
  if (excluded.length > 0) lines.push('Not run (not applicable):', '', ...excluded.map((l) => `- ${l}`), '');
  lines.push('## Targets', '', ...targetsLine(results), '');
  const failed = results.runs.filter((r) => r.final.error !== undefined);
  if (failed.length > 0) {
    lines.push('## Failed runs', '');
    for (const r of failed) lines.push(`- ${r.problemId} / ${r.optimizer} / seed ${r.seed}: ${r.final.error}`);
    lines.push('');
  }
  lines.push('## Performance profiles (Dolan-More)', '');
  lines.push(
    'Cost ratio to the best optimizer on each problem (1 = best); rho(tau) is the fraction of problems ' +
      'an optimizer solves within a factor tau of the best. Problems no optimizer solved are left out.',
    '',
  );
  for (const p of results.profiles) {
    if (p.problems.length === 0) {
      lines.push(
        `- **${MEASURE_TITLE[p.measure] ?? p.measure}**: no problem was solved by every seed of any optimizer.`,
      );
      continue;
    }
    const t = profileCells(p, results);
    lines.push(`### ${MEASURE_TITLE[p.measure] ?? p.measure} to target`, '', markdownTable(t.header, t.rows), '');
  }
  return `${lines.join('\n')}\n`;
}
