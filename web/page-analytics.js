// The Analytics page (#/analytics): usage over a time range, by hour or day, grouped by one
// dimension, as charts and totals. Its usage figures and series are also the overview's.

import * as api from './api.js';
import { lineChart, stackedBarChart } from './charts.js';
import {
  $, axisUsd, bucketStarts, card, dateFormat, dateTimeFormat, DAY_MS, dayFormat, dayHourFormat,
  field, FieldError, fill, fmtCompact, fmtInt, fmtMs, fmtPct, formatUsd, formValues, h, HOUR_MS,
  hourFormat, isoDate, keyLabel, loadNames, makeForm, pageHeader, parseDateInput, table,
  utcOffsetMinutes,
} from './ui.js';

export const FIGURES = `requests errors inputTokens outputTokens costUsd cacheHits cachedTokens savedUsd latencyMsAvg latencyMsP50 latencyMsP95`;

export function emptyFigures() {
  return { requests: 0, errors: 0, inputTokens: 0, outputTokens: 0, costUsd: '0', cacheHits: 0, cachedTokens: 0, savedUsd: '0', latencyMsAvg: null, latencyMsP50: null, latencyMsP95: null };
}

export const ratio = (part, whole) => (whole > 0 && part !== null && part !== undefined ? part / whole : null);

/**
 * Chart series from usageSeries points: one per group in `order` (the costliest first), the
 * rest summed as "Other" past `limit` groups.
 */
export function groupSeries(points, order, pick, buckets, label, limit = 8) {
  const index = new Map(buckets.map((t, i) => [t, i]));
  const keys = [...order];
  for (const p of points) if (!keys.includes(p.key)) keys.push(p.key);
  const shown = keys.slice(0, limit);
  const series = shown.map((key) => ({ key, label: label(key), values: buckets.map(() => 0) }));
  const other = { key: '__other', label: 'Other', values: buckets.map(() => 0) };
  for (const p of points) {
    const i = index.get(p.bucketStart);
    if (i === undefined) continue;
    const target = series.find((s) => s.key === p.key) || other;
    target.values[i] += pick(p.figures) || 0;
  }
  if (keys.length > limit) series.push(other);
  return series;
}

const RANGES = [
  { value: '24h', label: 'Last 24 hours', days: 1 },
  { value: '7d', label: 'Last 7 days', days: 7 },
  { value: '30d', label: 'Last 30 days', days: 30 },
  { value: '90d', label: 'Last 90 days', days: 90 },
  { value: 'custom', label: 'Custom dates' },
];

const DIMENSIONS = [
  { value: '', label: 'Nothing (totals)', column: 'All' },
  { value: 'MODEL', label: 'Model', column: 'Model' },
  { value: 'PROVIDER', label: 'Provider', column: 'Provider' },
  { value: 'TEAM', label: 'Team', column: 'Team' },
  { value: 'KEY', label: 'Key', column: 'Key' },
  { value: 'END_USER', label: 'End user', column: 'End user' },
  { value: 'GUARDRAIL', label: 'Guardrail action', column: 'Guardrail action' },
  { value: 'TAG', label: 'Tag', column: 'Tag value' },
];

/** The hour bucket covers ranges up to this many days (the server's limit). */
const MAX_HOUR_RANGE_DAYS = 31;

/** Kept across visits of the page. */
const analyticsState = { range: '7d', from: '', to: '', bucket: 'DAY', groupBy: 'MODEL', tagKey: '' };

function analyticsRange(s) {
  const now = Date.now();
  if (s.range !== 'custom') {
    const days = RANGES.find((r) => r.value === s.range).days;
    return { from: now - days * DAY_MS, to: now };
  }
  const from = parseDateInput(s.from);
  const toDay = parseDateInput(s.to);
  if (from === null) throw new FieldError('from', 'Choose the first day.');
  if (toDay === null) throw new FieldError('to', 'Choose the last day.');
  if (toDay < from) throw new FieldError('to', 'The last day comes before the first.');
  return { from, to: toDay + DAY_MS };
}

function bucketFormatters(bucket, from, to) {
  if (bucket === 'DAY') return { label: (t) => dayFormat.format(t), title: (t) => dateFormat.format(t) };
  const long = to - from > 2 * DAY_MS;
  return {
    label: (t) => (long ? dayHourFormat.format(t) : hourFormat.format(t)),
    title: (t) => `${dayHourFormat.format(t)} – ${hourFormat.format(t + HOUR_MS)}`,
  };
}

export function pageAnalytics(view) {
  const s = analyticsState;
  const results = h('div', { class: 'analytics-results' });
  const refresh = h('button', { type: 'button', class: 'btn', onclick: () => run() }, 'Refresh');
  const rangeField = field({ label: 'Time range', name: 'range', value: s.range, options: RANGES.map((r) => ({ value: r.value, label: r.label })) });
  const fromField = field({ label: 'From', name: 'from', type: 'date', value: s.from || isoDate(Date.now() - 13 * DAY_MS) });
  const toField = field({ label: 'To', name: 'to', type: 'date', value: s.to || isoDate(Date.now()) });
  const bucketField = field({ label: 'Bucket', name: 'bucket', value: s.bucket, options: [{ value: 'HOUR', label: 'Hour' }, { value: 'DAY', label: 'Day' }] });
  const groupField = field({ label: 'Group by', name: 'groupBy', value: s.groupBy, options: DIMENSIONS.map((d) => ({ value: d.value, label: d.label })) });
  const tagField = field({ label: 'Tag key', name: 'tagKey', value: s.tagKey, hint: 'The tag whose values to group by, such as feature.', attrs: { 'data-aliases': 'tagkey' } });
  const form = makeForm({
    submitLabel: 'Apply',
    className: 'form toolbar',
    onSubmit: async (values) => {
      analyticsRange(values);
      if (values.groupBy === 'TAG' && !values.tagKey) throw new FieldError('tagKey', 'Enter the tag key to group by.');
      Object.assign(s, values);
      await run(form);
    },
  }, rangeField, fromField, toField, bucketField, groupField, tagField);
  const control = (f) => $('input, select', f);

  function sync() {
    const custom = control(rangeField).value === 'custom';
    fromField.hidden = !custom;
    toField.hidden = !custom;
    tagField.hidden = control(groupField).value !== 'TAG';
    let days = MAX_HOUR_RANGE_DAYS + 1;
    try {
      const r = analyticsRange({ ...s, ...formValues(form) });
      days = (r.to - r.from) / DAY_MS;
    } catch {
      // Incomplete custom dates: keep hours allowed until they are chosen.
      days = 0;
    }
    const hourOption = $('option[value="HOUR"]', control(bucketField));
    hourOption.disabled = days > MAX_HOUR_RANGE_DAYS;
    if (hourOption.disabled && control(bucketField).value === 'HOUR') control(bucketField).value = 'DAY';
  }

  for (const f of [rangeField, bucketField, groupField]) {
    control(f).addEventListener('change', () => {
      if (f === rangeField && control(rangeField).value !== 'custom') {
        control(bucketField).value = control(rangeField).value === '24h' ? 'HOUR' : 'DAY';
      }
      sync();
      const values = formValues(form);
      // Wait for the Apply button while dates or a tag key still need typing.
      if (f === rangeField && values.range === 'custom') return;
      if (values.range === 'custom' && (!values.from || !values.to)) return;
      if (values.groupBy === 'TAG' && !values.tagKey) return;
      form.requestSubmit();
    });
  }
  sync();

  view.append(pageHeader('Analytics', refresh), card('What to show', form), results);
  let names = null;

  async function run(onForm) {
    let range;
    try {
      range = analyticsRange(s);
    } catch (error) {
      if (onForm) throw error;
      return;
    }
    if (s.groupBy === 'TAG' && !s.tagKey) {
      if (onForm) throw new FieldError('tagKey', 'Enter the tag key to group by.');
      return;
    }
    const offset = utcOffsetMinutes();
    const overall = { from: range.from, to: range.to, bucket: s.bucket, utcOffsetMinutes: offset };
    const grouped = s.groupBy ? { ...overall, groupBy: s.groupBy, ...(s.groupBy === 'TAG' ? { tagKey: s.tagKey } : {}) } : overall;
    const request = api.gql(`query Analytics($overall: UsageInput!, $grouped: UsageInput!, $withGroups: Boolean!) {
        overallSeries: usageSeries(input: $overall) { bucketStart key figures { ${FIGURES} } }
        overallTotals: usageTotals(input: $overall) { key figures { ${FIGURES} } }
        groupSeries: usageSeries(input: $grouped) @include(if: $withGroups) { bucketStart key figures { requests costUsd } }
        groupTotals: usageTotals(input: $grouped) @include(if: $withGroups) { key figures { ${FIGURES} } }
      }`, { overall, grouped, withGroups: Boolean(s.groupBy) });
    if (onForm) {
      // Input errors belong on the form: wait for the answer before drawing.
      try {
        await request;
      } catch (error) {
        if (error.code === 'BAD_USER_INPUT') throw error;
      }
    }
    await fill(results, async () => {
      const data = await request;
      if ((s.groupBy === 'TEAM' || s.groupBy === 'KEY') && !names) names = await loadNames();
      return draw(data, range, offset);
    });
  }

  function groupLabel(key) {
    if (!s.groupBy) return 'All';
    if (key === null || key === undefined || key === '') return s.groupBy === 'GUARDRAIL' ? '(no action)' : '(none)';
    if (s.groupBy === 'TEAM') return (names && names.team.get(key)) || key;
    if (s.groupBy === 'KEY') return keyLabel(names, key);
    return key;
  }

  function draw(data, range, offset) {
    const buckets = bucketStarts(range.from, range.to, s.bucket, offset);
    const fmt = bucketFormatters(s.bucket, range.from, range.to);
    const at = new Map(data.overallSeries.map((p) => [p.bucketStart, p.figures]));
    const overall = buckets.map((t) => at.get(t) || null);
    const num = (pick) => overall.map((f) => (f ? pick(f) : 0));
    const rate = (pick) => overall.map((f) => (f && f.requests > 0 && pick(f) !== null && pick(f) !== undefined ? pick(f) / f.requests : null));
    const common = { buckets, bucketLabel: fmt.label, bucketTitle: fmt.title };
    const byGroup = (pick) => (s.groupBy
      ? groupSeries(data.groupSeries, data.groupTotals.map((g) => g.key), pick, buckets, groupLabel)
      : [{ label: 'All', values: num(pick) }]);
    const dimension = DIMENSIONS.find((d) => d.value === s.groupBy);
    const charts = h('div', { class: 'chart-grid' },
      stackedBarChart({ ...common, title: `Cost${s.groupBy ? ` by ${dimension.label.toLowerCase()}` : ''}`, series: byGroup((f) => Number(f.costUsd)), format: axisUsd, showLegend: Boolean(s.groupBy), emptyText: 'No spend in this range.' }),
      stackedBarChart({ ...common, title: `Requests${s.groupBy ? ` by ${dimension.label.toLowerCase()}` : ''}`, series: byGroup((f) => f.requests), format: fmtCompact, showLegend: Boolean(s.groupBy), emptyText: 'No requests in this range.' }),
      stackedBarChart({ ...common, title: 'Tokens', series: [{ label: 'Input', values: num((f) => f.inputTokens) }, { label: 'Output', values: num((f) => f.outputTokens) }], format: fmtCompact, emptyText: 'No tokens in this range.' }),
      lineChart({ ...common, title: 'Cache hit rate', series: [{ label: 'Hit rate', values: rate((f) => f.cacheHits) }], format: (v) => fmtPct(v, 0), yMax: 1 }),
      stackedBarChart({ ...common, title: 'Savings from the cache', series: [{ label: 'Saved', values: num((f) => Number(f.savedUsd || 0)), color: '#1a9e77' }], format: axisUsd, emptyText: 'Nothing saved by the cache in this range.' }),
      lineChart({ ...common, title: 'Error rate', series: [{ label: 'Error rate', values: rate((f) => f.errors), color: '#d6336c' }], format: (v) => fmtPct(v, 0), yMax: 1 }),
      lineChart({
        ...common,
        title: 'Latency',
        series: [
          { label: 'p50', values: overall.map((f) => (f ? f.latencyMsP50 : null)) },
          { label: 'p95', values: overall.map((f) => (f ? f.latencyMsP95 : null)) },
        ],
        format: fmtMs,
      }));
    const total = data.overallTotals[0] ? data.overallTotals[0].figures : emptyFigures();
    const rows = [
      ...(s.groupBy ? data.groupTotals.map((g) => ({ label: groupLabel(g.key), figures: g.figures })) : []),
      { label: s.groupBy ? 'All' : 'All requests', figures: total, total: true },
    ];
    const totals = table({
      caption: 'Totals per group',
      rows,
      rowAttrs: (r) => (r.total ? { class: 'total-row' } : {}),
      columns: [
        { label: dimension.column, cell: (r) => (r.total ? h('strong', {}, r.label) : r.label) },
        { label: 'Requests', numeric: true, cell: (r) => fmtInt(r.figures.requests) },
        { label: 'Errors', numeric: true, cell: (r) => `${fmtInt(r.figures.errors)} (${fmtPct(ratio(r.figures.errors, r.figures.requests))})` },
        { label: 'Input tokens', numeric: true, cell: (r) => fmtInt(r.figures.inputTokens) },
        { label: 'Output tokens', numeric: true, cell: (r) => fmtInt(r.figures.outputTokens) },
        { label: 'Cost', numeric: true, cell: (r) => formatUsd(r.figures.costUsd) },
        { label: 'Cache hits', numeric: true, cell: (r) => fmtInt(r.figures.cacheHits) },
        { label: 'Saved', numeric: true, cell: (r) => formatUsd(r.figures.savedUsd) },
        { label: 'Latency p50', numeric: true, cell: (r) => fmtMs(r.figures.latencyMsP50) },
        { label: 'Latency p95', numeric: true, cell: (r) => fmtMs(r.figures.latencyMsP95) },
      ],
    });
    return [
      charts,
      card('Totals', h('p', { class: 'muted' }, `${dateTimeFormat.format(range.from)} – ${dateTimeFormat.format(range.to)}, widened to whole ${s.bucket === 'DAY' ? 'days' : 'hours'}.`), totals),
    ];
  }

  run();
}
