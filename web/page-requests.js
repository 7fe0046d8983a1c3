// The Request log page (#/requests): requests, newest first, filtered and paged; and one
// request's details (#/requests/<eventId>).

import * as api from './api.js';
import {
  $, announce, badge, card, dateTimeSecondsFormat, DAY_MS, emptyEl, field, fill, fmtInt, fmtMs,
  formatUsd, h, HOUR_MS, keyLabel, loadNames, makeForm, optionalInt, pageHeader, parseTag, timeEl,
} from './ui.js';

const REQUEST_RANGES = [
  { value: '1h', label: 'Last hour', ms: HOUR_MS },
  { value: '24h', label: 'Last 24 hours', ms: DAY_MS },
  { value: '7d', label: 'Last 7 days', ms: 7 * DAY_MS },
  { value: '30d', label: 'Last 30 days', ms: 30 * DAY_MS },
  { value: 'all', label: 'All time', ms: null },
];

const requestFilters = { range: '24h', outcome: '', status: '', model: '', keyId: '', endUser: '', tag: '', guardrail: '' };

/** What a guardrail can do, from the most to the least severe (the API's GuardrailOutcome). */
const GUARDRAIL_OUTCOMES = [
  { value: 'BLOCKED', label: 'Blocked', kind: 'danger' },
  { value: 'MODIFIED', label: 'Modified', kind: 'warn' },
  { value: 'REDACTED', label: 'Redacted', kind: 'warn' },
  { value: 'TRUNCATED', label: 'Truncated', kind: 'warn' },
  { value: 'FLAGGED', label: 'Flagged', kind: '' },
  { value: 'RESTORED', label: 'Restored', kind: '' },
  { value: 'LOGGED', label: 'Logged', kind: '' },
];
/** Records seen in the log, so that a detail opens without another query. */
const requestCache = new Map();

function guardrailBadge(outcome) {
  const known = GUARDRAIL_OUTCOMES.find((o) => o.value === outcome);
  return outcome ? badge(known ? known.label : outcome, known ? known.kind : '') : '—';
}

/** One guardrail action as text: what was done, by which policy's rule, to which entity types. */
function guardrailActionText(a) {
  const known = GUARDRAIL_OUTCOMES.find((o) => o.value === a.taken);
  const entities = a.entities.length ? ` (${a.entities.join(', ')})` : '';
  return `${known ? known.label : a.taken} by ${a.policy} · ${a.rule}${entities}`;
}

function statusBadge(status) {
  const kind = status < 400 ? 'success' : status === 429 ? 'warn' : 'danger';
  return badge(String(status), kind);
}

export function pageRequests(view) {
  const f = requestFilters;
  const results = h('div', {});
  let names = null;
  let cursor = null;
  let filter = {};
  const refresh = h('button', { type: 'button', class: 'btn', onclick: () => run() }, 'Refresh');
  const keyField = field({ label: 'Key', name: 'keyId', value: f.keyId, options: [{ value: '', label: 'Any key' }] });
  const form = makeForm({
    submitLabel: 'Apply filters',
    className: 'form toolbar',
    onSubmit: async (values) => {
      filter = buildFilter(values);
      Object.assign(f, values);
      await run();
    },
  },
  field({ label: 'Time range', name: 'range', value: f.range, options: REQUEST_RANGES.map((r) => ({ value: r.value, label: r.label })) }),
  field({ label: 'Outcome', name: 'outcome', value: f.outcome, options: [{ value: '', label: 'Any' }, { value: 'failed', label: 'Failed only' }, { value: 'ok', label: 'Successful only' }] }),
  field({ label: 'Status', name: 'status', type: 'number', value: f.status, hint: 'An exact HTTP status, such as 429.', attrs: { min: '100', max: '599', inputmode: 'numeric' } }),
  field({ label: 'Model', name: 'model', value: f.model }),
  keyField,
  field({ label: 'End user', name: 'endUser', value: f.endUser }),
  field({ label: 'Tag', name: 'tag', value: f.tag, hint: 'key=value' }),
  field({ label: 'Guardrail', name: 'guardrail', value: f.guardrail, options: [{ value: '', label: 'Any' }, ...GUARDRAIL_OUTCOMES.map((o) => ({ value: o.value, label: o.label }))] }));

  /** The RequestFilter of the form's values; throws a FieldError for one that does not parse. */
  function buildFilter(f) {
    const next = {};
    const range = REQUEST_RANGES.find((r) => r.value === f.range);
    if (range && range.ms) next.from = Date.now() - range.ms;
    if (f.outcome) next.failed = f.outcome === 'failed';
    const status = optionalInt(f.status, 'status', { min: 100, max: 599 });
    if (status !== null) next.status = status;
    if (f.model) next.model = f.model;
    if (f.keyId) next.keyId = f.keyId;
    if (f.endUser) next.endUser = f.endUser;
    const tag = parseTag(f.tag);
    if (tag) next.tag = tag;
    if (f.guardrail) next.guardrail = f.guardrail;
    return next;
  }

  const moreButton = h('button', { type: 'button', class: 'btn', onclick: () => more() }, 'Load more');
  const tbody = h('tbody', {});
  const countEl = h('p', { class: 'muted', 'aria-live': 'polite' });

  function row(r) {
    return h('tr', { dataset: { eventId: r.eventId } },
      h('td', { 'data-label': 'Time' }, h('a', { href: `#/requests/${encodeURIComponent(r.eventId)}`, 'aria-label': `Request at ${dateTimeSecondsFormat.format(r.time)}, status ${r.status}, model ${r.requestedModel}` }, timeEl(r.time, 'short'))),
      h('td', { 'data-label': 'Status' }, statusBadge(r.status)),
      h('td', { 'data-label': 'Model' }, r.requestedModel),
      h('td', { 'data-label': 'Provider' }, r.provider ? `${r.provider}${r.providerModel ? ` / ${r.providerModel}` : ''}` : '—'),
      h('td', { 'data-label': 'Key' }, r.keyId ? keyLabel(names, r.keyId) : '—'),
      h('td', { 'data-label': 'End user' }, r.endUser || '—'),
      h('td', { class: 'num', 'data-label': 'Tokens in / out' }, `${fmtInt(r.inputTokens)} / ${fmtInt(r.outputTokens)}`),
      h('td', { class: 'num', 'data-label': 'Cost' }, formatUsd(r.costUsd)),
      h('td', { class: 'num', 'data-label': 'Latency' }, fmtMs(r.latencyMs)),
      h('td', { 'data-label': 'Cache' }, r.cache),
      h('td', { 'data-label': 'Guardrail' }, guardrailBadge(r.guardrail)));
  }

  async function page(after) {
    const data = await api.gql(`query Requests($filter: RequestFilter, $after: String) {
        requests(filter: $filter, first: 50, after: $after) { items { ${REQUEST_FIELDS} } nextCursor } }`, { filter, after });
    for (const r of data.requests.items) requestCache.set(r.eventId, r);
    cursor = data.requests.nextCursor;
    return data.requests.items;
  }

  function showCount() {
    const n = tbody.children.length;
    countEl.textContent = `${fmtInt(n)} request${n === 1 ? '' : 's'} shown${cursor ? '' : ', no more'}.`;
    moreButton.hidden = !cursor;
  }

  async function run() {
    await fill(results, async () => {
      if (!names) names = await loadNames();
      const select = $('select', keyField);
      if (select.options.length === 1) {
        for (const k of names.keys) select.append(h('option', { value: k.id }, `${k.name} (${k.displayPrefix})`));
        select.value = f.keyId;
      }
      const items = await page(null);
      tbody.replaceChildren(...items.map(row));
      if (!items.length) return emptyEl('No requests match these filters.');
      const wrap = h('div', { class: 'table-wrap' },
        h('table', { class: 'data cards' },
          h('caption', { class: 'visually-hidden' }, 'Requests, newest first'),
          h('thead', {}, h('tr', {}, ['Time', 'Status', 'Model', 'Provider', 'Key', 'End user', 'Tokens in / out', 'Cost', 'Latency', 'Cache', 'Guardrail']
            .map((label) => h('th', { scope: 'col', class: ['Tokens in / out', 'Cost', 'Latency'].includes(label) ? 'num' : null }, label)))),
          tbody));
      showCount();
      return [countEl, wrap, h('div', { class: 'load-more' }, moreButton)];
    });
  }

  async function more() {
    moreButton.disabled = true;
    try {
      const items = await page(cursor);
      tbody.append(...items.map(row));
      showCount();
    } catch (error) {
      if (!error.unauthenticated) announce(error.message, 'error');
    } finally {
      moreButton.disabled = false;
    }
  }

  view.append(pageHeader('Request log', refresh), card('Filters', form), results);
  filter = buildFilter(f);
  run();
}

const REQUEST_FIELDS = `eventId requestId time teamId keyId userId endUser tags { key value } endpoint requestedModel
  provider providerModel inputTokens outputTokens cachedTokens usageEstimated costUsd savedUsd latencyMs
  timeToFirstTokenMs status error cache attempts stream guardrail guardrailActions { policy rule taken entities }`;

/** Finds one request: from the log already loaded, or from the API. */
async function findRequest(eventId) {
  if (requestCache.has(eventId)) return requestCache.get(eventId);
  const data = await api.gql(`query Request($id: String!) { request(eventId: $id) { ${REQUEST_FIELDS} } }`, { id: eventId });
  if (data.request) requestCache.set(eventId, data.request);
  return data.request;
}

export function pageRequestDetail(view, eventId) {
  const body = h('div', {});
  view.append(
    h('p', { class: 'breadcrumb' }, h('a', { href: '#/requests' }, '← Request log')),
    pageHeader('Request'),
    body);
  fill(body, async () => {
    const [r, names, members] = await Promise.all([
      findRequest(eventId),
      loadNames(),
      api.gql('query People { members { userId email } }').then((d) => new Map(d.members.map((m) => [m.userId, m.email])), () => new Map()),
    ]);
    if (!r) return emptyEl('No request with this id in the log. It may be older than the retention, or not written yet.');
    const yesNo = (b) => (b ? 'Yes' : 'No');
    const rows = [
      ['Event ID', h('code', {}, r.eventId)],
      ['Request ID', h('code', {}, r.requestId)],
      ['Time', timeEl(r.time, 'seconds')],
      ['Status', statusBadge(r.status)],
      ['Error', r.error || '—'],
      ['Endpoint', r.endpoint],
      ['Requested model', r.requestedModel],
      ['Provider', r.provider || '—'],
      ['Provider model', r.providerModel || '—'],
      ['Team', r.teamId ? (names.team.get(r.teamId) || r.teamId) : '—'],
      ['Key', r.keyId ? keyLabel(names, r.keyId) : '—'],
      ['User', r.userId ? (members.get(r.userId) || r.userId) : '—'],
      ['End user', r.endUser || '—'],
      ['Tags', r.tags.length ? r.tags.map((t) => `${t.key}=${t.value}`).join(', ') : '—'],
      ['Input tokens', fmtInt(r.inputTokens)],
      ['Output tokens', fmtInt(r.outputTokens)],
      ['Cached tokens', fmtInt(r.cachedTokens)],
      ['Usage estimated', yesNo(r.usageEstimated)],
      ['Cost', r.costUsd === null ? 'No price for this model' : formatUsd(r.costUsd)],
      ['Saved by the cache', formatUsd(r.savedUsd)],
      ['Latency', fmtMs(r.latencyMs)],
      ['Time to first token', fmtMs(r.timeToFirstTokenMs)],
      ['Cache', r.cache],
      ['Attempts', fmtInt(r.attempts)],
      ['Streamed', yesNo(r.stream)],
      ['Guardrail', guardrailBadge(r.guardrail)],
      ['Guardrail actions', r.guardrailActions.length
        ? h('ul', { class: 'guardrail-actions' }, r.guardrailActions.map((a) => h('li', {}, guardrailActionText(a))))
        : '—'],
    ];
    return card(`${r.requestedModel} · ${r.status}`,
      h('dl', { class: 'detail-list' }, rows.map(([label, value]) => h('div', {}, h('dt', {}, label), h('dd', {}, value)))));
  });
}
