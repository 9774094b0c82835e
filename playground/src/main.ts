/**
 * The playground page: trajectories on 2-D functions, MNIST training side by side, Hessian
 * spectrum. `window.playground` exposes the current results (read by test/playground.test.ts);
 * `document.body.dataset` carries each panel's state ('running' / 'done').
 */
import * as tf from '@tensorflow/tfjs';
import wasmPlain from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreaded from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import { getOptimizerEntry, initBackend } from '../../src/index.js';
import { FUNCTIONS, getFunction, type Function2D } from './functions.js';
import { MODEL_OPTIMIZERS, MnistLab, loadDigits, TRAIN_SIZE } from './mnist.js';
import { drawContours, fromPx, lineChart, toPx, type Frame } from './plot.js';
import { computeSpectrum, type SpectrumOutcome } from './spectrum.js';
import { TRAJECTORY_OPTIMIZERS, parseOptionValue, runTrajectories, type Trajectory } from './trajectories.js';
import './style.css';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the page`);
  return el as T;
};
const esc = (s: string): string =>
  s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
const fmt = (v: number, digits = 3): string =>
  !Number.isFinite(v)
    ? String(v)
    : v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5)
      ? v.toExponential(2)
      : v.toFixed(digits);

interface PlaygroundState {
  ready: boolean;
  backend: string;
  fn: string;
  start: [number, number];
  trajectories: Trajectory[];
  runs: number;
  mnist: { step: number; losses: Record<string, number[]>; heldOut: Record<string, [number, number, number][]> };
  spectrum?: SpectrumOutcome;
  errors: string[];
  /** tf.memory().numTensors now (leak checks). */
  readonly tensors: number;
}
const state: PlaygroundState = {
  ready: false,
  backend: '',
  fn: 'rosenbrock',
  start: [-1.2, 1],
  trajectories: [],
  runs: 0,
  mnist: { step: 0, losses: {}, heldOut: {} },
  errors: [],
  get tensors() {
    return tf.memory().numTensors;
  },
};
(globalThis as unknown as { playground: PlaygroundState }).playground = state;

function showError(where: string, e: unknown): void {
  const msg = `${where}: ${e instanceof Error ? e.message : String(e)}`;
  state.errors.push(msg);
  const el = document.createElement('p');
  el.className = 'opt-error';
  el.textContent = msg;
  document.querySelector('main')!.prepend(el);
}

// ---------------------------------------------------------------- trajectories
const FRAME_SIZE = { width: 560, height: 460 };
let frame: Frame = { ...FRAME_SIZE, x: [-2, 2], y: [-1, 3] };
const edits = new Map<string, Map<string, string>>(); // optimizer -> option -> text
const enabled = new Map<string, boolean>(TRAJECTORY_OPTIMIZERS.map((o) => [o.name, true]));
let trajRunning = false;
let trajRestart = false;

function optionText(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** The options the user set (or the playground's overrides) that differ from the library's defaults. */
function optionsFor(name: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const doc of getOptimizerEntry(name).options) {
    const text = edits.get(name)?.get(doc.name);
    if (text !== undefined && text !== optionText(doc.default)) out[doc.name] = parseOptionValue(text);
  }
  return out;
}

function buildLegend(): void {
  const legend = $('legend');
  legend.innerHTML = '';
  for (const o of TRAJECTORY_OPTIMIZERS) {
    const entry = getOptimizerEntry(o.name);
    const m = new Map<string, string>();
    const rows: string[] = [];
    for (const doc of entry.options) {
      if (!['number', 'boolean', 'string'].includes(typeof doc.default)) continue;
      if (doc.name === 'skipNonFinite' || doc.name === 'maximize') continue;
      const value = optionText(doc.name in o.overrides ? o.overrides[doc.name] : doc.default);
      m.set(doc.name, value);
      const changed = value !== optionText(doc.default) ? ' changed' : '';
      rows.push(
        `<label title="${esc(doc.description)} (library default ${esc(optionText(doc.default))})">${doc.name}</label>` +
          `<input data-opt="${o.name}" data-name="${doc.name}" class="${changed.trim()}" value="${esc(value)}"/>`,
      );
    }
    edits.set(o.name, m);
    const div = document.createElement('div');
    div.className = 'opt';
    div.dataset.optimizer = o.name;
    div.innerHTML =
      `<div class="opt-head"><input type="checkbox" checked data-toggle="${o.name}"/>` +
      `<span class="swatch" style="background:${o.color}"></span><span class="opt-name">${o.label}</span>` +
      `<span class="opt-result" data-result="${o.name}"></span></div>` +
      (o.note ? `<div class="opt-note">${esc(o.note)}</div>` : '') +
      `<div class="opt-error" data-error="${o.name}" hidden></div>` +
      `<details><summary>options</summary><div class="opts">${rows.join('')}</div></details>`;
    legend.append(div);
  }
  const kfac = document.createElement('div');
  kfac.className = 'opt muted small';
  kfac.innerHTML =
    '<div class="opt-head"><span class="swatch" style="background:#ccc"></span><span class="opt-name">K-FAC</span></div>' +
    '<div class="opt-note">needs the layers of a network (its curvature is per Dense layer): see the MNIST panel</div>';
  legend.append(kfac);
  legend.addEventListener('change', (ev) => {
    const t = ev.target as HTMLInputElement;
    if (t.dataset.toggle) {
      enabled.set(t.dataset.toggle, t.checked);
      drawPaths(state.trajectories);
    } else if (t.dataset.opt && t.dataset.name) {
      edits.get(t.dataset.opt)!.set(t.dataset.name, t.value);
      const def = getOptimizerEntry(t.dataset.opt).options.find((d) => d.name === t.dataset.name)!.default;
      t.classList.toggle('changed', t.value !== optionText(def));
      void startTrajectories();
    }
  });
}

function drawMap(fn: Function2D): void {
  frame = { ...FRAME_SIZE, x: fn.x, y: fn.y };
  drawContours($<HTMLCanvasElement>('contour'), frame, fn);
  $('formula').textContent = `${fn.label}: f(x, y) = ${fn.formula}. Colours: log10(f − min f); minima marked ×.`;
}

function drawPaths(trajs: Trajectory[]): void {
  const fn = getFunction(state.fn);
  const svg = $('paths');
  svg.setAttribute('viewBox', `0 0 ${frame.width} ${frame.height}`);
  const parts: string[] = [];
  for (const t of trajs) {
    const o = TRAJECTORY_OPTIMIZERS.find((q) => q.name === t.name)!;
    if (!enabled.get(t.name)) continue;
    const pts = t.points.map(
      ([x, y]) => toPx(frame, x, y).map((v) => Math.max(-1e4, Math.min(1e4, v))) as [number, number],
    );
    const d = pts.map(([x, y], i) => `${i ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`).join('');
    parts.push(
      `<path data-optimizer="${t.name}" data-points="${t.points.length}" d="${d}" fill="none" stroke="${o.color}" stroke-width="2" stroke-linejoin="round" opacity="0.9"/>`,
    );
    const dots = pts.map(([x, y]) => `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="2.2"/>`).join('');
    parts.push(`<g fill="${o.color}" stroke="#fff" stroke-width="0.6">${dots}</g>`);
  }
  for (const [mx, my] of fn.minima) {
    const [px, py] = toPx(frame, mx, my);
    parts.push(
      `<path d="M${px - 5},${py - 5}L${px + 5},${py + 5}M${px - 5},${py + 5}L${px + 5},${py - 5}" stroke="#111" stroke-width="2.2"/>`,
    );
  }
  const [sx, sy] = toPx(frame, state.start[0], state.start[1]);
  parts.push(`<circle cx="${sx}" cy="${sy}" r="6" fill="#fff" stroke="#111" stroke-width="2"/>`);
  svg.innerHTML = parts.join('');
  for (const t of trajs) {
    const res = document.querySelector<HTMLElement>(`[data-result="${t.name}"]`);
    const err = document.querySelector<HTMLElement>(`[data-error="${t.name}"]`);
    if (res) {
      const e = t.evals;
      res.textContent = `f = ${fmt(t.losses.at(-1)!)} after ${t.points.length - 1} steps`;
      res.title = 'evaluations: f (loss), ∇f (gradient), Hv (Hessian-vector product)';
      const cost = document.createElement('div');
      cost.textContent = `${e.lossEvals} f · ${e.gradEvals} ∇f${e.hvpEvals ? ` · ${e.hvpEvals} Hv` : ''}`;
      res.append(cost);
    }
    if (err) {
      err.hidden = !t.error;
      err.textContent = t.error ?? '';
    }
  }
}

async function startTrajectories(): Promise<void> {
  if (trajRunning) {
    trajRestart = true;
    return;
  }
  trajRunning = true;
  document.body.dataset.trajectories = 'running';
  try {
    do {
      trajRestart = false;
      const fn = getFunction(state.fn);
      const steps = Math.max(1, Math.min(2000, Math.round(Number($<HTMLInputElement>('traj-steps').value) || 150)));
      const opts = TRAJECTORY_OPTIMIZERS.map((o) => ({ name: o.name, options: optionsFor(o.name) }));
      state.trajectories = await runTrajectories(
        fn,
        state.start,
        steps,
        opts,
        async (t) => {
          state.trajectories = t;
          drawPaths(t);
          await tf.nextFrame();
        },
        3,
        () => trajRestart,
      );
      drawPaths(state.trajectories);
    } while (trajRestart);
    state.runs++;
  } catch (e) {
    showError('trajectories', e);
  } finally {
    trajRunning = false;
    document.body.dataset.trajectories = 'done';
  }
}

function setupTrajectories(): void {
  const sel = $<HTMLSelectElement>('fn');
  sel.innerHTML = FUNCTIONS.map((f) => `<option value="${f.name}">${esc(f.label)}</option>`).join('');
  sel.addEventListener('change', () => {
    state.fn = sel.value;
    const fn = getFunction(state.fn);
    state.start = [...fn.start];
    state.trajectories = [];
    drawMap(fn);
    void startTrajectories();
  });
  buildLegend();
  $('traj-run').addEventListener('click', () => void startTrajectories());
  $('traj-reset').addEventListener('click', () => {
    state.start = [...getFunction(state.fn).start];
    void startTrajectories();
  });
  const map = $('map');
  map.addEventListener('click', (ev) => {
    const r = map.getBoundingClientRect();
    const [x, y] = fromPx(frame, ev.clientX - r.left, ev.clientY - r.top);
    state.start = [Number(x.toFixed(3)), Number(y.toFixed(3))];
    void startTrajectories();
  });
  map.addEventListener('mousemove', (ev) => {
    const r = map.getBoundingClientRect();
    const [x, y] = fromPx(frame, ev.clientX - r.left, ev.clientY - r.top);
    $('coords').textContent = `(${x.toFixed(2)}, ${y.toFixed(2)})  f = ${fmt(getFunction(state.fn).value(x, y))}`;
  });
  const fn = getFunction(state.fn);
  state.start = [...fn.start];
  drawMap(fn);
}

// ---------------------------------------------------------------- MNIST
let lab: MnistLab | undefined;
let training = false;
let stopTraining = false;

function chartLegend(items: { label: string; color: string }[]): string {
  return `<div class="chart-legend">${items.map((i) => `<span><i class="swatch" style="background:${i.color}"></i>${esc(i.label)}</span>`).join('')}</div>`;
}

/** Exponential moving average, to make the per-batch losses readable. */
function smooth(v: number[], beta = 0.8): number[] {
  let m = v[0] ?? 0;
  return v.map((x, i) => (m = i === 0 ? x : beta * m + (1 - beta) * x));
}

function drawMnist(): void {
  if (!lab) return;
  const series = lab.runs.flatMap((r) => [
    {
      label: `${r.label} (batch)`,
      color: r.color + '55',
      points: r.losses.map((l, i) => [i + 1, l] as [number, number]),
    },
    { label: r.label, color: r.color, points: smooth(r.losses).map((l, i) => [i + 1, l] as [number, number]) },
  ]);
  $('mnist-chart').innerHTML =
    lineChart(series, {
      width: 620,
      height: 300,
      xLabel: 'step',
      yLabel: 'training loss (cross-entropy)',
      logY: true,
    }) + chartLegend(lab.runs.map((r) => ({ label: r.label, color: r.color })));
  const rows = lab.runs
    .map((r) => {
      const h = r.heldOut.at(-1)!;
      return (
        `<tr data-model="${r.name}"><td><i class="swatch" style="display:inline-block;background:${r.color}"></i> ${r.label}</td>` +
        `<td>${r.losses.length ? fmt(smooth(r.losses).at(-1)!) : '–'}</td><td>${fmt(h[1])}</td><td>${(100 * h[2]).toFixed(1)}%</td>` +
        `<td>${r.msPerStep ? r.msPerStep.toFixed(0) : '–'}</td></tr>` +
        (r.error ? `<tr><td colspan="5" class="opt-error">${esc(r.error)}</td></tr>` : '')
      );
    })
    .join('');
  $('mnist-table').innerHTML =
    `<tr><th>optimizer</th><th>train loss</th><th>held-out loss</th><th>accuracy</th><th>ms/step</th></tr>${rows}`;
  state.mnist = {
    step: lab.step,
    losses: Object.fromEntries(lab.runs.map((r) => [r.name, [...r.losses]])),
    heldOut: Object.fromEntries(lab.runs.map((r) => [r.name, [...r.heldOut]])),
  };
}

async function train(): Promise<void> {
  if (!lab || training) return;
  training = true;
  stopTraining = false;
  document.body.dataset.mnist = 'running';
  $<HTMLButtonElement>('mnist-train').disabled = true;
  const steps = Math.max(1, Math.round(Number($<HTMLInputElement>('mnist-steps').value) || 200));
  const batch = Math.max(8, Math.min(TRAIN_SIZE, Math.round(Number($<HTMLInputElement>('mnist-batch').value) || 100)));
  try {
    for (let s = 0; s < steps && !stopTraining; s++) {
      await lab.trainStep(batch);
      if (lab.step % 20 === 0 || s === steps - 1) lab.evaluate();
      $('mnist-status').textContent = `step ${lab.step}`;
      drawMnist();
      await tf.nextFrame();
    }
    if (lab.runs[0]!.heldOut.at(-1)![0] !== lab.step) lab.evaluate();
    drawMnist();
  } catch (e) {
    showError('MNIST training', e);
  } finally {
    training = false;
    $<HTMLButtonElement>('mnist-train').disabled = false;
    $('mnist-status').textContent = `step ${lab.step} · ${tf.memory().numTensors} tensors`;
    document.body.dataset.mnist = 'done';
  }
}

async function setupMnist(): Promise<void> {
  const digits = await loadDigits(`${import.meta.env.BASE_URL}digits.bin`);
  lab = new MnistLab(digits);
  $('mnist-about').innerHTML =
    `MLP 784-64-10 (ReLU, softmax), 50,890 parameters, identical initial weights; the same mini-batches of the ` +
    `${TRAIN_SIZE} training digits for all three. Held-out: ${lab.heldOutSize} other digits. ` +
    MODEL_OPTIMIZERS.map((o) => `${o.label}: ${o.describe}`).join('; ') +
    '. Faint lines: per-batch loss; solid: its moving average.';
  $('mnist-train').addEventListener('click', () => void train());
  $('mnist-stop').addEventListener('click', () => (stopTraining = true));
  $('mnist-reset').addEventListener('click', () => {
    if (training) return;
    lab!.reset();
    state.spectrum = undefined;
    $('spec-chart').innerHTML = '';
    $('spec-values').innerHTML = '';
    drawMnist();
  });
  $<HTMLSelectElement>('spec-model').innerHTML = MODEL_OPTIMIZERS.map(
    (o) => `<option value="${o.name}">${o.label}</option>`,
  ).join('');
  drawMnist();
}

// ---------------------------------------------------------------- spectrum
async function spectrum(): Promise<void> {
  if (!lab) return;
  if (training) stopTraining = true;
  while (training) await tf.nextFrame();
  document.body.dataset.spectrum = 'running';
  $<HTMLButtonElement>('spec-run').disabled = true;
  $('spec-status').textContent = 'computing… (the page pauses while Lanczos runs)';
  await tf.nextFrame();
  await new Promise((r) => setTimeout(r, 30));
  try {
    const name = $<HTMLSelectElement>('spec-model').value;
    const run = lab.runs.find((r) => r.name === name)!;
    const int = (id: string, lo: number, hi: number, d: number) =>
      Math.max(lo, Math.min(hi, Math.round(Number($<HTMLInputElement>(id).value) || d)));
    const out = computeSpectrum(lab, run, {
      k: int('spec-k', 1, 20, 5),
      steps: int('spec-steps', 4, 200, 40),
      batch: int('spec-batch', 10, TRAIN_SIZE, 256),
    });
    state.spectrum = out;
    const floor = Math.max(...out.density) * 1e-5;
    const color = run.color;
    $('spec-chart').innerHTML = lineChart(
      [
        {
          label: 'density',
          color,
          points: out.grid.map((g, i) => [g, Math.max(out.density[i]!, floor)] as [number, number]),
        },
      ],
      {
        width: 620,
        height: 280,
        xLabel: 'eigenvalue',
        yLabel: 'density (SLQ, log scale)',
        logY: true,
        fill: true,
        marks: (X) =>
          out.topEigenvalues
            .map(
              (e) =>
                `<line x1="${X(e)}" x2="${X(e)}" y1="0" y2="1000" stroke="#222" stroke-dasharray="3 3" opacity="0.6"/>`,
            )
            .join(''),
      },
    );
    $('spec-values').innerHTML =
      `<table><tr><th>#</th><th>eigenvalue</th><th>residual</th></tr>` +
      out.topEigenvalues
        .map(
          (e, i) =>
            `<tr class="eig"><td>λ${i + 1}</td><td>${fmt(e, 4)}</td><td>${out.residuals[i]!.toExponential(1)}</td></tr>`,
        )
        .join('') +
      `</table><p class="muted small">${esc(out.model)} model at step ${out.step}: Hessian of the mean cross-entropy on ` +
      `${out.batch} training digits, ${out.numParams.toLocaleString('en')} parameters. SLQ: λmin ≈ ${fmt(out.lambdaMin)}, ` +
      `λmax ≈ ${fmt(out.lambdaMax)}, trace ≈ ${fmt(out.trace)}. ${out.matvecs} Hessian-vector products, ${(out.ms / 1000).toFixed(1)} s. ` +
      `Dashed: the top eigenvalues (Lanczos).</p>`;
    $('spec-status').textContent = '';
  } catch (e) {
    showError('spectrum', e);
    $('spec-status').textContent = '';
  } finally {
    $<HTMLButtonElement>('spec-run').disabled = false;
    document.body.dataset.spectrum = 'done';
  }
}

// ---------------------------------------------------------------- start
async function main(): Promise<void> {
  const wanted = new URLSearchParams(location.search).get('backend') ?? 'wasm';
  const sel = $<HTMLSelectElement>('backend');
  sel.value = wanted;
  sel.addEventListener('change', () => {
    const u = new URL(location.href);
    u.searchParams.set('backend', sel.value);
    location.href = u.toString();
  });
  try {
    state.backend = await initBackend(wanted, {
      wasmPaths: {
        'tfjs-backend-wasm.wasm': wasmPlain,
        'tfjs-backend-wasm-simd.wasm': wasmSimd,
        'tfjs-backend-wasm-threaded-simd.wasm': wasmThreaded,
      },
    });
  } catch (e) {
    showError(`backend ${wanted}`, e);
    state.backend = await initBackend('cpu');
  }
  $('backend-status').textContent = `using ${state.backend}`;
  setupTrajectories();
  $('spec-run').addEventListener('click', () => void spectrum());
  try {
    await setupMnist();
  } catch (e) {
    showError('MNIST', e);
  }
  state.ready = true;
  document.body.dataset.state = 'ready';
  if (new URLSearchParams(location.search).get('autorun') !== '0') void startTrajectories();
}

void main();
