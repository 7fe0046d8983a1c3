// SVG charts drawn here, with no library: stacked bars over time with a legend, and lines.
//
// A chart is drawn once it is on the page, at its container's width in pixels (so text keeps
// its size on a phone), and drawn again when that width changes; its height is fixed by
// app.css, so a redraw never changes the layout it was measured in. Colours come from a fixed
// palette; text, grid and axes take theirs from app.css classes, for light and dark themes.
// Every bar and point carries a <title> (shown on hover, read by screen readers) and the SVG
// an aria-label summary.

const SVG = 'http://www.w3.org/2000/svg';

/** Colours of series, in order; distinguishable for common colour-vision deficiencies. */
export const PALETTE = [
  '#2f6feb', '#e8710a', '#1a9e77', '#d6336c', '#7950f2',
  '#0c8599', '#a27b00', '#5c7080', '#c2255c', '#2b8a3e',
];

const MARGIN = { top: 12, right: 12, bottom: 28 };
/** Drawing width when the container cannot be measured. */
const FALLBACK_WIDTH = 640;

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined && value !== false) el.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return el;
}

function html(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

/** A round upper bound for an axis and its tick step: 1, 2, 2.5 or 5 times a power of ten. */
export function niceScale(max, ticks = 4) {
  if (!(max > 0) || !Number.isFinite(max)) return { max: 1, step: 0.25 };
  const rough = max / ticks;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= rough) ?? 10 * power;
  return { max: step * Math.ceil(max / step - 1e-9), step };
}

/** Which bucket indexes get an x-axis label: at most `count`, evenly spaced. */
function labelIndexes(n, count) {
  if (n <= count) return [...Array(n).keys()];
  const every = Math.ceil(n / count);
  const out = [];
  for (let i = 0; i < n; i += every) out.push(i);
  return out;
}

function frame({ width, height, yMax, step, format, buckets, bucketLabel, label }) {
  const WIDTH = width;
  const ticks = [];
  for (let i = 0; i * step <= yMax * (1 + 1e-9); i += 1) ticks.push([i * step, format(i * step)]);
  // Room for the longest axis label (12 px text is about 7 px a character).
  const left = Math.max(36, Math.ceil(Math.max(...ticks.map(([, t]) => t.length)) * 7.2) + 14);
  const plotW = WIDTH - left - MARGIN.right;
  const plotH = height - MARGIN.top - MARGIN.bottom;
  const root = svg('svg', {
    viewBox: `0 0 ${WIDTH} ${height}`,
    class: 'chart-svg',
    role: 'img',
    'aria-label': label,
    width: WIDTH,
    height,
  });
  const y = (v) => MARGIN.top + plotH - (Math.min(v, yMax) / yMax) * plotH;
  const grid = svg('g', { class: 'chart-grid' });
  for (const [v, text] of ticks) {
    const yy = y(v);
    grid.append(
      svg('line', { x1: left, x2: WIDTH - MARGIN.right, y1: yy, y2: yy }),
      svg('text', { x: left - 8, y: yy + 4, 'text-anchor': 'end' }, text),
    );
  }
  root.append(grid);
  const band = plotW / Math.max(1, buckets.length);
  const axis = svg('g', { class: 'chart-axis' });
  axis.append(
    svg('line', {
      x1: left, x2: WIDTH - MARGIN.right,
      y1: MARGIN.top + plotH, y2: MARGIN.top + plotH,
    }),
  );
  for (const i of labelIndexes(buckets.length, Math.max(2, Math.floor(plotW / 90)))) {
    axis.append(
      svg('text', {
        x: left + band * (i + 0.5),
        y: height - 10,
        'text-anchor': 'middle',
      }, bucketLabel(buckets[i], i)),
    );
  }
  root.append(axis);
  return { root, y, band, plotH, left };
}

function legend(series) {
  const list = html('ul', 'chart-legend');
  series.forEach((s, i) => {
    const item = html('li');
    const swatch = html('span', 'swatch');
    swatch.setAttribute('aria-hidden', 'true');
    swatch.style.backgroundColor = s.color || PALETTE[i % PALETTE.length];
    item.append(swatch, document.createTextNode(s.label));
    list.append(item);
  });
  return list;
}

/**
 * The chart's <figure>: a title, an area that `draw(width)` fills with an SVG as soon as the
 * area is on the page (and again when its width changes), and a legend.
 */
function figure({ title, series, empty, emptyText, showLegend, height, draw }) {
  const fig = html('figure', 'chart');
  fig.append(html('figcaption', 'chart-title', title));
  if (empty) {
    fig.append(html('p', 'chart-empty', emptyText || 'No data in this range.'));
    return fig;
  }
  const area = html('div', 'chart-area');
  area.style.height = `${height}px`;
  fig.append(area);
  let drawn = 0;
  const render = (width) => {
    const w = Math.max(240, Math.floor(width));
    if (Math.abs(w - drawn) < 2) return;
    drawn = w;
    area.replaceChildren(draw(w));
  };
  if (typeof ResizeObserver === 'function') {
    const observer = new ResizeObserver((entries) => {
      if (!area.isConnected) {
        observer.disconnect();
        return;
      }
      const width = entries[0].contentRect.width;
      // Drawing inside the callback would be measured again in the same frame: defer it.
      if (width > 0) requestAnimationFrame(() => render(width));
    });
    observer.observe(area);
  } else {
    render(FALLBACK_WIDTH);
  }
  if (showLegend || series.length > 1) fig.append(legend(series));
  return fig;
}

/**
 * Bars over time, one stack per bucket, one segment per series.
 * @param {object} o
 * @param {string} o.title
 * @param {number[]} o.buckets bucket start times (ms)
 * @param {{label: string, values: number[], color?: string}[]} o.series values per bucket
 * @param {(v: number) => string} o.format axis and tooltip values
 * @param {(t: number, i: number) => string} o.bucketLabel short x-axis label
 * @param {(t: number) => string} o.bucketTitle full bucket name for tooltips
 */
export function stackedBarChart({ title, buckets, series, format, bucketLabel, bucketTitle, height = 220, emptyText, showLegend = false }) {
  const totals = buckets.map((_, i) => series.reduce((sum, s) => sum + (s.values[i] || 0), 0));
  const peak = Math.max(0, ...totals);
  const { max, step } = niceScale(peak);
  const label = `${title}: ${series.length} series over ${buckets.length} periods, highest ${format(peak)}.`;
  const draw = (width) => {
    const { root, y, band, left } = frame({ width, height, yMax: max, step, format, buckets, bucketLabel, label });
    const barW = Math.max(1, Math.min(48, band * 0.72));
    const bars = svg('g', { class: 'chart-bars' });
    buckets.forEach((t, i) => {
      let base = 0;
      const x = left + band * i + (band - barW) / 2;
      series.forEach((s, k) => {
        const v = s.values[i] || 0;
        if (v <= 0) return;
        const top = y(base + v);
        const bottom = y(base);
        const parts = series.length > 1 ? `${s.label}: ${format(v)}` : format(v);
        bars.append(
          svg('rect', {
            x: x.toFixed(2),
            y: top.toFixed(2),
            width: barW.toFixed(2),
            height: Math.max(0.5, bottom - top).toFixed(2),
            fill: s.color || PALETTE[k % PALETTE.length],
          }, svg('title', {}, `${bucketTitle(t)} — ${parts}`)),
        );
        base += v;
      });
    });
    root.append(bars);
    return root;
  };
  return figure({ title, series, empty: peak <= 0, emptyText, showLegend, height, draw });
}

/**
 * Lines over time; a null value leaves a gap.
 * @param {object} o as stackedBarChart, with `values` holding numbers or null
 * @param {number} [o.yMax] a fixed top of the axis (1 for ratios)
 */
export function lineChart({ title, buckets, series, format, bucketLabel, bucketTitle, yMax, height = 220, emptyText, showLegend = false }) {
  const finite = (v) => v !== null && v !== undefined && Number.isFinite(v);
  const values = series.flatMap((s) => s.values.filter(finite));
  const peak = Math.max(0, ...values);
  const scale = yMax ? { max: yMax, step: yMax / 4 } : niceScale(peak);
  const label = `${title}: ${series.map((s) => s.label).join(', ')} over ${buckets.length} periods.`;
  const draw = (width) => {
    const { root, y, band, left } = frame({ width, height, yMax: scale.max, step: scale.step, format, buckets, bucketLabel, label });
    const layer = svg('g', { class: 'chart-lines' });
    series.forEach((s, k) => {
      const color = s.color || PALETTE[k % PALETTE.length];
      let path = '';
      let open = false;
      const dots = svg('g', { fill: color });
      buckets.forEach((t, i) => {
        const v = s.values[i];
        if (!finite(v)) {
          open = false;
          return;
        }
        const x = left + band * (i + 0.5);
        const yy = y(v);
        path += `${open ? 'L' : 'M'}${x.toFixed(2)} ${yy.toFixed(2)} `;
        open = true;
        dots.append(
          svg('circle', { cx: x.toFixed(2), cy: yy.toFixed(2), r: band < 6 ? 1.5 : 3 },
            svg('title', {}, `${bucketTitle(t)} — ${s.label}: ${format(v)}`)),
        );
      });
      if (path) {
        layer.append(svg('path', { d: path.trim(), fill: 'none', stroke: color, 'stroke-width': 2, 'stroke-linejoin': 'round' }));
      }
      layer.append(dots);
    });
    root.append(layer);
    return root;
  };
  return figure({ title, series, empty: values.length === 0, emptyText, showLegend, height, draw });
}
