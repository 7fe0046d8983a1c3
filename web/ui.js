// What the dashboard's pages share: the element builder `h()`, formatting of money, numbers
// and times, the viewer and roles, page headers, cards, tables, forms, dialogs, parsing of form
// input and names for ids.
//
// Pages build their DOM with `h()` and put server data in with textContent only (never as
// HTML), so the strict Content-Security-Policy holds: no inline scripts, no inline styles
// (element.style from code is CSSOM, which the policy allows).

import * as api from './api.js';

// ---------------------------------------------------------------------------------------------
// DOM helpers

let uid = 0;
const nextId = (prefix) => `${prefix}-${++uid}`;

/**
 * Creates an element. `attrs`: `class`, `for`, `dataset`, `value`, booleans (present when
 * true), functions under `on…` names become listeners; anything else is an attribute.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  let value;
  for (const [name, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (name === 'style') throw new Error('inline styles break the Content-Security-Policy');
    if (name.startsWith('on') && typeof v === 'function') el.addEventListener(name.slice(2).toLowerCase(), v);
    else if (name === 'class') el.className = v;
    else if (name === 'for') el.htmlFor = v;
    else if (name === 'dataset') Object.assign(el.dataset, v);
    else if (name === 'value') value = v;
    else if (v === true) el.setAttribute(name, '');
    else el.setAttribute(name, String(v));
  }
  append(el, children);
  if (value !== undefined) el.value = value;
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** A polite message in the live region, gone after a few seconds. */
export function announce(message, kind = 'info') {
  const region = $('#status');
  const toast = h('div', { class: `toast ${kind}` }, message);
  region.append(toast);
  while (region.children.length > 3) region.firstElementChild.remove();
  setTimeout(() => toast.remove(), kind === 'error' ? 8000 : 4000);
}

// ---------------------------------------------------------------------------------------------
// Formatting. Money arrives as exact decimal strings and is formatted as a string: no float
// ever touches a figure shown as money.

/** `"0.004158"` → `$0.004158`; at most 6 decimals (rounded half up), at least 2. */
export function formatUsd(value) {
  if (value === null || value === undefined || value === '') return '—';
  const match = /^\s*(-)?(\d*)(?:\.(\d*))?\s*$/.exec(String(value));
  if (!match) return String(value);
  let negative = Boolean(match[1]);
  let int = match[2] || '0';
  let frac = match[3] || '';
  const nonZero = /[1-9]/.test(int + frac);
  if (frac.length > 6) {
    const roundUp = frac[6] >= '5';
    frac = frac.slice(0, 6);
    if (roundUp) {
      const digits = (int + frac).split('');
      let i = digits.length - 1;
      while (i >= 0 && digits[i] === '9') digits[i--] = '0';
      if (i < 0) digits.unshift('1');
      else digits[i] = String(Number(digits[i]) + 1);
      const all = digits.join('');
      int = all.slice(0, all.length - 6);
      frac = all.slice(-6);
    }
  }
  frac = frac.replace(/0+$/, '').padEnd(2, '0');
  int = int.replace(/^0+(?=\d)/, '');
  const zero = !/[1-9]/.test(int + frac);
  if (zero && nonZero) return negative ? '> -$0.000001' : '< $0.000001';
  if (zero) negative = false;
  const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${negative ? '-' : ''}$${grouped}.${frac}`;
}

const intFormat = new Intl.NumberFormat();
export const fmtInt = (n) => (n === null || n === undefined ? '—' : intFormat.format(n));
const compactFormat = new Intl.NumberFormat(undefined, { notation: 'compact', maximumSignificantDigits: 3 });
export const fmtCompact = (n) => compactFormat.format(n);
export const axisUsd = (v) =>
  v === 0 ? '$0' : `$${new Intl.NumberFormat('en-US', { maximumSignificantDigits: 3, notation: v >= 1e4 ? 'compact' : 'standard' }).format(v)}`;

export function fmtPct(ratio, digits = 1) {
  if (ratio === null || ratio === undefined || !Number.isFinite(ratio)) return '—';
  return `${(ratio * 100).toFixed(digits).replace(/\.0+$/, '')}%`;
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

export const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
export const dateTimeSecondsFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
export const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
export const dayFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
export const hourFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const shortTimeFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
export const dayHourFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });

function fmtAgo(ms) {
  const seconds = Math.round((Date.now() - ms) / 1000);
  if (seconds < 60) return 'just now';
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return dateFormat.format(ms);
}

/** A <time> element; `style`: 'datetime', 'date', 'ago', 'short' or 'seconds'. */
export function timeEl(ms, style = 'datetime') {
  if (ms === null || ms === undefined) return '—';
  const text = {
    datetime: () => dateTimeFormat.format(ms),
    seconds: () => dateTimeSecondsFormat.format(ms),
    date: () => dateFormat.format(ms),
    ago: () => fmtAgo(ms),
    short: () => shortTimeFormat.format(ms),
  }[style]();
  return h('time', { datetime: new Date(ms).toISOString(), title: dateTimeSecondsFormat.format(ms) }, text);
}

export const plural = (n, word) => `${fmtInt(n)} ${word}${n === 1 ? '' : 's'}`;
export const titleCase = (s) => (s ? s[0].toUpperCase() + s.slice(1).toLowerCase() : s);

// ---------------------------------------------------------------------------------------------
// Time: buckets computed the way the server floors them (see UsageBucket in the schema).

export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

/** The browser's UTC offset in minutes east, rounded to 15 minutes as the API requires. */
export function utcOffsetMinutes() {
  return Math.round(-new Date().getTimezoneOffset() / 15) * 15;
}

function bucketFloor(t, bucket, offset) {
  const size = bucket === 'HOUR' ? HOUR_MS : DAY_MS;
  const shift = bucket === 'HOUR' ? 0 : offset * 60_000;
  return t - ((((t + shift) % size) + size) % size);
}

export function bucketStarts(from, to, bucket, offset) {
  const size = bucket === 'HOUR' ? HOUR_MS : DAY_MS;
  const out = [];
  for (let t = bucketFloor(from, bucket, offset); t < to; t += size) out.push(t);
  return out;
}

export function localMidnight(date) {
  return new Date(date.getFullYear(), date.getMonth(), date.getDate()).getTime();
}

/** `yyyy-mm-dd` of a local date, for date inputs. */
export function isoDate(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** Local midnight of a `yyyy-mm-dd` date input value. */
export function parseDateInput(value) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value || '');
  if (!match) return null;
  return new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3])).getTime();
}

// ---------------------------------------------------------------------------------------------
// State shared by pages

const RANK = { VIEWER: 0, MEMBER: 1, ADMIN: 2, OWNER: 3 };
const ROLES = ['VIEWER', 'MEMBER', 'ADMIN', 'OWNER'];
export const PERIODS = ['daily', 'weekly', 'monthly', 'lifetime'];

export const state = {
  /** `{ userId, email, role, organization: { id, name } }` of the session. */
  viewer: null,
  /** Where to go after logging in. */
  afterLogin: null,
};

/** Whether the viewer's role is at least `role`. */
export function can(role) {
  return Boolean(state.viewer) && RANK[state.viewer.role] >= RANK[role];
}

export function roleOptions(includeOwner) {
  return ROLES.filter((r) => includeOwner || r !== 'OWNER').map((r) => ({ value: r, label: titleCase(r) }));
}

// ---------------------------------------------------------------------------------------------
// Building blocks: page headers, cards, tables, states, forms, dialogs

export function pageHeader(title, ...actions) {
  return h('div', { class: 'page-header' },
    h('h1', { tabindex: '-1' }, title),
    actions.length ? h('div', { class: 'page-actions' }, actions) : null);
}

export function card(title, ...children) {
  const id = nextId('card');
  return h('section', { class: 'card', 'aria-labelledby': id },
    h('h2', { id }, title), children);
}

function loadingEl(text = 'Loading…') {
  return h('p', { class: 'loading' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), text);
}

export function emptyEl(text, ...actions) {
  return h('div', { class: 'empty' }, h('p', {}, text), actions);
}

export function errorEl(error, retry) {
  // A refusal for the viewer's role does not change on a retry.
  const forbidden = Boolean(error && error.forbidden);
  return h('div', { class: `alert ${forbidden ? 'warn' : 'error'}`, role: 'alert' },
    h('p', {}, (error && error.message) || String(error)),
    retry && !forbidden ? h('button', { type: 'button', class: 'btn', onclick: retry }, 'Try again') : null);
}

/**
 * Fills `container` with the result of `build()`, showing a loading state meanwhile and an
 * error (with a retry) when it fails.
 */
export async function fill(container, build) {
  container.setAttribute('aria-busy', 'true');
  container.replaceChildren(loadingEl());
  try {
    const content = await build();
    container.replaceChildren(...[content].flat().filter(Boolean));
  } catch (error) {
    if (error && error.unauthenticated) return;
    container.replaceChildren(errorEl(error, () => fill(container, build)));
    if (!(error instanceof api.ApiError)) reportBug(error);
  } finally {
    container.removeAttribute('aria-busy');
  }
}

export function reportBug(error) {
  // A bug in this file rather than an answer from the server: keep it visible to developers.
  setTimeout(() => {
    throw error;
  });
}

/**
 * A table that scrolls sideways on narrow screens, or becomes cards (`cards: true`).
 * columns: `{ label, cell(row) → node|string, numeric?, className? }`.
 */
export function table({ caption, columns, rows, empty = 'Nothing here yet.', cards = true, rowAttrs }) {
  if (!rows.length) return emptyEl(empty);
  return h('div', { class: 'table-wrap' },
    h('table', { class: cards ? 'data cards' : 'data' },
      caption ? h('caption', { class: 'visually-hidden' }, caption) : null,
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.numeric ? 'num' : null }, c.label)))),
      h('tbody', {}, rows.map((row) => h('tr', rowAttrs ? rowAttrs(row) : {},
        columns.map((c) => {
          const content = c.cell(row);
          // One child per cell, so that the card layout's label column stays put.
          return h('td', { class: [c.numeric ? 'num' : '', c.className || ''].join(' ').trim() || null, 'data-label': c.label },
            Array.isArray(content) ? h('div', {}, content) : content);
        }))))));
}

export function badge(text, kind = '') {
  return h('span', { class: `badge ${kind}` }, text);
}

/** A client-side validation error, placed like a server one. */
export class FieldError extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

/**
 * A labelled input. `options` makes a select (`[{ value, label }]`); `type: 'textarea'` a
 * textarea. `attrs` go on the control.
 */
export function field({ label, name, type = 'text', value, hint, required, options, attrs = {}, className }) {
  const id = nextId(`f-${name}`);
  const hintId = hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  const common = { id, name, required, 'aria-describedby': [hintId, errorId].filter(Boolean).join(' '), ...attrs };
  let control;
  const initial = value === undefined || value === null ? null : String(value);
  if (options) {
    control = h('select', common, options.map((o) => h('option', { value: o.value, selected: o.value === initial }, o.label)));
  } else if (type === 'textarea') {
    control = h('textarea', common, initial);
  } else {
    control = h('input', { type, ...common });
    if (initial !== null) control.defaultValue = initial;
  }
  if (initial !== null) control.value = initial;
  return h('div', { class: `field ${className || ''}`.trim() },
    h('label', { for: id }, label),
    control,
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
    h('p', { class: 'field-error', id: errorId, hidden: true }));
}

const normalizeField = (name) => String(name || '').replace(/^input\./, '').replace(/[^a-z0-9]/gi, '').toLowerCase();

function clearErrors(form) {
  for (const el of form.querySelectorAll('.field-error')) {
    el.hidden = true;
    el.textContent = '';
  }
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  const formError = $('.form-error', form);
  if (formError) {
    formError.hidden = true;
    formError.textContent = '';
  }
}

/** Shows an error next to the input it names (`field`/`param`), or at the form's foot. */
function showFormError(form, error) {
  const wanted = normalizeField(error.field);
  const control = wanted
    ? [...form.elements].find((el) => el.name && (normalizeField(el.name) === wanted || (el.dataset.aliases || '').split(' ').includes(wanted)))
    : null;
  if (control) {
    const target = document.getElementById(`${control.id}-error`);
    target.textContent = error.message;
    target.hidden = false;
    control.setAttribute('aria-invalid', 'true');
    control.focus();
    return;
  }
  const formError = $('.form-error', form);
  formError.textContent = error.message;
  formError.hidden = false;
}

/** The form's named values, trimmed except passwords. */
export function formValues(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.type === 'checkbox') out[el.name] = el.checked;
    else out[el.name] = el.type === 'password' ? el.value : el.value.trim();
  }
  return out;
}

/**
 * A form whose submit runs `onSubmit(values, form)`; errors it throws (server or FieldError)
 * are shown on the form. The submit button is disabled while it runs.
 */
export function makeForm({ submitLabel, onSubmit, className = 'form', extra = [], disabled = false }, ...fields) {
  const submit = h('button', { type: 'submit', class: 'btn primary', disabled }, submitLabel);
  const form = h('form', { class: className },
    fields,
    h('p', { class: 'form-error', role: 'alert', hidden: true }),
    h('div', { class: 'form-actions' }, submit, extra));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    submit.disabled = true;
    form.setAttribute('aria-busy', 'true');
    try {
      await onSubmit(formValues(form), form);
    } catch (error) {
      if (error && error.unauthenticated) return;
      showFormError(form, error instanceof Error ? error : new Error(String(error)));
      if (!(error instanceof api.ApiError) && !(error instanceof FieldError)) reportBug(error);
    } finally {
      submit.disabled = false;
      form.removeAttribute('aria-busy');
    }
  });
  return form;
}

/** Under a form only admins and owners may submit, for everyone else who sees it. */
export function readOnlyNote(admin) {
  return admin ? null : h('p', { class: 'muted' }, 'Only admins and owners can change these.');
}

/** A modal dialog (native <dialog>, so focus stays inside and Escape closes it). */
function openDialog({ title, content, actions = [], onClose, wide = false }) {
  const titleId = nextId('dialog-title');
  const opener = document.activeElement;
  let closed = false;
  const dialog = h('dialog', { class: `dialog${wide ? ' wide' : ''}`, role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': titleId },
    h('div', { class: 'dialog-head' },
      h('h2', { id: titleId }, title),
      h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Close', onclick: () => close(null) }, '×')),
    h('div', { class: 'dialog-body' }, content),
    actions.length ? h('div', { class: 'dialog-actions' }, actions) : null);
  function close(result) {
    if (closed) return;
    closed = true;
    dialog.close();
    dialog.remove();
    if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus();
    if (onClose) onClose(result);
  }
  dialog.addEventListener('cancel', (event) => {
    event.preventDefault();
    close(null);
  });
  document.body.append(dialog);
  dialog.showModal();
  return { dialog, close };
}

/** Asks before doing something that cannot be undone; resolves true when confirmed. */
export function confirmDialog({ title, message, confirmLabel, danger = true }) {
  return new Promise((resolve) => {
    const cancel = h('button', { type: 'button', class: 'btn', autofocus: true }, 'Cancel');
    const confirm = h('button', { type: 'button', class: `btn ${danger ? 'danger' : 'primary'}` }, confirmLabel);
    const { close } = openDialog({
      title,
      content: h('p', {}, message),
      actions: [cancel, confirm],
      onClose: (result) => resolve(result === true),
    });
    cancel.addEventListener('click', () => close(false));
    confirm.addEventListener('click', () => close(true));
  });
}

/** A form in a dialog; resolves with what `onSubmit` returned, or null when cancelled. */
export function formDialog({ title, intro, fields, submitLabel, onSubmit }) {
  return new Promise((resolve) => {
    let result = null;
    const cancel = h('button', { type: 'button', class: 'btn' }, 'Cancel');
    const form = makeForm({
      submitLabel,
      extra: [cancel],
      onSubmit: async (values) => {
        result = await onSubmit(values);
        handle.close(true);
      },
    }, fields);
    const handle = openDialog({
      title,
      content: [intro ? h('p', {}, intro) : null, form],
      onClose: () => resolve(result),
    });
    cancel.addEventListener('click', () => handle.close(null));
    const first = form.querySelector('input, select, textarea');
    if (first) first.focus();
  });
}

function selectContents(el) {
  if (el instanceof HTMLInputElement || el instanceof HTMLTextAreaElement) {
    el.focus();
    el.select();
    return;
  }
  const range = document.createRange();
  range.selectNodeContents(el);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}

/** Copies text to the clipboard; where that is not allowed, selects it for the user. */
async function copyText(text, selectable, button) {
  try {
    if (!navigator.clipboard) throw new Error('no clipboard');
    await navigator.clipboard.writeText(text);
    announce('Copied to the clipboard.', 'success');
    if (button) {
      const label = button.textContent;
      button.textContent = 'Copied';
      setTimeout(() => {
        button.textContent = label;
      }, 2000);
    }
  } catch {
    if (selectable) selectContents(selectable);
    announce('Copying is not allowed here: the text is selected, press Ctrl+C (⌘C on a Mac).');
  }
}

function snippet(title, text) {
  const code = h('code', {}, text);
  const button = h('button', { type: 'button', class: 'btn small', 'aria-label': `Copy the ${title} example` }, 'Copy');
  button.addEventListener('click', () => copyText(text, code, button));
  return h('div', { class: 'snippet' },
    h('div', { class: 'snippet-head' }, h('h3', {}, title), button),
    h('pre', { tabindex: '0' }, code));
}

/**
 * Shows a secret the server will not show again (a key, a token, an invitation link), with a
 * Copy button and ready-to-paste examples.
 */
export function secretDialog({ title, intro, label, copyLabel = 'Copy', secret, prefix, snippets = [], doneLabel = 'Done' }) {
  return new Promise((resolve) => {
    const inputId = nextId('secret');
    const input = h('input', { id: inputId, class: 'secret', type: 'text', readonly: true, spellcheck: 'false', autocomplete: 'off', value: secret });
    const copy = h('button', { type: 'button', class: 'btn primary', autofocus: true }, copyLabel);
    copy.addEventListener('click', () => copyText(secret, input, copy));
    const prefixId = nextId('prefix');
    const done = h('button', { type: 'button', class: 'btn' }, doneLabel);
    const { close } = openDialog({
      title,
      wide: true,
      content: [
        h('p', { class: 'alert warn' }, intro),
        h('div', { class: 'field' },
          h('label', { for: inputId }, label),
          h('div', { class: 'secret-row' }, input, copy)),
        prefix
          ? h('dl', { class: 'inline-dl' }, h('dt', { id: prefixId }, 'Prefix'), h('dd', { 'aria-labelledby': prefixId }, h('code', {}, prefix)))
          : null,
        snippets.map(([name, text]) => snippet(name, text)),
      ],
      actions: [done],
      onClose: resolve,
    });
    done.addEventListener('click', () => close(true));
  });
}

export function stat(label, value, sub) {
  const id = nextId('stat');
  return h('div', { class: 'stat', role: 'group', 'aria-labelledby': id },
    h('p', { class: 'stat-label', id }, label),
    h('p', { class: 'stat-value' }, value),
    sub ? h('p', { class: 'stat-sub' }, sub) : null);
}

// ---------------------------------------------------------------------------------------------
// Parsing form input

export function optionalInt(value, name, { min = 1, max = 1e12 } = {}) {
  if (value === '' || value === undefined) return null;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new FieldError(name, `Enter a whole number from ${fmtInt(min)} to ${fmtInt(max)}, or leave it empty.`);
  }
  return Number(value);
}

export function usdInput(value, name, { required = false } = {}) {
  if (value === '' || value === undefined) {
    if (required) throw new FieldError(name, 'Enter an amount in USD, such as 25.00.');
    return null;
  }
  const cleaned = value.replace(/^\$/, '').replace(/,/g, '');
  if (!/^\d+(\.\d+)?$/.test(cleaned)) throw new FieldError(name, 'Enter an amount in USD, such as 25.00.');
  return cleaned;
}

/** `team=search, env=prod` → `[{ key, value }]`. */
export function parseTags(text, name = 'tags') {
  if (!text) return [];
  return text.split(',').map((part) => part.trim()).filter(Boolean).map((part) => {
    const at = part.indexOf('=');
    if (at <= 0) throw new FieldError(name, 'Write tags as key=value, separated by commas.');
    return { key: part.slice(0, at).trim(), value: part.slice(at + 1).trim() };
  });
}

export function parseTag(text, name = 'tag') {
  if (!text) return null;
  const at = text.indexOf('=');
  if (at <= 0 || text.includes(',')) throw new FieldError(name, 'Write one tag as key=value.');
  return { key: text.slice(0, at).trim(), value: text.slice(at + 1).trim() };
}

export function parseThresholds(text, name = 'thresholds') {
  if (!text) return null;
  const parts = text.split(/[,\s]+/).filter(Boolean);
  if (!parts.every((p) => /^\d+%?$/.test(p))) throw new FieldError(name, 'Write percentages separated by commas, such as 50, 80, 100.');
  return parts.map((p) => Number(p.replace('%', '')));
}

export function splitList(text) {
  return (text || '').split(',').map((s) => s.trim()).filter(Boolean);
}

// ---------------------------------------------------------------------------------------------
// Shared queries

/** Names for ids: teams and keys, for tables and chart legends. */
export async function loadNames() {
  const data = await api.gql('query Names { teams { id name } keys { id name displayPrefix status } }');
  return {
    teams: data.teams,
    keys: data.keys,
    team: new Map(data.teams.map((t) => [t.id, t.name])),
    key: new Map(data.keys.map((k) => [k.id, k])),
  };
}

export const keyLabel = (names, id) => {
  const key = names && names.key.get(id);
  return key ? `${key.name} (${key.displayPrefix})` : id;
};
