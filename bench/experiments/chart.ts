// Grouped bar charts as plain SVG, written by hand so the results need no plotting dependency:
// panels laid out in a grid, each with a y axis from zero, grid lines, labelled groups of bars (one
// bar per series) and a legend. Every bar is a <rect class="bar"> with a <title> holding its value.

export interface BarGroup {
  readonly label: string;
  /** One value per series; undefined leaves a gap (not measured). */
  readonly values: readonly (number | undefined)[];
}

export interface Panel {
  readonly title: string;
  /** Printed after the axis values and in the bars' titles ("%", "req/s"). */
  readonly unit: string;
  readonly series: readonly string[];
  readonly groups: readonly BarGroup[];
  /** Fixed top of the y axis (100 for percentages); default: a round number above the largest value. */
  readonly yMax?: number;
  /** One colour per series, so that a series keeps its colour from panel to panel; default the palette. */
  readonly colors?: readonly string[];
}

// Okabe–Ito: tells apart for the common kinds of colour blindness.
export const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000'];

export const PANEL_W = 360;
export const PANEL_H = 260;
const M = { top: 34, right: 12, bottom: 58, left: 52 };

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A round step (1, 2, 2.5 or 5 × 10^k) giving about `ticks` intervals up to max. */
export function niceStep(max: number, ticks = 4): number {
  if (!(max > 0)) return 1;
  const raw = max / ticks;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const f = raw / pow;
  const nice = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
  return nice * pow;
}

export function formatValue(v: number): string {
  if (!Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a >= 10_000) return `${Math.round(v / 1000)}k`;
  if (a >= 1_000) return `${(v / 1000).toFixed(1).replace(/\.0$/, '')}k`;
  if (a >= 100 || Number.isInteger(v)) return String(Math.round(v));
  return v.toFixed(a >= 10 ? 1 : 2).replace(/\.?0+$/, '');
}

const n = (x: number): string => (Math.round(x * 10) / 10).toString();

/** One panel as a <g> translated to (x, y), PANEL_W × PANEL_H. */
export function renderPanel(p: Panel, x: number, y: number): string {
  const w = PANEL_W - M.left - M.right;
  const h = PANEL_H - M.top - M.bottom;
  const values = p.groups.flatMap((g) => g.values.filter((v): v is number => v !== undefined && Number.isFinite(v)));
  const dataMax = Math.max(0, ...values);
  const step = niceStep(p.yMax ?? dataMax);
  const top = p.yMax ?? Math.max(step, Math.ceil(dataMax / step) * step);
  const yOf = (v: number): number => M.top + h - (Math.max(0, Math.min(v, top)) / top) * h;
  const out: string[] = [`<g class="panel" transform="translate(${x},${y})">`];
  out.push(`<text class="panel-title" x="${M.left}" y="18">${escapeXml(p.title)}</text>`);
  for (let v = 0; v <= top + step / 1000; v += step) {
    const yy = yOf(v);
    out.push(`<line class="grid" x1="${M.left}" x2="${M.left + w}" y1="${n(yy)}" y2="${n(yy)}"/>`);
    out.push(`<text class="tick" x="${M.left - 6}" y="${n(yy + 4)}" text-anchor="end">${escapeXml(formatValue(v))}</text>`);
  }
  out.push(`<line class="axis" x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${M.top + h}"/>`);
  out.push(`<line class="axis" x1="${M.left}" x2="${M.left + w}" y1="${M.top + h}" y2="${M.top + h}"/>`);
  out.push(`<text class="unit" x="${M.left - 6}" y="${M.top - 8}" text-anchor="end">${escapeXml(p.unit)}</text>`);
  const groups = Math.max(1, p.groups.length);
  const gw = w / groups;
  const series = Math.max(1, p.series.length);
  const bw = Math.min(40, (gw * 0.8) / series);
  const color = (si: number): string => p.colors?.[si] ?? PALETTE[si % PALETTE.length] ?? '#000';
  // Values are printed over the bars only when every one fits its bar's width (about 5.6 px a character).
  const labelled = values.every((v) => formatValue(v).length * 5.6 <= bw);
  for (const [gi, g] of p.groups.entries()) {
    const gx = M.left + gi * gw + (gw - bw * series) / 2;
    for (const [si, v] of g.values.entries()) {
      if (v === undefined || !Number.isFinite(v)) continue;
      const bx = gx + si * bw;
      const by = yOf(v);
      const label = `${g.label} · ${p.series[si] ?? ''}: ${formatValue(v)} ${p.unit}`;
      out.push(`<rect class="bar" x="${n(bx + 1)}" y="${n(by)}" width="${n(Math.max(1, bw - 2))}" height="${n(M.top + h - by)}" fill="${color(si)}"><title>${escapeXml(label)}</title></rect>`);
      if (labelled) out.push(`<text class="value" x="${n(bx + bw / 2)}" y="${n(by - 3)}" text-anchor="middle">${escapeXml(formatValue(v))}</text>`);
    }
    out.push(`<text class="group" x="${n(M.left + gi * gw + gw / 2)}" y="${M.top + h + 16}" text-anchor="middle">${escapeXml(g.label)}</text>`);
  }
  if (p.series.length > 1) {
    // The legend wraps onto a second line when the names do not fit on one.
    let lx = M.left;
    let ly = M.top + h + 34;
    for (const [si, name] of p.series.entries()) {
      const width = 16 + name.length * 6.2 + 10;
      if (lx + width > PANEL_W && lx > M.left) {
        lx = M.left;
        ly += 14;
      }
      out.push(`<rect class="swatch" x="${n(lx)}" y="${n(ly - 9)}" width="10" height="10" fill="${color(si)}"/>`);
      out.push(`<text class="legend" x="${n(lx + 14)}" y="${n(ly)}">${escapeXml(name)}</text>`);
      lx += width;
    }
  }
  out.push('</g>');
  return out.join('\n');
}

/** A whole SVG document: a title, a subtitle, then the panels in rows of `columns`. */
export function renderChart(title: string, subtitle: string, panels: readonly Panel[], columns = 3): string {
  const cols = Math.max(1, Math.min(columns, panels.length));
  const rows = Math.ceil(panels.length / cols);
  const head = 56;
  const width = cols * PANEL_W + 20;
  const height = head + rows * PANEL_H + 10;
  const body = panels.map((p, i) => renderPanel(p, 10 + (i % cols) * PANEL_W, head + Math.floor(i / cols) * PANEL_H));
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif">`,
    `<style>
.title { font-size: 17px; font-weight: 600; fill: #222; }
.subtitle { font-size: 11px; fill: #555; }
.panel-title { font-size: 13px; font-weight: 600; fill: #222; }
.tick, .unit { font-size: 10px; fill: #555; }
.group { font-size: 11px; fill: #222; }
.value { font-size: 9px; fill: #333; }
.legend { font-size: 10px; fill: #333; }
.grid { stroke: #e4e4e4; stroke-width: 1; }
.axis { stroke: #888; stroke-width: 1; }
</style>`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text class="title" x="14" y="24">${escapeXml(title)}</text>`,
    `<text class="subtitle" x="14" y="42">${escapeXml(subtitle)}</text>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}
