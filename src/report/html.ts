/**
 * report.html: one self-contained page (inline SVG, inline CSS, no scripts) with, per problem,
 * training loss vs step and vs optimizer seconds, the performance profiles, and the tables.
 * Plots are vega-lite specs compiled to vega and rendered to SVG in Node (renderer 'none').
 */
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { ComparisonResults } from '../harness/compare.js';
import type { PerformanceProfile } from '../harness/stats.js';
import type { RunResult } from '../harness/types.js';
import {
  COST_NOTE,
  MEASURE_TITLE,
  SUMMARY_HEADER,
  TARGET_NOTE,
  exclusionLines,
  fmt,
  profileCells,
  summaryCells,
} from './tables.js';

type Spec = vl.TopLevelSpec;

/** Render a vega-lite spec to an SVG string. */
export async function renderSvg(spec: Spec): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

interface Point {
  optimizer: string;
  seed: number;
  run: string;
  step: number;
  seconds: number;
  loss: number;
}

const MAX_POINTS = 300;

/**
 * Loss curve points of a run: deterministic problems plot every (sub-sampled) step loss; data
 * problems plot the full training loss at evaluations (mini-batch losses are too noisy to read).
 *
 * Each loss is paired with the step count and optimizer seconds of the parameters it was
 * measured at: a step record's loss is taken before its update, so it belongs to step - 1 and
 * `lossSeconds` (the time before the step); the final parameters' loss (`final.trainLoss`,
 * after the last update) closes the curve at (final.steps, final.seconds).
 */
export function lossPoints(run: RunResult): Point[] {
  let src: { step: number; seconds: number; loss: number | null }[];
  if (run.batchSize === null) {
    src = run.records.map((r) => ({ step: r.step - 1, seconds: r.lossSeconds, loss: r.loss }));
    const f = run.final;
    if (f.steps > 0 && (src.length === 0 || src[src.length - 1].step < f.steps)) {
      src.push({ step: f.steps, seconds: f.seconds, loss: f.trainLoss });
    }
  } else {
    src = run.evals.map((e) => ({ step: e.step, seconds: e.seconds, loss: e.trainLoss }));
  }
  const pts = src.filter((p): p is { step: number; seconds: number; loss: number } => p.loss !== null && p.loss > 0);
  const stride = Math.max(1, Math.ceil(pts.length / MAX_POINTS));
  return pts
    .filter((_, i) => i % stride === 0 || i === pts.length - 1)
    .map((p) => ({ optimizer: run.optimizer, seed: run.seed, run: `${run.optimizer}/${run.seed}`, ...p }));
}

/** Vega's tableau10 then tableau20's light shades: enough distinct colours for 20 optimizers. */
const PALETTE = [
  '#4c78a8',
  '#f58518',
  '#e45756',
  '#72b7b2',
  '#54a24b',
  '#eeca3b',
  '#b279a2',
  '#ff9da6',
  '#9d755d',
  '#bab0ac',
  '#9ecae9',
  '#ffbf79',
  '#ff9d98',
  '#88d27a',
  '#83bcb6',
  '#f2cf5b',
  '#d6a5c9',
  '#fcbfd2',
  '#d8b5a5',
  '#79706e',
];

/**
 * One colour per optimizer, the same in every chart: the comparison's optimizers in spec order
 * (then any other optimizer found in the runs) mapped onto PALETTE (cycled past 20).
 */
export function optimizerColors(results: ComparisonResults): { domain: string[]; range: string[] } {
  const domain = [...new Set([...results.spec.optimizers, ...results.runs.map((r) => r.optimizer)])];
  return { domain, range: domain.map((_, i) => PALETTE[i % PALETTE.length]) };
}

type Colors = ReturnType<typeof optimizerColors>;

const colorEncoding = (colors: Colors) =>
  ({
    field: 'optimizer',
    type: 'nominal',
    title: 'optimizer',
    scale: { domain: colors.domain, range: colors.range },
  }) as const;

function lossChart(points: Point[], x: 'step' | 'seconds', title: string, target: number | null, colors: Colors): Spec {
  const layers: unknown[] = [
    {
      mark: { type: 'line', strokeWidth: 1.5, opacity: 0.8, clip: true },
      encoding: {
        x: { field: x, type: 'quantitative', title: x === 'step' ? 'step' : 'optimizer seconds' },
        y: { field: 'loss', type: 'quantitative', title: 'training loss', scale: { type: 'log' } },
        color: colorEncoding(colors),
        detail: { field: 'run', type: 'nominal' },
      },
    },
  ];
  if (target !== null && target > 0) {
    layers.push({
      data: { values: [{ target }] },
      mark: { type: 'rule', strokeDash: [4, 4], color: '#888' },
      encoding: { y: { field: 'target', type: 'quantitative' } },
    });
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 360,
    height: 220,
    data: { values: points },
    layer: layers,
  } as Spec;
}

function profileChart(p: PerformanceProfile, colors: Colors): Spec {
  const values = p.curves.flatMap((c) => c.points.map((q) => ({ optimizer: c.optimizer, tau: q.tau, rho: q.rho })));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `Performance profile: ${MEASURE_TITLE[p.measure] ?? p.measure} to target (${p.problems.length} problems)`,
    width: 360,
    height: 220,
    data: { values },
    mark: { type: 'line', interpolate: 'step-after', strokeWidth: 2, point: true },
    encoding: {
      x: { field: 'tau', type: 'quantitative', title: 'tau (cost / best cost)', scale: { type: 'log' } },
      y: { field: 'rho', type: 'quantitative', title: 'rho(tau): fraction of problems', scale: { domain: [0, 1] } },
      color: colorEncoding(colors),
    },
  } as Spec;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function htmlTable(header: string[], rows: string[][]): string {
  return `<table><thead><tr>${header.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c, i) => `<td class="${i < 2 ? 'l' : 'r'}">${esc(c)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
h1{font-size:24px;margin-bottom:4px}h2{margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555}.plots{display:flex;flex-wrap:wrap;gap:12px}.plots svg{max-width:100%;height:auto}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}th,td{padding:4px 8px;border-bottom:1px solid #e4e4e4}
th{background:#f6f6f6;text-align:left}td.r{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}td.l{white-space:nowrap}
.note{color:#666;font-size:13px;max-width:900px}
`;

/** The complete report.html. */
export async function htmlReport(results: ComparisonResults, title = 'curvature comparison'): Promise<string> {
  const parts: string[] = [];
  const colors = optimizerColors(results);
  const backend = results.runs[0]?.backend ?? '-';
  parts.push(`<h1>${esc(title)}</h1>`);
  parts.push(
    `<p class="meta">${results.runs.length} runs: ${esc(results.spec.optimizers.join(', '))} on ${results.spec.problems.length} problem(s), ` +
      `${results.spec.seeds.length} seed(s). tfjs backend: ${esc(backend)}.` +
      (results.pending > 0 ? ` <b>${results.pending} planned run(s) missing.</b>` : '') +
      '</p>',
  );
  parts.push('<h2>Summary</h2>');
  parts.push(
    '<p class="note">Final training loss: mean ± sample std over seeds (diverged runs excluded). "to target": median over seeds, ' +
      'only when every seed reached it. Seconds are optimizer time, evaluations excluded. ' +
      `${esc(COST_NOTE)}</p><p class="note"><b>${esc(TARGET_NOTE)}</b></p>`,
  );
  parts.push(htmlTable(SUMMARY_HEADER, results.summary.map(summaryCells)));
  const excluded = exclusionLines(results);
  if (excluded.length > 0) parts.push(`<p class="note">Not run (not applicable): ${esc(excluded.join('; '))}.</p>`);

  const solved = results.profiles.filter((p) => p.problems.length > 0);
  if (solved.length > 0) {
    parts.push('<h2>Performance profiles</h2>');
    parts.push(
      '<p class="note">Dolan-More: rho(tau) is the fraction of problems an optimizer reaches the target on within a factor tau of the best optimizer on that problem (higher and further left is better); an optimizer not run on a problem (n/a) counts as not reaching it.</p>',
    );
    const svgs = await Promise.all(solved.map((p) => renderSvg(profileChart(p, colors))));
    parts.push(`<div class="plots">${svgs.join('')}</div>`);
    for (const p of solved) {
      const t = profileCells(p, results);
      parts.push(
        `<p><b>${esc(MEASURE_TITLE[p.measure] ?? p.measure)} to target</b>: cost ratio to the best</p>`,
        htmlTable(t.header, t.rows),
      );
    }
  }

  parts.push('<h2>Training loss</h2>');
  const problemIds = [...new Set(results.runs.map((r) => r.problemId))];
  for (const pid of problemIds) {
    const runs = results.runs.filter((r) => r.problemId === pid);
    const points = runs.flatMap(lossPoints);
    const target = runs[0].final.target;
    const kind =
      runs[0].batchSize === null
        ? 'loss at the parameters after each step, plotted at the optimizer seconds when those parameters were reached, ending with the final loss'
        : 'full training loss at evaluations';
    const [a, b] = await Promise.all([
      renderSvg(lossChart(points, 'step', `${pid}: training loss vs step`, target, colors)),
      renderSvg(lossChart(points, 'seconds', `${pid}: training loss vs seconds`, target, colors)),
    ]);
    parts.push(
      `<h3>${esc(pid)}</h3><p class="note">${esc(runs[0].problem)} ${esc(JSON.stringify(runs[0].problemOptions))}, ` +
        `${runs[0].numParams} parameters; ${kind}; dashed line: target ${fmt(target, 4)}.</p>`,
      `<div class="plots">${a}${b}</div>`,
    );
  }
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title><style>${CSS}</style></head><body>${parts.join('\n')}</body></html>\n`;
}
