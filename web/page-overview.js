// The Overview page (#/overview): this month's figures, the cost by model of the last 7 days
// and the budgets nearest their limits.

import * as api from './api.js';
import { stackedBarChart } from './charts.js';
import {
  axisUsd, bucketStarts, can, card, dateFormat, DAY_MS, dayFormat, emptyEl, fill, fmtInt, fmtMs,
  fmtPct, formatUsd, h, localMidnight, pageHeader, plural, stat, titleCase, utcOffsetMinutes,
} from './ui.js';
import { BUDGET_FIELDS, budgetTargetLabel, budgetUsage } from './page-budgets.js';
import { emptyFigures, FIGURES, groupSeries, ratio } from './page-analytics.js';

export function pageOverview(view) {
  const stats = h('div', { class: 'stats' });
  const chart = h('div', {});
  const budgets = h('div', {});
  const refresh = h('button', { type: 'button', class: 'btn', onclick: load }, 'Refresh');
  const monthStart = new Date(new Date().getFullYear(), new Date().getMonth(), 1).getTime();
  view.append(
    pageHeader('Overview', refresh),
    card(`This month, since ${dateFormat.format(monthStart)}`, stats),
    h('div', { class: 'grid-2' },
      card('Cost by model, last 7 days', chart),
      card('Budgets near their limits', budgets)));

  async function load() {
    const now = Date.now();
    const offset = utcOffsetMinutes();
    const weekFrom = localMidnight(new Date(now)) - 6 * DAY_MS;
    const month = { from: monthStart, to: now, bucket: 'DAY', utcOffsetMinutes: offset };
    const week = { from: weekFrom, to: now, bucket: 'DAY', utcOffsetMinutes: offset, groupBy: 'MODEL' };
    const request = api.gql(`query Overview($month: UsageInput!, $week: UsageInput!, $weekTotals: UsageInput!) {
        month: usageTotals(input: $month) { key figures { ${FIGURES} } }
        week: usageSeries(input: $week) { bucketStart key figures { costUsd } }
        weekModels: usageTotals(input: $weekTotals) { key figures { costUsd } }
        budgets { ${BUDGET_FIELDS} }
        teams { id name }
        keys { id name displayPrefix status }
      }`, { month, week, weekTotals: week });
    await Promise.all([
      fill(stats, async () => {
        const data = await request;
        const f = data.month[0] ? data.month[0].figures : emptyFigures();
        return [
          stat('Cost', formatUsd(f.costUsd)),
          stat('Requests', fmtInt(f.requests), `${fmtInt(f.inputTokens + f.outputTokens)} tokens`),
          stat('Error rate', fmtPct(ratio(f.errors, f.requests)), plural(f.errors, 'error')),
          stat('Cache hit rate', fmtPct(ratio(f.cacheHits, f.requests)), plural(f.cacheHits, 'hit')),
          stat('Savings', formatUsd(f.savedUsd ?? '0'), 'from cache hits'),
          stat('Latency p50', fmtMs(f.latencyMsP50), `p95 ${fmtMs(f.latencyMsP95)}`),
        ];
      }),
      fill(chart, async () => {
        const data = await request;
        const buckets = bucketStarts(weekFrom, now, 'DAY', offset);
        const groups = groupSeries(data.week, data.weekModels.map((g) => g.key), (f) => Number(f.costUsd), buckets, (k) => k ?? '(none)');
        return stackedBarChart({
          title: 'Cost per day',
          buckets,
          series: groups,
          format: axisUsd,
          bucketLabel: (t) => dayFormat.format(t),
          bucketTitle: (t) => dateFormat.format(t),
          showLegend: true,
          emptyText: 'No spend in the last 7 days.',
        });
      }),
      fill(budgets, async () => {
        const data = await request;
        const names = {
          team: new Map(data.teams.map((t) => [t.id, t.name])),
          key: new Map(data.keys.map((k) => [k.id, k])),
        };
        const near = data.budgets
          .map((b) => ({ b, r: Number(b.limitUsd) > 0 ? Number(b.spentUsd) / Number(b.limitUsd) : 1 }))
          .filter(({ b, r }) => r * 100 >= Math.min(80, ...(b.thresholds.length ? b.thresholds : [80])))
          .sort((x, y) => y.r - x.r)
          .slice(0, 5);
        if (!data.budgets.length) {
          return emptyEl('No budgets yet.', can('ADMIN') ? h('a', { href: '#/budgets', class: 'btn' }, 'Create a budget') : null);
        }
        if (!near.length) return emptyEl('Every budget is below its first alert threshold.', h('a', { href: '#/budgets' }, 'All budgets'));
        return [
          h('ul', { class: 'budget-list' }, near.map(({ b }) => h('li', {},
            h('p', { class: 'budget-name' }, `${titleCase(b.scope)} · ${budgetTargetLabel(b, names)}`, h('span', { class: 'muted' }, ` · ${b.period}`)),
            budgetUsage(b)))),
          h('p', {}, h('a', { href: '#/budgets' }, 'All budgets')),
        ];
      }),
    ]);
  }
  load();
}
