// The benchmark's charts: a line chart over time as SVG (readable as text, embeddable in the HTML
// report), with deployment phases shaded and the rollback marked, and the same as PNG (rendered by
// resvg). Small and dependency-light on purpose: two chart kinds, one layout.
import { existsSync } from 'node:fs';
import { Resvg, type RenderedImage } from '@resvg/resvg-js';

export interface Series {
  name: string;
  color: string;
  /** [seconds from the start, value]; null values break the line (no data that second). */
  points: ReadonlyArray<readonly [number, number | null]>;
}

export interface Phase {
  from: number;
  to: number;
  label: string;
  fill: string;
}

export interface Marker {
  at: number;
  label: string;
}

export interface ChartSpec {
  title: string;
  yLabel: string;
  series: readonly Series[];
  phases?: readonly Phase[];
  markers?: readonly Marker[];
  /** Format of y tick labels (default: up to 3 significant digits). */
  yFormat?: (v: number) => string;
}

const W = 900;
const H = 360;
const M = { left: 64, right: 16, top: 40, bottom: 44 };

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const num = (x: number): string => (Math.round(x * 10) / 10).toString();

/** "Nice" tick step: 1, 2 or 5 × 10^k, about `count` ticks over `span`. */
function tickStep(span: number, count: number): number {
  const raw = span / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  const n = raw / mag;
  return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * mag;
}

export function lineChartSvg(spec: ChartSpec): string {
  const xs = spec.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = spec.series.flatMap((s) => s.points.map((p) => p[1]).filter((v): v is number => v !== null && Number.isFinite(v)));
  const xMax = Math.max(1, ...xs, ...(spec.phases ?? []).map((p) => p.to));
  const yStep = tickStep(Math.max(...ys, 0) || 1, 5);
  const yMax = Math.max(yStep, Math.ceil((Math.max(...ys, 0) || 1) / yStep) * yStep);
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const X = (x: number): number => M.left + (x / xMax) * pw;
  const Y = (y: number): number => M.top + ph - (Math.min(y, yMax) / yMax) * ph;
  const fmt = spec.yFormat ?? ((v: number) => Number(v.toPrecision(3)).toString());
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${M.left}" y="22" font-size="15" font-weight="bold">${esc(spec.title)}</text>`);
  for (const p of spec.phases ?? []) {
    out.push(`<g class="phase" data-phase="${esc(p.label)}"><rect x="${num(X(p.from))}" y="${M.top}" width="${num(Math.max(0.5, X(p.to) - X(p.from)))}" height="${ph}" fill="${p.fill}" opacity="0.35"/>`
      + `<text x="${num(X(p.from) + 3)}" y="${M.top + 12}" font-size="10" fill="#444">${esc(p.label)}</text></g>`);
  }
  for (let y = 0; y <= yMax + 1e-9; y += yStep) {
    out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${num(Y(y))}" y2="${num(Y(y))}" stroke="#ddd"/><text x="${M.left - 6}" y="${num(Y(y) + 4)}" text-anchor="end" fill="#555">${esc(fmt(y))}</text>`);
  }
  const xStep = tickStep(xMax, 10);
  for (let x = 0; x <= xMax + 1e-9; x += xStep) {
    out.push(`<text x="${num(X(x))}" y="${H - M.bottom + 16}" text-anchor="middle" fill="#555">${num(x)}</text>`);
  }
  out.push(`<text x="${M.left + pw / 2}" y="${H - 8}" text-anchor="middle" fill="#333">seconds</text>`);
  out.push(`<text x="14" y="${M.top + ph / 2}" text-anchor="middle" fill="#333" transform="rotate(-90 14 ${M.top + ph / 2})">${esc(spec.yLabel)}</text>`);
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  for (const s of spec.series) {
    // A run of points with data is one path segment; a null second breaks it.
    let d = '';
    let pen = false;
    for (const [x, y] of s.points) {
      if (y === null || !Number.isFinite(y)) { pen = false; continue; }
      d += `${pen ? 'L' : 'M'}${num(X(x))},${num(Y(y))}`;
      pen = true;
    }
    out.push(`<path class="series" data-series="${esc(s.name)}" d="${d}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
  }
  for (const m of spec.markers ?? []) {
    out.push(`<g class="marker" data-marker="${esc(m.label)}"><line x1="${num(X(m.at))}" x2="${num(X(m.at))}" y1="${M.top}" y2="${M.top + ph}" stroke="#c00" stroke-width="2" stroke-dasharray="6 3"/>`
      + `<text x="${num(X(m.at) + 4)}" y="${M.top + 26}" fill="#c00" font-weight="bold">${esc(m.label)}</text></g>`);
  }
  spec.series.forEach((s, i) => {
    const x = W - M.right - 150;
    const y = M.top + 16 + i * 16;
    out.push(`<rect x="${x}" y="${y - 9}" width="12" height="3" fill="${s.color}"/><text x="${x + 18}" y="${y - 4}" fill="#333">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

/**
 * The charts' font: DejaVu Sans from Debian's fonts-dejavu-core, which the install script puts on
 * every machine and in the image. resvg draws no text at all without a font, so name it rather than
 * hope a system font scan finds one (and skip the scan's cost).
 */
export const CHART_FONT_FILES = ['DejaVuSans.ttf', 'DejaVuSans-Bold.ttf'].map((f) => `/usr/share/fonts/truetype/dejavu/${f}`);

/** The SVG rendered to pixels (throws if the SVG does not parse). */
export function renderSvg(svg: string, fontFiles: readonly string[] = CHART_FONT_FILES): RenderedImage {
  const files = fontFiles.filter((f) => existsSync(f));
  const font = files.length > 0
    ? { loadSystemFonts: false, fontFiles: files, defaultFontFamily: 'DejaVu Sans', sansSerifFamily: 'DejaVu Sans' }
    : { loadSystemFonts: true };
  return new Resvg(svg, { background: '#ffffff', font }).render();
}

/** The SVG rendered to PNG (throws if the SVG does not parse). */
export function svgToPng(svg: string): Buffer {
  return renderSvg(svg).asPng();
}

/** Dark pixels (text, lines) of a rendered image inside a box: how a test tells that text was drawn. */
export function inkIn(image: RenderedImage, box: { x: number; y: number; width: number; height: number }): number {
  const px = image.pixels;
  let ink = 0;
  for (let y = box.y; y < Math.min(image.height, box.y + box.height); y++) {
    for (let x = box.x; x < Math.min(image.width, box.x + box.width); x++) {
      const i = (y * image.width + x) * 4;
      if (px[i]! + px[i + 1]! + px[i + 2]! < 3 * 128) ink++;
    }
  }
  return ink;
}

/** Where a chart's title is drawn (see lineChartSvg). */
export const TITLE_BOX = { x: M.left, y: 4, width: 400, height: 24 };
