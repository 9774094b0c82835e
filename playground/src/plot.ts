/**
 * Plain canvas/SVG plotting: a contour map (log-scaled heatmap plus marching-squares iso-lines),
 * line charts and a density plot. No plotting library: the page stays small.
 */
import type { Function2D } from './functions.js';

export interface Frame {
  width: number;
  height: number;
  x: [number, number];
  y: [number, number];
}

export function toPx(f: Frame, x: number, y: number): [number, number] {
  return [((x - f.x[0]) / (f.x[1] - f.x[0])) * f.width, ((f.y[1] - y) / (f.y[1] - f.y[0])) * f.height];
}

export function fromPx(f: Frame, px: number, py: number): [number, number] {
  return [f.x[0] + (px / f.width) * (f.x[1] - f.x[0]), f.y[1] - (py / f.height) * (f.y[1] - f.y[0])];
}

// A light blue-to-sand colour ramp: low values light, so that coloured paths stand out.
const RAMP: [number, number, number][] = [
  [247, 251, 255],
  [222, 235, 247],
  [198, 219, 239],
  [158, 202, 225],
  [133, 170, 200],
  [166, 160, 190],
  [205, 170, 170],
  [235, 200, 160],
];

function ramp(t: number): [number, number, number] {
  const u = Math.min(1, Math.max(0, t)) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(u));
  const a = RAMP[i]!;
  const b = RAMP[i + 1]!;
  const w = u - i;
  return [a[0] + w * (b[0] - a[0]), a[1] + w * (b[1] - a[1]), a[2] + w * (b[2] - a[2])];
}

/** Heatmap of log10(f - min + offset) and iso-lines at its levels, onto a canvas of frame size. */
export function drawContours(canvas: HTMLCanvasElement, frame: Frame, fn: Function2D): void {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(frame.width * dpr);
  canvas.height = Math.round(frame.height * dpr);
  const ctx = canvas.getContext('2d')!;
  const nx = Math.round(frame.width / 2);
  const ny = Math.round(frame.height / 2);
  const z = new Float64Array((nx + 1) * (ny + 1));
  let lo = Infinity;
  for (let j = 0; j <= ny; j++) {
    for (let i = 0; i <= nx; i++) {
      const [x, y] = fromPx(frame, (i / nx) * frame.width, (j / ny) * frame.height);
      const v = fn.value(x, y);
      z[j * (nx + 1) + i] = v;
      if (v < lo) lo = v;
    }
  }
  const offset = 1e-2;
  let zmin = Infinity;
  let zmax = -Infinity;
  for (let k = 0; k < z.length; k++) {
    z[k] = Math.log10(z[k]! - lo + offset);
    zmin = Math.min(zmin, z[k]!);
    zmax = Math.max(zmax, z[k]!);
  }
  const img = ctx.createImageData(nx, ny);
  for (let j = 0; j < ny; j++) {
    for (let i = 0; i < nx; i++) {
      const [r, g, b] = ramp((z[j * (nx + 1) + i]! - zmin) / (zmax - zmin));
      const o = 4 * (j * nx + i);
      img.data[o] = r;
      img.data[o + 1] = g;
      img.data[o + 2] = b;
      img.data[o + 3] = 255;
    }
  }
  const tmp = document.createElement('canvas');
  tmp.width = nx;
  tmp.height = ny;
  tmp.getContext('2d')!.putImageData(img, 0, 0);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(tmp, 0, 0, frame.width, frame.height);

  // Iso-lines every half decade of f - min (marching squares, linear interpolation).
  const sx = frame.width / nx;
  const sy = frame.height / ny;
  ctx.lineWidth = 0.8;
  ctx.strokeStyle = 'rgba(40, 60, 90, 0.35)';
  ctx.beginPath();
  for (let level = Math.ceil(zmin * 2) / 2; level < zmax; level += 0.5) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        const a = z[j * (nx + 1) + i]!;
        const b = z[j * (nx + 1) + i + 1]!;
        const c = z[(j + 1) * (nx + 1) + i + 1]!;
        const d = z[(j + 1) * (nx + 1) + i]!;
        const pts: [number, number][] = [];
        const edge = (p: number, q: number, x0: number, y0: number, x1: number, y1: number) => {
          if (p < level !== q < level) {
            const t = (level - p) / (q - p);
            pts.push([(x0 + t * (x1 - x0)) * sx, (y0 + t * (y1 - y0)) * sy]);
          }
        };
        edge(a, b, i, j, i + 1, j);
        edge(b, c, i + 1, j, i + 1, j + 1);
        edge(d, c, i, j + 1, i + 1, j + 1);
        edge(a, d, i, j, i, j + 1);
        for (let k = 0; k + 1 < pts.length; k += 2) {
          ctx.moveTo(pts[k]![0], pts[k]![1]);
          ctx.lineTo(pts[k + 1]![0], pts[k + 1]![1]);
        }
      }
    }
  }
  ctx.stroke();
}

const fmt = (v: number): string => {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(0).replace('e+', 'e');
  return Number(v.toPrecision(3)).toString();
};

function niceTicks(lo: number, hi: number, n = 5): number[] {
  const span = hi - lo || 1;
  const step0 = span / n;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= n) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

export interface Series {
  label: string;
  color: string;
  /** [x, y] points. */
  points: [number, number][];
}

export interface ChartOptions {
  width: number;
  height: number;
  xLabel: string;
  yLabel: string;
  logY?: boolean;
  /** Extra SVG drawn under the series, in pixel coordinates of the plot area. */
  marks?: (x: (v: number) => number, y: (v: number) => number) => string;
  xRange?: [number, number];
  yRange?: [number, number];
  fill?: boolean;
}

/** A line chart as SVG markup. */
export function lineChart(series: Series[], o: ChartOptions): string {
  const m = { l: 52, r: 12, t: 10, b: 36 };
  const W = o.width - m.l - m.r;
  const H = o.height - m.t - m.b;
  const all = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p[1]) && (!o.logY || p[1] > 0));
  const tr = (v: number) => (o.logY ? Math.log10(v) : v);
  let [x0, x1] = o.xRange ?? [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [y0, y1] = o.yRange ?? [Math.min(...all.map((p) => tr(p[1]))), Math.max(...all.map((p) => tr(p[1])))];
  if (!all.length) [x0, x1, y0, y1] = [0, 1, 0, 1];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const pad = 0.04 * (y1 - y0);
  y0 -= pad;
  y1 += pad;
  const X = (v: number) => m.l + ((v - x0) / (x1 - x0)) * W;
  const Y = (v: number) => m.t + H - ((tr(v) - y0) / (y1 - y0)) * H;
  const parts: string[] = [
    `<svg viewBox="0 0 ${o.width} ${o.height}" width="${o.width}" height="${o.height}" class="chart">`,
  ];
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${W}" height="${H}" class="plot-bg"/>`);
  const yTicks = o.logY
    ? niceTicks(y0, y1, 5)
        .filter((t) => Number.isInteger(t))
        .map((t) => 10 ** t)
    : niceTicks(y0, y1, 5);
  for (const t of yTicks) {
    const py = Y(t);
    if (py < m.t - 0.5 || py > m.t + H + 0.5) continue;
    parts.push(`<line x1="${m.l}" x2="${m.l + W}" y1="${py}" y2="${py}" class="grid"/>`);
    parts.push(`<text x="${m.l - 6}" y="${py + 4}" text-anchor="end" class="tick">${fmt(t)}</text>`);
  }
  for (const t of niceTicks(x0, x1, 6)) {
    const px = X(t);
    parts.push(`<line x1="${px}" x2="${px}" y1="${m.t + H}" y2="${m.t + H + 4}" class="axis"/>`);
    parts.push(`<text x="${px}" y="${m.t + H + 16}" text-anchor="middle" class="tick">${fmt(t)}</text>`);
  }
  parts.push(`<text x="${m.l + W / 2}" y="${o.height - 4}" text-anchor="middle" class="label">${o.xLabel}</text>`);
  parts.push(
    `<text transform="translate(12 ${m.t + H / 2}) rotate(-90)" text-anchor="middle" class="label">${o.yLabel}</text>`,
  );
  parts.push(
    `<clipPath id="clip-${o.width}-${o.height}"><rect x="${m.l}" y="${m.t}" width="${W}" height="${H}"/></clipPath>`,
  );
  parts.push(`<g clip-path="url(#clip-${o.width}-${o.height})">`);
  if (o.marks) parts.push(o.marks(X, Y));
  for (const s of series) {
    const pts = s.points.filter((p) => Number.isFinite(p[1]) && (!o.logY || p[1] > 0));
    if (!pts.length) continue;
    const d = pts.map((p, i) => `${i ? 'L' : 'M'}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join('');
    if (o.fill) {
      const base = Y(o.logY ? 10 ** y0 : Math.max(y0, 0));
      parts.push(
        `<path d="${d}L${X(pts.at(-1)![0]).toFixed(1)},${base}L${X(pts[0]![0]).toFixed(1)},${base}Z" fill="${s.color}" opacity="0.18"/>`,
      );
    }
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.8" data-series="${s.label}"/>`);
  }
  parts.push('</g></svg>');
  return parts.join('');
}
