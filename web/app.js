// The Tollgate dashboard: hash routing, the page shell and every page.
//
// No framework and no build step. Pages build their DOM with `h()` and put server data in
// with textContent only (never as HTML), so the strict Content-Security-Policy holds: no
// inline scripts, no inline styles (element.style from code is CSSOM, which the policy allows).
//
// Routes: #/overview #/keys #/teams #/budgets #/analytics #/requests #/requests/<eventId>
// #/billing[?checkout=done|cancelled] #/settings, and the public #/login #/signup
// #/verify/<signupToken> #/accept/<invitationToken>.

import * as api from './api.js';
import { lineChart, stackedBarChart } from './charts.js';

// ---------------------------------------------------------------------------------------------
// DOM helpers

let uid = 0;
const nextId = (prefix) => `${prefix}-${++uid}`;

/**
 * Creates an element. `attrs`: `class`, `for`, `dataset`, `value`, booleans (present when
 * true), functions under `on…` names become listeners; anything else is an attribute.
 */
function h(tag, attrs, ...children) {
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

const $ = (selector, root = document) => root.querySelector(selector);

/** A polite message in the live region, gone after a few seconds. */
function announce(message, kind = 'info') {
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
function formatUsd(value) {
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
const fmtInt = (n) => (n === null || n === undefined ? '—' : intFormat.format(n));
const compactFormat = new Intl.NumberFormat(undefined, { notation: 'compact', maximumSignificantDigits: 3 });
const fmtCompact = (n) => compactFormat.format(n);
const axisUsd = (v) =>
  v === 0 ? '$0' : `$${new Intl.NumberFormat('en-US', { maximumSignificantDigits: 3, notation: v >= 1e4 ? 'compact' : 'standard' }).format(v)}`;

function fmtPct(ratio, digits = 1) {
  if (ratio === null || ratio === undefined || !Number.isFinite(ratio)) return '—';
  return `${(ratio * 100).toFixed(digits).replace(/\.0+$/, '')}%`;
}

function fmtMs(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const dateTimeSecondsFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
const dayFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const hourFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const shortTimeFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dayHourFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });

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
function timeEl(ms, style = 'datetime') {
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

const plural = (n, word) => `${fmtInt(n)} ${word}${n === 1 ? '' : 's'}`;
const titleCase = (s) => (s ? s[0].toUpperCase() + s.slice(1).toLowerCase() : s);

// ---------------------------------------------------------------------------------------------
// Time: buckets computed the way the server floors them (see UsageBucket in the schema).

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

/** The browser's UTC offset in minutes east, rounded to 15 minutes as the API requires. */
function utcOffsetMinutes() {
  return Math.round(-new Date().getTimezoneOffset() / 15) * 15;
}

function bucketFloor(t, bucket, offset) {
  const size = bucket === 'HOUR' ? HOUR_MS : DAY_MS;
  const shift = bucket === 'HOUR' ? 0 : offset * 60_000;
  return t - ((((t + shift) % size) + size) % size);
}

function bucketStarts(from, to, bucket, offset) {
  const size = bucket === 'HOUR' ? HOUR_MS : DAY_MS;
  const out = [];
  for (let t = bucketFloor(from, bucket, offset); t < to; t += size) out.push(t);
  return out;
}

function localMidnight(date) {
  return new Date(date.getFullYear(), date.getMonth(), date.getDate()).getTime();
}

/** `yyyy-mm-dd` of a local date, for date inputs. */
function isoDate(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** Local midnight of a `yyyy-mm-dd` date input value. */
function parseDateInput(value) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value || '');
  if (!match) return null;
  return new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3])).getTime();
}

// ---------------------------------------------------------------------------------------------
// State shared by pages

const RANK = { VIEWER: 0, MEMBER: 1, ADMIN: 2, OWNER: 3 };
const ROLES = ['VIEWER', 'MEMBER', 'ADMIN', 'OWNER'];
const PERIODS = ['daily', 'weekly', 'monthly', 'lifetime'];

const state = {
  /** `{ userId, email, role, organization: { id, name } }` of the session. */
  viewer: null,
  /** Where to go after logging in. */
  afterLogin: null,
};

/** Whether the viewer's role is at least `role`. */
function can(role) {
  return Boolean(state.viewer) && RANK[state.viewer.role] >= RANK[role];
}

// ---------------------------------------------------------------------------------------------
// Building blocks: page headers, cards, tables, states, forms, dialogs

function pageHeader(title, ...actions) {
  return h('div', { class: 'page-header' },
    h('h1', { tabindex: '-1' }, title),
    actions.length ? h('div', { class: 'page-actions' }, actions) : null);
}

function card(title, ...children) {
  const id = nextId('card');
  return h('section', { class: 'card', 'aria-labelledby': id },
    h('h2', { id }, title), children);
}

function loadingEl(text = 'Loading…') {
  return h('p', { class: 'loading' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), text);
}

function emptyEl(text, ...actions) {
  return h('div', { class: 'empty' }, h('p', {}, text), actions);
}

function errorEl(error, retry) {
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
async function fill(container, build) {
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

function reportBug(error) {
  // A bug in this file rather than an answer from the server: keep it visible to developers.
  setTimeout(() => {
    throw error;
  });
}

/**
 * A table that scrolls sideways on narrow screens, or becomes cards (`cards: true`).
 * columns: `{ label, cell(row) → node|string, numeric?, className? }`.
 */
function table({ caption, columns, rows, empty = 'Nothing here yet.', cards = true, rowAttrs }) {
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

function badge(text, kind = '') {
  return h('span', { class: `badge ${kind}` }, text);
}

/** A client-side validation error, placed like a server one. */
class FieldError extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

/**
 * A labelled input. `options` makes a select (`[{ value, label }]`); `type: 'textarea'` a
 * textarea. `attrs` go on the control.
 */
function field({ label, name, type = 'text', value, hint, required, options, attrs = {}, className }) {
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
function formValues(form) {
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
function makeForm({ submitLabel, onSubmit, className = 'form', extra = [], disabled = false }, ...fields) {
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
function confirmDialog({ title, message, confirmLabel, danger = true }) {
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
function formDialog({ title, intro, fields, submitLabel, onSubmit }) {
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
function secretDialog({ title, intro, label, copyLabel = 'Copy', secret, prefix, snippets = [], doneLabel = 'Done' }) {
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

/** Examples for calling the gateway with a virtual key. */
function keySnippets(secret, model = 'gpt-4o-mini') {
  const origin = window.location.origin;
  const body = JSON.stringify({ model, messages: [{ role: 'user', content: 'Hello!' }] });
  return [
    ['curl', `curl ${origin}/v1/chat/completions \\\n  -H "Authorization: Bearer ${secret}" \\\n  -H "Content-Type: application/json" \\\n  -d '${body}'`],
    ['Python (OpenAI SDK)', `from openai import OpenAI\n\nclient = OpenAI(base_url="${origin}/v1", api_key="${secret}")\nreply = client.chat.completions.create(\n    model="${model}",\n    messages=[{"role": "user", "content": "Hello!"}],\n)\nprint(reply.choices[0].message.content)`],
  ];
}

/** The first model the key may use, for the examples; a common name when none is listed. */
async function firstModel(secret) {
  try {
    const response = await fetch('/v1/models', { headers: { authorization: `Bearer ${secret}` }, cache: 'no-store' });
    if (!response.ok) return undefined;
    const body = await response.json();
    const ids = (body.data || []).map((m) => m.id).filter((id) => typeof id === 'string');
    return ids[0];
  } catch {
    return undefined;
  }
}

/** The shown-once panel of a key just created or rotated. */
async function showNewKey({ title, secret, prefix, name }) {
  const model = await firstModel(secret);
  return secretDialog({
    title,
    intro: `Copy ${name ? `the key “${name}”` : 'this key'} now: it is shown only this once. Tollgate keeps only a hash of it.`,
    label: 'API key',
    copyLabel: 'Copy key',
    secret,
    prefix,
    snippets: keySnippets(secret, model),
    doneLabel: 'I have saved the key',
  });
}

// ---------------------------------------------------------------------------------------------
// Parsing form input

function optionalInt(value, name, { min = 1, max = 1e12 } = {}) {
  if (value === '' || value === undefined) return null;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new FieldError(name, `Enter a whole number from ${fmtInt(min)} to ${fmtInt(max)}, or leave it empty.`);
  }
  return Number(value);
}

function usdInput(value, name, { required = false } = {}) {
  if (value === '' || value === undefined) {
    if (required) throw new FieldError(name, 'Enter an amount in USD, such as 25.00.');
    return null;
  }
  const cleaned = value.replace(/^\$/, '').replace(/,/g, '');
  if (!/^\d+(\.\d+)?$/.test(cleaned)) throw new FieldError(name, 'Enter an amount in USD, such as 25.00.');
  return cleaned;
}

/** `team=search, env=prod` → `[{ key, value }]`. */
function parseTags(text, name = 'tags') {
  if (!text) return [];
  return text.split(',').map((part) => part.trim()).filter(Boolean).map((part) => {
    const at = part.indexOf('=');
    if (at <= 0) throw new FieldError(name, 'Write tags as key=value, separated by commas.');
    return { key: part.slice(0, at).trim(), value: part.slice(at + 1).trim() };
  });
}

function parseTag(text, name = 'tag') {
  if (!text) return null;
  const at = text.indexOf('=');
  if (at <= 0 || text.includes(',')) throw new FieldError(name, 'Write one tag as key=value.');
  return { key: text.slice(0, at).trim(), value: text.slice(at + 1).trim() };
}

function parseThresholds(text, name = 'thresholds') {
  if (!text) return null;
  const parts = text.split(/[,\s]+/).filter(Boolean);
  if (!parts.every((p) => /^\d+%?$/.test(p))) throw new FieldError(name, 'Write percentages separated by commas, such as 50, 80, 100.');
  return parts.map((p) => Number(p.replace('%', '')));
}

function splitList(text) {
  return (text || '').split(',').map((s) => s.trim()).filter(Boolean);
}

// ---------------------------------------------------------------------------------------------
// Shared queries

const KEY_FIELDS = `id teamId team { id name } name displayPrefix status allowedModels expiresAt rpmLimit tpmLimit
  budgetUsd budgetPeriod tags { key value } createdBy revokedAt rotatedTo lastUsedAt createdAt`;
const BUDGET_FIELDS = `id scope target period limitUsd thresholds periodStart spentUsd reservedUsd remainingUsd createdAt updatedAt`;
const FIGURES = `requests errors inputTokens outputTokens costUsd cacheHits cachedTokens savedUsd latencyMsAvg latencyMsP50 latencyMsP95`;

async function ensureViewer() {
  if (state.viewer) return state.viewer;
  const data = await api.gql('query Viewer { viewer { userId email role organization { id name } } }');
  state.viewer = data.viewer;
  renderAccount();
  return state.viewer;
}

/** Names for ids: teams and keys, for tables and chart legends. */
async function loadNames() {
  const data = await api.gql('query Names { teams { id name } keys { id name displayPrefix status } }');
  return {
    teams: data.teams,
    keys: data.keys,
    team: new Map(data.teams.map((t) => [t.id, t.name])),
    key: new Map(data.keys.map((k) => [k.id, k])),
  };
}

const keyLabel = (names, id) => {
  const key = names && names.key.get(id);
  return key ? `${key.name} (${key.displayPrefix})` : id;
};

// ---------------------------------------------------------------------------------------------
// Budgets: progress bar with reserved spend and threshold ticks

function budgetBar(budget) {
  const limit = Number(budget.limitUsd);
  const spent = Number(budget.spentUsd);
  const reserved = Number(budget.reservedUsd || 0);
  const thresholds = budget.thresholds || [];
  // The bar spans the limit, or further when an alert sits beyond it (a 120 % threshold).
  const span = Math.max(100, ...thresholds);
  const pct = limit > 0 ? (spent / limit) * 100 : spent > 0 ? Infinity : 0;
  const reservedPct = limit > 0 ? (reserved / limit) * 100 : 0;
  const over = spent >= limit && (limit > 0 || spent > 0);
  const spentWidth = Math.min(pct, span);
  const reservedWidth = Math.min(reservedPct, span - spentWidth);
  const shownPct = Number.isFinite(pct) ? pct : 100;
  const valueText = `${formatUsd(budget.spentUsd)} spent${reserved > 0 ? `, ${formatUsd(budget.reservedUsd)} reserved` : ''} of ${formatUsd(budget.limitUsd)} (${Number.isFinite(pct) ? fmtPct(pct / 100) : 'over'})${over ? ', over the limit' : ''}`;
  const spentEl = h('div', { class: 'meter-spent' });
  spentEl.style.width = `${(spentWidth / span) * 100}%`;
  const reservedEl = h('div', { class: 'meter-reserved' });
  reservedEl.style.width = `${(reservedWidth / span) * 100}%`;
  const ticks = thresholds.map((t) => {
    const tick = h('span', { class: 'meter-tick', title: `Alert at ${t}%` });
    tick.style.left = `${(t / span) * 100}%`;
    return tick;
  });
  const level = over ? 'over' : thresholds.some((t) => pct >= t) ? 'warn' : 'ok';
  return h('div', {
    class: `meter ${level}`,
    role: 'progressbar',
    'aria-label': 'Spent of the limit',
    'aria-valuemin': '0',
    'aria-valuemax': '100',
    'aria-valuenow': String(Math.round(Math.min(shownPct, 100) * 10) / 10),
    'aria-valuetext': valueText,
    title: valueText,
  }, spentEl, reservedEl, ticks);
}

function budgetTargetLabel(budget, names) {
  switch (budget.scope) {
    case 'organization':
      return state.viewer ? state.viewer.organization.name : 'Organization';
    case 'team':
      return (names && names.team.get(budget.target)) || budget.target;
    case 'key':
      return keyLabel(names, budget.target);
    case 'user':
      return budget.target === '*' ? 'Each end user' : budget.target;
    default:
      return budget.target;
  }
}

function budgetUsage(budget) {
  const over = Number(budget.spentUsd) >= Number(budget.limitUsd);
  return h('div', { class: 'budget-usage' },
    budgetBar(budget),
    h('p', { class: 'budget-figures' },
      h('span', {}, `${formatUsd(budget.spentUsd)} of ${formatUsd(budget.limitUsd)}`),
      Number(budget.reservedUsd || 0) > 0 ? h('span', { class: 'muted' }, ` · ${formatUsd(budget.reservedUsd)} reserved`) : null,
      over ? h('span', {}, ' ', badge('Over limit', 'danger')) : null));
}

// ---------------------------------------------------------------------------------------------
// Public pages: log in, sign up, accept an invitation

function authLayout(title, intro, ...content) {
  return h('div', { class: 'auth-page' },
    h('div', { class: 'auth-card' },
      h('h1', { tabindex: '-1' }, title),
      intro ? h('p', { class: 'muted' }, intro) : null,
      content));
}

function pageLogin(view) {
  const form = makeForm({
    submitLabel: 'Log in',
    onSubmit: async (values) => {
      await api.login({ email: values.email, password: values.password });
      state.viewer = null;
      const next = state.afterLogin;
      state.afterLogin = null;
      go(next || '#/overview');
    },
  },
  field({ label: 'Email', name: 'email', type: 'email', required: true, attrs: { autocomplete: 'username' } }),
  field({ label: 'Password', name: 'password', type: 'password', required: true, attrs: { autocomplete: 'current-password' } }));
  view.append(authLayout('Log in', 'Manage keys, budgets and usage of your AI gateway.', form,
    h('p', { class: 'auth-switch' }, 'No account yet? ', h('a', { href: '#/signup' }, 'Sign up'))));
}

function pageSignup(view) {
  const form = makeForm({
    submitLabel: 'Sign up',
    onSubmit: async (values) => {
      if (values.password.length < 12) throw new FieldError('password', 'Use at least 12 characters.');
      const answer = await api.signup(values);
      if (!answer.api_key) {
        view.replaceChildren(authLayout('Check your inbox', null,
          h('p', {}, 'A message is on its way to ', h('strong', {}, answer.email), '. Follow its link within 24 hours to finish signing up.')));
        return;
      }
      await welcome(answer);
    },
  },
  field({ label: 'Email', name: 'email', type: 'email', required: true, attrs: { autocomplete: 'email' } }),
  field({
    label: 'Password', name: 'password', type: 'password', required: true,
    hint: 'At least 12 characters, not containing your email.',
    attrs: { autocomplete: 'new-password', minlength: '12', maxlength: '128' },
  }),
  field({ label: 'Organization', name: 'organization', required: true, hint: 'Your company or team; you can invite others later.', attrs: { autocomplete: 'organization', maxlength: '100' } }));
  view.append(authLayout('Create your account', 'You get an organization, a first team and a first API key.', form,
    h('p', { class: 'auth-switch' }, 'Already have an account? ', h('a', { href: '#/login' }, 'Log in'))));
}

/** The first key of a new account, shown once, over the overview. */
async function welcome(account) {
  state.viewer = null;
  go('#/overview');
  await showNewKey({
    title: 'Your first key',
    secret: account.api_key.key,
    prefix: account.api_key.display_prefix,
    name: account.api_key.name,
  });
}

function pageVerify(view, token) {
  const body = h('div', {});
  view.append(authLayout('Finish signing up', null, body));
  if (!token) {
    body.append(errorEl(new Error('This sign-up link is incomplete.')));
    return;
  }
  fill(body, async () => {
    const account = await api.verifySignup(token);
    welcome(account).catch(reportBug);
    return h('p', {}, 'Your account is ready.');
  });
}

function pageAccept(view, token) {
  const body = h('div', {});
  view.append(authLayout('Join an organization', null, body));
  if (!token) {
    body.append(errorEl(new Error('This invitation link is incomplete.')));
    return;
  }
  fill(body, async () => {
    const preview = await api.previewInvitation(token);
    const existing = Boolean(preview.existing_user);
    const form = makeForm({
      submitLabel: `Join ${preview.organization.name}`,
      onSubmit: async (values) => {
        if (!existing && values.password.length < 12) throw new FieldError('password', 'Use at least 12 characters.');
        await api.acceptInvitation({ token, password: values.password });
        state.viewer = null;
        go('#/overview');
        announce(`You joined ${preview.organization.name}.`, 'success');
      },
    },
    field({ label: 'Email', name: 'email', type: 'email', value: preview.email, attrs: { readonly: true, autocomplete: 'username' } }),
    existing
      ? field({ label: 'Your current password', name: 'password', type: 'password', required: true, hint: 'You already have an account: log in to join.', attrs: { autocomplete: 'current-password' } })
      : field({ label: 'Choose a password', name: 'password', type: 'password', required: true, hint: 'At least 12 characters, not containing your email.', attrs: { autocomplete: 'new-password', minlength: '12', maxlength: '128' } }));
    return [
      h('p', {}, 'You are invited to ', h('strong', {}, preview.organization.name), ' as ', h('strong', {}, titleCase(preview.role)), '.'),
      form,
    ];
  });
}

// ---------------------------------------------------------------------------------------------
// Overview

function stat(label, value, sub) {
  const id = nextId('stat');
  return h('div', { class: 'stat', role: 'group', 'aria-labelledby': id },
    h('p', { class: 'stat-label', id }, label),
    h('p', { class: 'stat-value' }, value),
    sub ? h('p', { class: 'stat-sub' }, sub) : null);
}

function emptyFigures() {
  return { requests: 0, errors: 0, inputTokens: 0, outputTokens: 0, costUsd: '0', cacheHits: 0, cachedTokens: 0, savedUsd: '0', latencyMsAvg: null, latencyMsP50: null, latencyMsP95: null };
}

const ratio = (part, whole) => (whole > 0 && part !== null && part !== undefined ? part / whole : null);

function pageOverview(view) {
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

/**
 * Chart series from usageSeries points: one per group in `order` (the costliest first), the
 * rest summed as "Other" past `limit` groups.
 */
function groupSeries(points, order, pick, buckets, label, limit = 8) {
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

// ---------------------------------------------------------------------------------------------
// Keys

function keyStatus(key) {
  const kinds = { active: 'success', rotating: 'info', disabled: 'warn', expired: 'muted', revoked: 'danger' };
  return badge(key.status, kinds[key.status] || '');
}

function keyLimits(key) {
  const parts = [];
  if (key.rpmLimit) parts.push(`${fmtInt(key.rpmLimit)} rpm`);
  if (key.tpmLimit) parts.push(`${fmtInt(key.tpmLimit)} tpm`);
  const models = key.allowedModels.length ? key.allowedModels.join(', ') : 'all models';
  return [
    h('span', { class: 'nowrap' }, parts.length ? parts.join(' · ') : 'organization default limits'),
    key.budgetUsd ? h('span', { class: 'cell-line' }, `${formatUsd(key.budgetUsd)} ${key.budgetPeriod || ''}`.trim()) : null,
    h('span', { class: 'cell-note' }, models),
  ];
}

function canManageKey(key) {
  if (can('ADMIN')) return true;
  return can('MEMBER') && state.viewer && key.createdBy === state.viewer.userId;
}

function pageKeys(view) {
  const list = h('div', {});
  const create = can('MEMBER') ? h('button', { type: 'button', class: 'btn primary', onclick: () => openCreateKey() }, 'Create key') : null;
  view.append(pageHeader('Keys', create),
    h('p', { class: 'muted lead' }, 'Virtual keys open the gateway at ', h('code', {}, `${window.location.origin}/v1`), '. Limits and budgets apply per key.'),
    list);
  let teams = [];

  async function load() {
    await fill(list, async () => {
      const data = await api.gql(`query Keys { keys { ${KEY_FIELDS} } teams { id name } }`);
      teams = data.teams;
      const keys = [...data.keys].sort((a, b) => (a.status === 'revoked') - (b.status === 'revoked') || b.createdAt - a.createdAt);
      return table({
        caption: 'Virtual keys',
        empty: 'No keys yet.',
        rows: keys,
        rowAttrs: (key) => ({ dataset: { keyId: key.id } }),
        columns: [
          {
            label: 'Name',
            cell: (k) => [h('strong', {}, k.name), k.tags.length ? h('span', { class: 'cell-note' }, k.tags.map((t) => `${t.key}=${t.value}`).join(', ')) : null],
          },
          { label: 'Prefix', cell: (k) => h('code', {}, k.displayPrefix) },
          { label: 'Team', cell: (k) => (k.team ? k.team.name : k.teamId) },
          {
            label: 'Status',
            cell: (k) => [keyStatus(k), h('span', { class: 'cell-note' }, k.lastUsedAt ? ['used ', timeEl(k.lastUsedAt, 'ago')] : 'never used')],
          },
          { label: 'Limits & budget', cell: keyLimits },
          {
            label: 'Created',
            cell: (k) => [timeEl(k.createdAt, 'date'), k.expiresAt ? h('span', { class: 'cell-note' }, 'expires ', timeEl(k.expiresAt, 'date')) : null],
          },
          { label: 'Actions', className: 'actions', cell: keyActions },
        ],
      });
    });
  }

  function keyActions(key) {
    if (key.status === 'revoked' || !canManageKey(key)) return '—';
    const buttons = [];
    if (key.status !== 'expired' && key.status !== 'rotating') {
      buttons.push(h('button', { type: 'button', class: 'btn small', 'aria-label': `Rotate key ${key.name}`, onclick: () => rotate(key) }, 'Rotate'));
      buttons.push(key.status === 'disabled'
        ? h('button', { type: 'button', class: 'btn small', 'aria-label': `Enable key ${key.name}`, onclick: () => setDisabled(key, false) }, 'Enable')
        : h('button', { type: 'button', class: 'btn small', 'aria-label': `Disable key ${key.name}`, onclick: () => setDisabled(key, true) }, 'Disable'));
    }
    buttons.push(h('button', { type: 'button', class: 'btn small danger', 'aria-label': `Revoke key ${key.name}`, onclick: () => revoke(key) }, 'Revoke'));
    return h('div', { class: 'button-row' }, buttons);
  }

  async function setDisabled(key, disabled) {
    try {
      await api.gql('mutation SetDisabled($id: ID!, $input: UpdateKeyInput!) { updateKey(id: $id, input: $input) { id status } }', { id: key.id, input: { disabled } });
      announce(`Key “${key.name}” ${disabled ? 'disabled' : 'enabled'}.`, 'success');
      await load();
    } catch (error) {
      if (!error.unauthenticated) announce(error.message, 'error');
    }
  }

  async function revoke(key) {
    const ok = await confirmDialog({
      title: `Revoke key “${key.name}”?`,
      message: `Requests with ${key.displayPrefix}… are refused from now on. This cannot be undone.`,
      confirmLabel: 'Revoke key',
    });
    if (!ok) return;
    try {
      await api.gql('mutation Revoke($id: ID!) { revokeKey(id: $id) { id status } }', { id: key.id });
      announce(`Key “${key.name}” revoked.`, 'success');
      await load();
    } catch (error) {
      if (!error.unauthenticated) announce(error.message, 'error');
    }
  }

  async function rotate(key) {
    const issued = await formDialog({
      title: `Rotate key “${key.name}”`,
      intro: 'A new secret replaces this key. The old one keeps working during the grace period, so that clients can switch over.',
      submitLabel: 'Rotate key',
      fields: [field({
        label: 'Grace period (seconds)', name: 'graceSeconds', type: 'number',
        hint: 'Empty for the server’s default (a day); 0 stops the old secret at once.',
        attrs: { min: '0', max: '2592000', inputmode: 'numeric' },
      })],
      onSubmit: async (values) => {
        const graceSeconds = optionalInt(values.graceSeconds, 'graceSeconds', { min: 0, max: 2592000 });
        const data = await api.gql('mutation Rotate($id: ID!, $grace: Int) { rotateKey(id: $id, graceSeconds: $grace) { secret key { id name displayPrefix } } }', { id: key.id, grace: graceSeconds });
        return data.rotateKey;
      },
    });
    if (!issued) return;
    load();
    await showNewKey({ title: 'Key rotated', secret: issued.secret, prefix: issued.key.displayPrefix, name: issued.key.name });
  }

  async function openCreateKey() {
    const issued = await formDialog({
      title: 'Create a key',
      submitLabel: 'Create key',
      fields: [
        h('div', { class: 'form-grid' },
          field({ label: 'Name', name: 'name', required: true, attrs: { maxlength: '100' } }),
          field({ label: 'Team', name: 'teamId', options: teams.map((t) => ({ value: t.id, label: t.name })) }),
          field({ label: 'Allowed models', name: 'allowedModels', hint: 'Comma-separated, globs allowed (gpt-4o*); empty allows every model.', className: 'span-2' }),
          field({ label: 'Requests per minute', name: 'rpmLimit', type: 'number', hint: 'Empty for no limit of its own.', attrs: { min: '1', inputmode: 'numeric', 'data-aliases': 'rpm' } }),
          field({ label: 'Tokens per minute', name: 'tpmLimit', type: 'number', hint: 'Empty for no limit of its own.', attrs: { min: '1', inputmode: 'numeric', 'data-aliases': 'tpm' } }),
          field({ label: 'Budget (USD)', name: 'budgetUsd', hint: 'Such as 25.00; empty for none.', attrs: { inputmode: 'decimal' } }),
          field({ label: 'Budget period', name: 'budgetPeriod', value: 'monthly', options: PERIODS.map((p) => ({ value: p, label: titleCase(p) })) }),
          field({ label: 'Expires on', name: 'expiresAt', type: 'date', hint: 'The key stops working at the end of this day; empty for never.', attrs: { min: isoDate(Date.now()) } }),
          field({ label: 'Tags', name: 'tags', hint: 'key=value pairs, comma-separated, for cost attribution.' })),
      ],
      onSubmit: async (values) => {
        const input = { name: values.name, teamId: values.teamId || null, tags: parseTags(values.tags) };
        const models = splitList(values.allowedModels);
        if (models.length) input.allowedModels = models;
        input.rpmLimit = optionalInt(values.rpmLimit, 'rpmLimit');
        input.tpmLimit = optionalInt(values.tpmLimit, 'tpmLimit');
        input.budgetUsd = usdInput(values.budgetUsd, 'budgetUsd');
        if (input.budgetUsd) input.budgetPeriod = values.budgetPeriod;
        if (values.expiresAt) {
          const day = parseDateInput(values.expiresAt);
          if (day === null) throw new FieldError('expiresAt', 'Enter a date.');
          const end = day + DAY_MS;
          if (end <= Date.now()) throw new FieldError('expiresAt', 'Choose a day in the future.');
          input.expiresAt = end;
        }
        for (const k of Object.keys(input)) if (input[k] === null) delete input[k];
        const data = await api.gql('mutation CreateKey($input: CreateKeyInput!) { createKey(input: $input) { secret key { id name displayPrefix } } }', { input });
        return data.createKey;
      },
    });
    if (!issued) return;
    load();
    await showNewKey({ title: 'Key created', secret: issued.secret, prefix: issued.key.displayPrefix, name: issued.key.name });
  }

  load();
}

// ---------------------------------------------------------------------------------------------
// Teams & members

function roleOptions(includeOwner) {
  return ROLES.filter((r) => includeOwner || r !== 'OWNER').map((r) => ({ value: r, label: titleCase(r) }));
}

function pageTeams(view) {
  const teamsBox = h('div', {});
  const membersBox = h('div', {});
  const invitationsBox = h('div', {});
  const admin = can('ADMIN');
  // Members are the owners' to manage: invitations, roles, removals.
  const owner = can('OWNER');
  view.append(pageHeader('Teams & members'));

  const createTeam = admin
    ? makeForm({
        submitLabel: 'Create team',
        className: 'form inline',
        onSubmit: async (values, form) => {
          await api.gql('mutation CreateTeam($name: String!) { createTeam(name: $name) { id } }', { name: values.name });
          form.reset();
          announce(`Team “${values.name}” created.`, 'success');
          await loadTeams();
        },
      }, field({ label: 'New team name', name: 'name', required: true, attrs: { maxlength: '100' } }))
    : null;

  const invite = owner
    ? makeForm({
        submitLabel: 'Invite',
        className: 'form inline',
        onSubmit: async (values, form) => {
          const data = await api.gql(`mutation Invite($email: String!, $role: Role!) {
              inviteMember(email: $email, role: $role) { token invitation { id email role expiresAt } } }`, values);
          const issued = data.inviteMember;
          form.reset();
          loadInvitations();
          await secretDialog({
            title: 'Invitation created',
            intro: `Send this link to ${issued.invitation.email}. It is shown only this once and works until ${dateTimeFormat.format(issued.invitation.expiresAt)}.`,
            label: 'Invitation link',
            copyLabel: 'Copy link',
            secret: `${window.location.origin}/#/accept/${issued.token}`,
          });
        },
      },
      field({ label: 'Email', name: 'email', type: 'email', required: true, attrs: { autocomplete: 'off' } }),
      field({ label: 'Role', name: 'role', value: 'MEMBER', options: roleOptions(can('OWNER')) }))
    : null;

  view.append(
    card('Teams', createTeam, teamsBox),
    card('Members', membersBox),
    card('Invitations', invite, invitationsBox));

  async function loadTeams() {
    await fill(teamsBox, async () => {
      const data = await api.gql('query Teams { teams { id name createdAt } keys { id teamId status } }');
      const active = new Map();
      for (const k of data.keys) if (k.status !== 'revoked') active.set(k.teamId, (active.get(k.teamId) || 0) + 1);
      return table({
        caption: 'Teams',
        empty: 'No teams yet.',
        rows: data.teams,
        columns: [
          { label: 'Name', cell: (t) => h('strong', {}, t.name) },
          { label: 'Keys', numeric: true, cell: (t) => fmtInt(active.get(t.id) || 0) },
          { label: 'Created', cell: (t) => timeEl(t.createdAt, 'date') },
          ...(admin ? [{
            label: 'Actions',
            className: 'actions',
            cell: (t) => h('div', { class: 'button-row' },
              h('button', { type: 'button', class: 'btn small', 'aria-label': `Rename team ${t.name}`, onclick: () => renameTeam(t) }, 'Rename'),
              h('button', { type: 'button', class: 'btn small danger', 'aria-label': `Delete team ${t.name}`, onclick: () => deleteTeam(t, active.get(t.id) || 0) }, 'Delete')),
          }] : []),
        ],
      });
    });
  }

  async function renameTeam(team) {
    const renamed = await formDialog({
      title: `Rename team “${team.name}”`,
      submitLabel: 'Rename',
      fields: [field({ label: 'Name', name: 'name', value: team.name, required: true, attrs: { maxlength: '100' } })],
      onSubmit: async (values) => api.gql('mutation Rename($id: ID!, $name: String!) { renameTeam(id: $id, name: $name) { id name } }', { id: team.id, name: values.name }),
    });
    if (renamed) {
      announce('Team renamed.', 'success');
      loadTeams();
    }
  }

  async function deleteTeam(team, keyCount) {
    const ok = await confirmDialog({
      title: `Delete team “${team.name}”?`,
      message: keyCount
        ? `This team still has ${keyCount} key(s): revoke or move them first, or the server will refuse.`
        : 'The team is removed for good.',
      confirmLabel: 'Delete team',
    });
    if (!ok) return;
    try {
      await api.gql('mutation DeleteTeam($id: ID!) { deleteTeam(id: $id) }', { id: team.id });
      announce(`Team “${team.name}” deleted.`, 'success');
      loadTeams();
    } catch (error) {
      if (!error.unauthenticated) announce(error.message, 'error');
    }
  }

  async function loadMembers() {
    await fill(membersBox, async () => {
      const data = await api.gql('query Members { members { userId email role joinedAt } }');
      return table({
        caption: 'Members',
        rows: data.members,
        columns: [
          { label: 'Email', cell: (m) => [m.email, m.userId === state.viewer.userId ? h('span', { class: 'muted' }, ' (you)') : null] },
          { label: 'Role', cell: roleCell },
          { label: 'Joined', cell: (m) => timeEl(m.joinedAt, 'date') },
          { label: 'Actions', className: 'actions', cell: removeCell },
        ],
      });
    });
  }

  function roleCell(member) {
    const mayChange = owner;
    if (!mayChange) return titleCase(member.role);
    const select = h('select', { 'aria-label': `Role of ${member.email}` },
      roleOptions(can('OWNER')).map((o) => h('option', { value: o.value }, o.label)));
    select.value = member.role;
    select.addEventListener('change', async () => {
      const role = select.value;
      select.disabled = true;
      try {
        await api.gql('mutation SetRole($userId: ID!, $role: Role!) { setMemberRole(userId: $userId, role: $role) { userId role } }', { userId: member.userId, role });
        member.role = role;
        announce(`${member.email} is now ${titleCase(role)}.`, 'success');
        if (member.userId === state.viewer.userId) {
          state.viewer = null;
          await ensureViewer();
          route();
        }
      } catch (error) {
        select.value = member.role;
        if (!error.unauthenticated) announce(error.message, 'error');
      } finally {
        select.disabled = false;
      }
    });
    return select;
  }

  function removeCell(member) {
    const self = member.userId === state.viewer.userId;
    if (!self && !owner) return '—';
    return h('button', {
      type: 'button',
      class: 'btn small danger',
      'aria-label': self ? 'Leave the organization' : `Remove ${member.email}`,
      onclick: async () => {
        const ok = await confirmDialog({
          title: self ? 'Leave the organization?' : `Remove ${member.email}?`,
          message: self ? 'You lose access to this organization.' : 'They lose access to this organization. Their keys keep working until revoked.',
          confirmLabel: self ? 'Leave' : 'Remove member',
        });
        if (!ok) return;
        try {
          await api.gql('mutation Remove($userId: ID!) { removeMember(userId: $userId) }', { userId: member.userId });
          if (self) {
            await api.logout();
            state.viewer = null;
            go('#/login');
            return;
          }
          announce(`${member.email} removed.`, 'success');
          loadMembers();
        } catch (error) {
          if (!error.unauthenticated) announce(error.message, 'error');
        }
      },
    }, self ? 'Leave' : 'Remove');
  }

  async function loadInvitations() {
    await fill(invitationsBox, async () => {
      const data = await api.gql('query Invitations { invitations { id email role createdAt expiresAt } }');
      return table({
        caption: 'Pending invitations',
        empty: 'No pending invitations.',
        rows: data.invitations,
        columns: [
          { label: 'Email', cell: (i) => i.email },
          { label: 'Role', cell: (i) => titleCase(i.role) },
          { label: 'Sent', cell: (i) => timeEl(i.createdAt, 'ago') },
          { label: 'Expires', cell: (i) => timeEl(i.expiresAt) },
          ...(owner ? [{
            label: 'Actions',
            className: 'actions',
            cell: (i) => h('button', {
              type: 'button',
              class: 'btn small danger',
              'aria-label': `Revoke the invitation of ${i.email}`,
              onclick: async () => {
                const ok = await confirmDialog({ title: `Revoke the invitation of ${i.email}?`, message: 'The link stops working.', confirmLabel: 'Revoke invitation' });
                if (!ok) return;
                try {
                  await api.gql('mutation RevokeInvitation($id: ID!) { revokeInvitation(id: $id) }', { id: i.id });
                  announce('Invitation revoked.', 'success');
                  loadInvitations();
                } catch (error) {
                  if (!error.unauthenticated) announce(error.message, 'error');
                }
              },
            }, 'Revoke'),
          }] : []),
        ],
      });
    });
  }

  loadTeams();
  loadMembers();
  if (admin) loadInvitations();
  else invitationsBox.append(h('p', { class: 'muted' }, 'Owners invite members; admins and owners see pending invitations.'));
}

// ---------------------------------------------------------------------------------------------
// Budgets

const SCOPE_TITLES = { organization: 'Organization', team: 'Teams', key: 'Keys', user: 'End users' };

function pageBudgets(view) {
  const listBox = h('div', {});
  const formBox = h('div', {});
  const admin = can('ADMIN');
  view.append(pageHeader('Budgets'),
    h('p', { class: 'muted lead' }, 'A budget refuses requests once its spend reaches the limit; alerts go out at each threshold. Periods start at 00:00 UTC, weeks on Monday.'),
    listBox,
    admin ? card('Create a budget', formBox) : null);
  let names = null;

  async function load() {
    await fill(listBox, async () => {
      const [data, loaded] = await Promise.all([api.gql(`query Budgets { budgets { ${BUDGET_FIELDS} } }`), loadNames()]);
      names = loaded;
      if (admin && !formBox.firstChild) formBox.append(createForm());
      if (!data.budgets.length) return emptyEl('No budgets yet.' + (admin ? ' Create one below.' : ''));
      const groups = ['organization', 'team', 'key', 'user']
        .map((scope) => [scope, data.budgets.filter((b) => b.scope === scope)])
        .filter(([, list]) => list.length);
      return groups.map(([scope, list]) => card(SCOPE_TITLES[scope], table({
        caption: `${SCOPE_TITLES[scope]} budgets`,
        rows: list,
        rowAttrs: (b) => ({ dataset: { budgetId: b.id } }),
        columns: [
          { label: scope === 'organization' ? 'Organization' : titleCase(scope === 'user' ? 'End user' : scope), cell: (b) => h('strong', {}, budgetTargetLabel(b, names)) },
          { label: 'Period', cell: (b) => titleCase(b.period) },
          { label: 'Spent', className: 'wide-cell', cell: budgetUsage },
          { label: 'Remaining', numeric: true, cell: (b) => formatUsd(b.remainingUsd) },
          { label: 'Alerts', cell: (b) => b.thresholds.map((t) => `${t}%`).join(', ') },
          ...(admin ? [{ label: 'Actions', className: 'actions', cell: budgetActions }] : []),
        ],
      })));
    });
  }

  function budgetActions(budget) {
    const label = `${budget.scope} budget ${budgetTargetLabel(budget, names)}`;
    return h('div', { class: 'button-row' },
      h('button', { type: 'button', class: 'btn small', 'aria-label': `Edit ${label}`, onclick: () => edit(budget) }, 'Edit'),
      h('button', { type: 'button', class: 'btn small danger', 'aria-label': `Delete ${label}`, onclick: () => remove(budget) }, 'Delete'));
  }

  async function edit(budget) {
    const updated = await formDialog({
      title: `Edit the ${budget.period} budget of ${budgetTargetLabel(budget, names)}`,
      submitLabel: 'Save budget',
      fields: [
        field({ label: 'Limit (USD)', name: 'limitUsd', value: budget.limitUsd, required: true, attrs: { inputmode: 'decimal', 'data-aliases': 'limit' } }),
        field({ label: 'Alert thresholds (%)', name: 'thresholds', value: budget.thresholds.join(', '), hint: 'Percent of the limit, comma-separated.' }),
      ],
      onSubmit: async (values) => {
        const input = { limitUsd: usdInput(values.limitUsd, 'limitUsd', { required: true }) };
        const thresholds = parseThresholds(values.thresholds);
        if (thresholds) input.thresholds = thresholds;
        const data = await api.gql(`mutation UpdateBudget($id: ID!, $input: UpdateBudgetInput!) { updateBudget(id: $id, input: $input) { ${BUDGET_FIELDS} } }`, { id: budget.id, input });
        return data.updateBudget;
      },
    });
    if (updated) {
      announce('Budget saved.', 'success');
      load();
    }
  }

  async function remove(budget) {
    const ok = await confirmDialog({
      title: 'Delete this budget?',
      message: `The ${budget.period} budget of ${budgetTargetLabel(budget, names)} (${formatUsd(budget.limitUsd)}) stops applying.`,
      confirmLabel: 'Delete budget',
    });
    if (!ok) return;
    try {
      await api.gql('mutation DeleteBudget($id: ID!) { deleteBudget(id: $id) }', { id: budget.id });
      announce('Budget deleted.', 'success');
      load();
    } catch (error) {
      if (!error.unauthenticated) announce(error.message, 'error');
    }
  }

  function createForm() {
    const targetBox = h('div', { class: 'target-box' });
    const scope = field({
      label: 'Scope', name: 'scope', value: 'team',
      options: [
        { value: 'organization', label: 'Organization' },
        { value: 'team', label: 'Team' },
        { value: 'key', label: 'Key' },
        { value: 'user', label: 'End user' },
      ],
    });
    const scopeSelect = $('select', scope);
    function targetField() {
      switch (scopeSelect.value) {
        case 'team':
          return field({ label: 'Team', name: 'target', options: names.teams.map((t) => ({ value: t.id, label: t.name })) });
        case 'key':
          return field({
            label: 'Key', name: 'target',
            options: names.keys.filter((k) => k.status !== 'revoked').map((k) => ({ value: k.id, label: `${k.name} (${k.displayPrefix})` })),
          });
        case 'user':
          return field({ label: 'End user', name: 'target', required: true, hint: 'The `user` field of requests, or * for each end user separately.' });
        default:
          return null;
      }
    }
    scopeSelect.addEventListener('change', () => targetBox.replaceChildren(targetField() || ''));
    targetBox.append(targetField());
    return makeForm({
      submitLabel: 'Create budget',
      className: 'form form-grid',
      onSubmit: async (values, form) => {
        const input = {
          scope: values.scope,
          period: values.period,
          limitUsd: usdInput(values.limitUsd, 'limitUsd', { required: true }),
        };
        if (values.scope !== 'organization') input.target = values.target;
        const thresholds = parseThresholds(values.thresholds);
        if (thresholds) input.thresholds = thresholds;
        await api.gql(`mutation CreateBudget($input: CreateBudgetInput!) { createBudget(input: $input) { id } }`, { input });
        form.reset();
        targetBox.replaceChildren(targetField() || '');
        announce('Budget created.', 'success');
        await load();
      },
    },
    scope,
    targetBox,
    field({ label: 'Period', name: 'period', value: 'monthly', options: PERIODS.map((p) => ({ value: p, label: titleCase(p) })) }),
    field({ label: 'Limit (USD)', name: 'limitUsd', required: true, hint: 'Such as 100.00.', attrs: { inputmode: 'decimal', 'data-aliases': 'limit' } }),
    field({ label: 'Alert thresholds (%)', name: 'thresholds', value: '50, 80, 100', hint: 'Percent of the limit, comma-separated.' }));
  }

  load();
}

// ---------------------------------------------------------------------------------------------
// Analytics

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

function pageAnalytics(view) {
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
    if (key === null || key === undefined || key === '') return '(none)';
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

// ---------------------------------------------------------------------------------------------
// Request log

const REQUEST_RANGES = [
  { value: '1h', label: 'Last hour', ms: HOUR_MS },
  { value: '24h', label: 'Last 24 hours', ms: DAY_MS },
  { value: '7d', label: 'Last 7 days', ms: 7 * DAY_MS },
  { value: '30d', label: 'Last 30 days', ms: 30 * DAY_MS },
  { value: 'all', label: 'All time', ms: null },
];

const requestFilters = { range: '24h', outcome: '', status: '', model: '', keyId: '', endUser: '', tag: '' };
/** Records seen in the log, so that a detail opens without another query. */
const requestCache = new Map();

function statusBadge(status) {
  const kind = status < 400 ? 'success' : status === 429 ? 'warn' : 'danger';
  return badge(String(status), kind);
}

function pageRequests(view) {
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
  field({ label: 'Tag', name: 'tag', value: f.tag, hint: 'key=value' }));

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
      h('td', { 'data-label': 'Cache' }, r.cache));
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
          h('thead', {}, h('tr', {}, ['Time', 'Status', 'Model', 'Provider', 'Key', 'End user', 'Tokens in / out', 'Cost', 'Latency', 'Cache']
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
  timeToFirstTokenMs status error cache attempts stream`;

/** Finds one request: from the log already loaded, or from the API. */
async function findRequest(eventId) {
  if (requestCache.has(eventId)) return requestCache.get(eventId);
  const data = await api.gql(`query Request($id: String!) { request(eventId: $id) { ${REQUEST_FIELDS} } }`, { id: eventId });
  if (data.request) requestCache.set(eventId, data.request);
  return data.request;
}

function pageRequestDetail(view, eventId) {
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
    ];
    return card(`${r.requestedModel} · ${r.status}`,
      h('dl', { class: 'detail-list' }, rows.map(([label, value]) => h('div', {}, h('dt', {}, label), h('dd', {}, value)))));
  });
}

// ---------------------------------------------------------------------------------------------
// Settings

function pageSettings(view) {
  const admin = can('ADMIN');
  const orgBox = h('div', {});
  const limitsBox = h('div', {});
  const cacheBox = h('div', {});
  const tokensBox = h('div', {});
  view.append(pageHeader('Settings'),
    card('Organization', orgBox),
    h('div', { class: 'grid-2' },
      card('Rate limits', limitsBox),
      card('Cache policy', cacheBox)),
    card('Admin API tokens', tokensBox));

  const v = state.viewer;
  orgBox.append(h('dl', { class: 'detail-list compact' },
    h('div', {}, h('dt', {}, 'Name'), h('dd', {}, v.organization.name)),
    h('div', {}, h('dt', {}, 'Organization ID'), h('dd', {}, h('code', {}, v.organization.id))),
    h('div', {}, h('dt', {}, 'You'), h('dd', {}, `${v.email} · ${titleCase(v.role)}`))));

  const readOnly = () => (admin ? null : h('p', { class: 'muted' }, 'Only admins and owners can change these.'));

  fill(limitsBox, async () => {
    const data = await api.gql('query Limits { organizationRateLimits { rpm tpm } }');
    const limits = data.organizationRateLimits;
    const form = makeForm({
      submitLabel: 'Save rate limits',
      disabled: !admin,
      onSubmit: async (values) => {
        const input = { rpm: optionalInt(values.rpm, 'rpm'), tpm: optionalInt(values.tpm, 'tpm') };
        await api.gql('mutation SetLimits($limits: RateLimitsInput!) { setOrganizationRateLimits(limits: $limits) { rpm tpm } }', { limits: input });
        announce('Rate limits saved.', 'success');
      },
    },
    h('p', { class: 'muted' }, 'Defaults for keys that set no limits of their own. Empty means no limit.'),
    field({ label: 'Requests per minute', name: 'rpm', type: 'number', value: limits.rpm, attrs: { min: '1', inputmode: 'numeric', disabled: !admin } }),
    field({ label: 'Tokens per minute', name: 'tpm', type: 'number', value: limits.tpm, attrs: { min: '1', inputmode: 'numeric', disabled: !admin } }),
    readOnly());
    return form;
  });

  fill(cacheBox, async () => {
    const data = await api.gql('query Cache { cachePolicy(level: {}) { mode ttlSecs share } }');
    const policy = data.cachePolicy;
    const form = makeForm({
      submitLabel: 'Save cache policy',
      disabled: !admin,
      onSubmit: async (values) => {
        const input = {
          mode: values.mode || null,
          ttlSecs: optionalInt(values.ttlSecs, 'ttlSecs', { min: 1, max: 2592000 }),
          share: values.share || null,
        };
        await api.gql('mutation SetCache($level: PolicyLevelInput!, $policy: CachePolicyInput!) { setCachePolicy(level: $level, policy: $policy) { mode ttlSecs share } }', { level: {}, policy: input });
        announce('Cache policy saved.', 'success');
      },
    },
    h('p', { class: 'muted' }, 'Teams and keys may narrow these; the deployment’s cache mode is a ceiling.'),
    field({
      label: 'Mode', name: 'mode', value: policy.mode || '',
      options: [{ value: '', label: 'Deployment default' }, { value: 'OFF', label: 'Off' }, { value: 'EXACT', label: 'Exact match' }, { value: 'SEMANTIC', label: 'Semantic' }],
      attrs: { disabled: !admin },
    }),
    field({ label: 'Time to live (seconds)', name: 'ttlSecs', type: 'number', value: policy.ttlSecs, hint: 'Empty for the deployment default.', attrs: { min: '1', max: '2592000', inputmode: 'numeric', disabled: !admin, 'data-aliases': 'ttl' } }),
    field({
      label: 'Share answers with', name: 'share', value: policy.share || '',
      options: [{ value: '', label: 'Deployment default' }, { value: 'ORGANIZATION', label: 'The whole organization' }, { value: 'TEAM', label: 'The same team only' }],
      attrs: { disabled: !admin },
    }),
    readOnly());
    return form;
  });

  async function loadTokens() {
    await fill(tokensBox, async () => {
      const data = await api.gql('query Tokens { adminTokens { id name role displayPrefix createdAt expiresAt lastUsedAt revokedAt } }');
      const status = (t) => (t.revokedAt ? badge('revoked', 'danger') : t.expiresAt && t.expiresAt <= Date.now() ? badge('expired', 'muted') : badge('active', 'success'));
      return [
        h('p', { class: 'muted' }, 'Bearer tokens for scripts calling ', h('code', {}, `${window.location.origin}/graphql`), '. A token acts with its role in this organization.'),
        table({
          caption: 'Admin API tokens',
          empty: 'No admin tokens yet.',
          rows: data.adminTokens,
          columns: [
            { label: 'Name', cell: (t) => h('strong', {}, t.name) },
            { label: 'Prefix', cell: (t) => h('code', {}, t.displayPrefix) },
            { label: 'Role', cell: (t) => titleCase(t.role) },
            { label: 'Status', cell: status },
            { label: 'Last used', cell: (t) => timeEl(t.lastUsedAt, 'ago') },
            { label: 'Created', cell: (t) => timeEl(t.createdAt, 'date') },
            { label: 'Expires', cell: (t) => (t.expiresAt ? timeEl(t.expiresAt, 'date') : 'Never') },
            ...(admin ? [{
              label: 'Actions',
              className: 'actions',
              cell: (t) => (t.revokedAt ? '—' : h('button', {
                type: 'button',
                class: 'btn small danger',
                'aria-label': `Revoke admin token ${t.name}`,
                onclick: async () => {
                  const ok = await confirmDialog({ title: `Revoke admin token “${t.name}”?`, message: 'Scripts using it are refused from now on.', confirmLabel: 'Revoke token' });
                  if (!ok) return;
                  try {
                    await api.gql('mutation RevokeToken($id: ID!) { revokeAdminToken(id: $id) { id revokedAt } }', { id: t.id });
                    announce('Admin token revoked.', 'success');
                    loadTokens();
                  } catch (error) {
                    if (!error.unauthenticated) announce(error.message, 'error');
                  }
                },
              }, 'Revoke')),
            }] : []),
          ],
        }),
        admin ? h('h3', {}, 'Create a token') : null,
        admin ? makeForm({
          submitLabel: 'Create token',
          className: 'form form-grid',
          onSubmit: async (values, form) => {
            let expiresAt = null;
            if (values.expiresAt) {
              const day = parseDateInput(values.expiresAt);
              if (day === null || day + DAY_MS <= Date.now()) throw new FieldError('expiresAt', 'Choose a day in the future.');
              expiresAt = day + DAY_MS;
            }
            const data2 = await api.gql(`mutation CreateToken($name: String!, $role: Role!, $expiresAt: Int) {
                createAdminToken(name: $name, role: $role, expiresAt: $expiresAt) { secret token { id name displayPrefix } } }`,
            { name: values.name, role: values.role, expiresAt });
            const issued = data2.createAdminToken;
            form.reset();
            loadTokens();
            await secretDialog({
              title: 'Admin token created',
              intro: `Copy the token “${issued.token.name}” now: it is shown only this once.`,
              label: 'Admin token',
              copyLabel: 'Copy token',
              secret: issued.secret,
              prefix: issued.token.displayPrefix,
              snippets: [['curl', `curl ${window.location.origin}/graphql \\\n  -H "Authorization: Bearer ${issued.secret}" \\\n  -H "Content-Type: application/json" \\\n  -d '{"query": "{ viewer { email role } }"}'`]],
            });
          },
        },
        field({ label: 'Token name', name: 'name', required: true, hint: 'What uses it, such as “billing export”.', attrs: { maxlength: '100' } }),
        field({ label: 'Token role', name: 'role', value: 'VIEWER', options: roleOptions(can('OWNER')) }),
        field({ label: 'Token expires on', name: 'expiresAt', type: 'date', hint: 'Empty for never.', attrs: { min: isoDate(Date.now()) } })) : null,
      ];
    });
  }
  loadTokens();
}

// ---------------------------------------------------------------------------------------------
// Billing

const utcDateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeZone: 'UTC' });
const CARD_BRANDS = { visa: 'Visa', mastercard: 'Mastercard', amex: 'American Express', discover: 'Discover', diners: 'Diners Club', jcb: 'JCB', unionpay: 'UnionPay' };
const PLANS = {
  payg: ['Pay as you go', 'Provider cost plus a markup, invoiced monthly.'],
  byok: ['Bring your own keys', 'Your own provider keys; a platform fee, invoiced monthly.'],
};
const INVOICE_KINDS = { paid: 'success', open: 'warn', uncollectible: 'danger', void: 'muted', draft: 'muted' };
const BILLING_FIELDS = `enabled minTopUpUsd plan standing pastDueSince graceEndsAt paymentMethod { brand last4 expMonth expYear } creditUsd
  currentPeriod { start end runningUsd providerCostUsd projectedUsd freeAllowanceUsd freeUsedUsd creditUsedUsd }
  invoices { id status currency amountDueUsd amountPaidUsd hostedUrl pdfUrl periodStart periodEnd createdAt }`;

const OWN_KEYS_FIELDS = 'available inUse providers keys { provider hint createdAt } feePerRequestUsd feePerMillionTokensUsd';

/**
 * Bring your own key: the organization's own provider keys (only their last four characters
 * come back) and the switch between that plan and pay as you go. Owners change them; admins
 * see them. `reload` redraws the page after a change.
 */
function ownKeysCard(own, owner, reload) {
  const rows = own.providers.map((provider) => ({ provider, key: own.keys.find((k) => k.provider === provider) }));
  const keysTable = table({
    caption: 'Your provider keys',
    rows,
    columns: [
      { label: 'Provider', cell: (r) => h('code', {}, r.provider) },
      { label: 'Key', cell: (r) => (r.key ? h('code', {}, r.key.hint) : h('span', { class: 'muted' }, 'none')) },
      { label: 'Added', cell: (r) => (r.key ? timeEl(r.key.createdAt, 'date') : '—') },
      {
        label: 'Actions',
        className: 'actions',
        cell: (r) => (owner && r.key
          ? h('button', {
            type: 'button',
            class: 'btn small danger',
            'aria-label': `Remove the ${r.provider} key`,
            onclick: async () => {
              const sure = await confirmDialog({
                title: `Remove the ${r.provider} key?`,
                message: own.inUse ? `Requests routed to ${r.provider} are refused until a new key is added.` : 'It is deleted from Tollgate.',
                confirmLabel: 'Remove key',
              });
              if (!sure) return;
              try {
                await api.gql('mutation RemoveProviderKey($provider: String!) { deleteProviderKey(provider: $provider) }', { provider: r.provider });
                announce(`The ${r.provider} key was removed.`, 'success');
                reload();
              } catch (error) {
                if (!error.unauthenticated) announce(error.message, 'error');
              }
            },
          }, 'Remove')
          : '—'),
      },
    ],
  });
  const keyForm = owner ? makeForm({
    submitLabel: 'Save key',
    className: 'form inline',
    onSubmit: async (values, form) => {
      if (!values.apiKey) throw new FieldError('apiKey', 'Paste the provider’s API key.');
      await api.gql('mutation SetProviderKey($provider: String!, $apiKey: String!) { setProviderKey(provider: $provider, apiKey: $apiKey) { provider hint } }', { provider: values.provider, apiKey: values.apiKey });
      form.reset();
      announce(`The ${values.provider} key was saved. Only its last four characters are shown from now on.`, 'success');
      reload();
    },
  },
  field({ label: 'Provider', name: 'provider', options: own.providers.map((p) => ({ value: p, label: p })) }),
  field({ label: 'API key', name: 'apiKey', type: 'password', required: true, hint: 'Stored encrypted; never shown again.', attrs: { autocomplete: 'off', spellcheck: 'false' } })) : null;

  const planButton = owner ? h('button', {
    type: 'button',
    class: `btn${own.inUse ? '' : ' primary'}`,
    disabled: !own.inUse && own.keys.length === 0,
    onclick: async () => {
      const plan = own.inUse ? 'PAY_AS_YOU_GO' : 'BRING_YOUR_OWN_KEY';
      try {
        await api.gql('mutation SetPlan($plan: BillingPlan!) { setBillingPlan(plan: $plan) }', { plan });
        announce(own.inUse ? 'Back on pay as you go: requests use Tollgate’s provider keys.' : 'Requests now use your own provider keys.', 'success');
        reload();
      } catch (error) {
        if (!error.unauthenticated) announce(error.message, 'error');
      }
    },
  }, own.inUse ? 'Switch to pay as you go' : 'Use my own keys') : null;

  const fee = [
    Number(own.feePerRequestUsd) > 0 ? `${formatUsd(own.feePerRequestUsd)} per answered request` : null,
    Number(own.feePerMillionTokensUsd) > 0 ? `${formatUsd(own.feePerMillionTokensUsd)} per million tokens` : null,
  ].filter(Boolean).join(' plus ') || 'no platform fee';
  return card('Your own provider keys',
    h('p', {}, own.inUse
      ? `Requests go out with your own keys, and a model whose provider has no key of yours is refused. You pay ${fee} instead of provider cost.`
      : `Use your own provider accounts: requests go out with your keys and you pay ${fee} instead of provider cost.`),
    keysTable,
    keyForm,
    owner ? h('div', { class: 'button-row' }, planButton,
      !own.inUse && own.keys.length === 0 ? h('span', { class: 'hint' }, 'Add a key first.') : null) : h('p', { class: 'muted owner-note' }, 'Only owners can change provider keys or the plan.'));
}

/** Whole cents of a USD amount with at most two decimals (`"5"`, `"0.01"`), or null. */
function centsOf(amount) {
  const match = /^(\d+)(?:\.(\d{1,2}))?$/.exec(String(amount));
  return match ? BigInt(match[1]) * 100n + BigInt((match[2] || '').padEnd(2, '0')) : null;
}

/** A USD amount with at most two decimals, from `min` to `max` (USD strings), as a string. */
function topUpInput(value, name, { min = '5', max = '100000' } = {}) {
  const amount = usdInput(value, name, { required: true });
  const message = `Enter an amount from ${formatUsd(min)} to ${formatUsd(max)}, with at most two decimals.`;
  const cents = centsOf(amount);
  const [low, high] = [centsOf(min) ?? 500n, centsOf(max) ?? 10000000n];
  if (cents === null || cents < low || cents > high) throw new FieldError(name, message);
  return amount;
}

/** Sends the browser to a payment page the server handed out (Stripe Checkout or portal). */
function leaveFor(url) {
  const target = new URL(url, window.location.href);
  if (target.protocol !== 'https:' && target.protocol !== 'http:') throw new Error('The payment page address is not a web address.');
  window.location.assign(target.href);
}

function paymentCardEl(method) {
  const brand = CARD_BRANDS[method.brand.toLowerCase()] || titleCase(method.brand);
  const expiry = `${String(method.expMonth).padStart(2, '0')}/${method.expYear}`;
  const now = new Date();
  const expired = method.expYear < now.getFullYear() || (method.expYear === now.getFullYear() && method.expMonth < now.getMonth() + 1);
  return h('div', { class: 'payment-card' },
    h('p', { class: 'payment-card-number' },
      h('span', {}, brand), ' ',
      h('span', { class: 'payment-card-digits', 'aria-hidden': 'true' }, `•••• ${method.last4}`),
      h('span', { class: 'visually-hidden' }, `ending in ${method.last4}`)),
    h('p', { class: 'muted' }, `Expires ${expiry}`, expired ? [' ', badge('Expired', 'danger')] : null));
}

function freeAllowanceMeter(used, allowance) {
  const total = Number(allowance);
  const pct = total > 0 ? Math.min((Number(used) / total) * 100, 100) : 0;
  const text = `${formatUsd(used)} of ${formatUsd(allowance)} used`;
  const fillEl = h('div', { class: 'meter-spent' });
  fillEl.style.width = `${pct}%`;
  return h('div', {
    class: `meter ${pct >= 100 ? 'over' : pct >= 80 ? 'warn' : 'ok'}`,
    role: 'progressbar',
    'aria-label': 'Free allowance used',
    'aria-valuemin': '0',
    'aria-valuemax': '100',
    'aria-valuenow': String(Math.round(pct * 10) / 10),
    'aria-valuetext': text,
    title: text,
  }, fillEl);
}

function standingBanner(billing, owner) {
  if (billing.standing === 'grace') {
    return h('div', { class: 'alert warn', role: 'alert' },
      h('p', {}, h('strong', {}, 'A payment failed. '),
        'Requests are still served until ', timeEl(billing.graceEndsAt, 'datetime'),
        '; after that the gateway refuses them (HTTP 402) until the open invoice is paid.'),
      h('p', {}, owner ? 'Replace the card or pay the invoice through Manage billing.' : 'Ask an owner of the organization to replace the card or pay the invoice.'));
  }
  if (billing.standing === 'suspended') {
    return h('div', { class: 'alert error', role: 'alert' },
      h('p', {}, h('strong', {}, 'Service is suspended. '),
        'A payment failed', billing.pastDueSince ? [' on ', timeEl(billing.pastDueSince, 'date')] : null,
        ' and the grace period is over: the gateway refuses requests (HTTP 402) until the open invoice is paid.'),
      h('p', {}, owner ? 'Pay the invoice or replace the card through Manage billing.' : 'Ask an owner of the organization to pay the invoice.'));
  }
  return null;
}

function standingBadge(standing) {
  const kinds = { good: ['Good standing', 'success'], grace: ['Grace period', 'warn'], suspended: ['Suspended', 'danger'] };
  const [text, kind] = kinds[standing] || [standing, ''];
  return badge(text, kind);
}

function pageBilling(view, _param, query) {
  const owner = can('OWNER');
  const body = h('div', {});
  const refresh = h('button', { type: 'button', class: 'btn', onclick: () => load() }, 'Refresh');
  view.append(pageHeader('Billing', can('ADMIN') ? refresh : null), body);
  if (!can('ADMIN')) {
    body.append(emptyEl('Only admins and owners of the organization can see its billing.'));
    return;
  }

  const checkout = query && query.get('checkout');
  if (checkout === 'done') announce('Thank you: Stripe has your payment details. They show here as soon as Stripe confirms them.', 'success');
  else if (checkout === 'cancelled') announce('Checkout cancelled: nothing was saved or charged.');
  if (checkout) window.history.replaceState(null, '', '#/billing');

  /** A button that asks the server for a payment page and goes there. */
  function redirectButton(label, mutation, variables, { primary = false, ariaLabel } = {}) {
    const button = h('button', { type: 'button', class: `btn${primary ? ' primary' : ''}`, 'aria-label': ariaLabel }, label);
    button.addEventListener('click', async () => {
      button.disabled = true;
      button.setAttribute('aria-busy', 'true');
      try {
        const data = await api.gql(mutation, variables);
        const url = Object.values(data)[0].url;
        announce('Opening the payment page…');
        leaveFor(url);
      } catch (error) {
        button.disabled = false;
        button.removeAttribute('aria-busy');
        if (!error.unauthenticated) announce(error.message, 'error');
      }
    });
    return button;
  }

  const portalButton = () => redirectButton('Manage billing', 'mutation Portal { openBillingPortal { url } }', {});

  function render(billing, own) {
    if (!billing.enabled) {
      return card('No billing here', h('p', {}, 'This deployment does not bill: no payment provider is configured, so there is no card, credit or invoice to manage here.'),
        h('p', { class: 'muted' }, 'Spend is still metered: see the overview, analytics and budgets.'));
    }
    const p = billing.currentPeriod;
    const [planName, planText] = PLANS[billing.plan] || [billing.plan, ''];
    const ownerNote = (text) => (owner ? null : h('p', { class: 'muted owner-note' }, text));
    const method = billing.paymentMethod;
    const lastDay = p.end - 1;

    const invoices = table({
      caption: 'Invoices, newest first',
      empty: 'No invoices yet. The first arrives after the first month with spend beyond the free allowance.',
      rows: billing.invoices,
      rowAttrs: (i) => ({ dataset: { invoiceId: i.id } }),
      columns: [
        { label: 'Date', cell: (i) => timeEl(i.createdAt * 1000, 'date') },
        {
          label: 'Period',
          cell: (i) => (i.periodStart && i.periodEnd
            ? `${utcDateFormat.format(i.periodStart * 1000)} – ${utcDateFormat.format(i.periodEnd * 1000 - 1)}`
            : '—'),
        },
        { label: 'Status', cell: (i) => badge(titleCase(i.status), INVOICE_KINDS[i.status] || '') },
        { label: 'Amount due', numeric: true, cell: (i) => formatUsd(i.amountDueUsd) },
        { label: 'Amount paid', numeric: true, cell: (i) => formatUsd(i.amountPaidUsd) },
        {
          label: 'Links',
          className: 'actions',
          cell: (i) => {
            const when = dateFormat.format(i.createdAt * 1000);
            const links = [
              i.hostedUrl ? h('a', { href: i.hostedUrl, target: '_blank', rel: 'noopener', 'aria-label': `View the invoice of ${when} (opens in a new tab)` }, 'View') : null,
              i.pdfUrl ? h('a', { href: i.pdfUrl, target: '_blank', rel: 'noopener', 'aria-label': `Download the PDF of the invoice of ${when} (opens in a new tab)` }, 'PDF') : null,
            ].filter(Boolean);
            return links.length ? h('div', { class: 'button-row link-row' }, links) : '—';
          },
        },
      ],
    });

    const creditForm = owner ? makeForm({
      submitLabel: 'Buy credit',
      className: 'form inline',
      onSubmit: async (values) => {
        const amountUsd = topUpInput(values.amountUsd, 'amountUsd', { min: billing.minTopUpUsd });
        const data = await api.gql('mutation BuyCredit($amountUsd: String!) { startCheckout(purpose: CREDIT, amountUsd: $amountUsd) { url } }', { amountUsd });
        announce('Opening the payment page…');
        leaveFor(data.startCheckout.url);
      },
    },
    field({ label: 'Amount (USD)', name: 'amountUsd', value: '25', required: true, hint: `From ${formatUsd(billing.minTopUpUsd)}, with at most two decimals.`, attrs: { inputmode: 'decimal', autocomplete: 'off', 'data-aliases': 'amount' } })) : null;

    return [
      standingBanner(billing, owner),
      h('div', { class: 'grid-2' },
        card('Plan',
          h('dl', { class: 'detail-list compact' },
            h('div', {}, h('dt', {}, 'Plan'), h('dd', {}, h('strong', {}, planName), planText ? h('span', { class: 'cell-note' }, planText) : null)),
            h('div', {}, h('dt', {}, 'Standing'), h('dd', {}, standingBadge(billing.standing))),
            billing.graceEndsAt && billing.standing === 'grace'
              ? h('div', {}, h('dt', {}, 'Served until'), h('dd', {}, timeEl(billing.graceEndsAt, 'datetime')))
              : null)),
        card('Payment method',
          method ? paymentCardEl(method) : h('p', { class: 'muted' }, 'No card on file. Monthly usage beyond the free allowance and prepaid credit is charged to a card.'),
          owner
            ? h('div', { class: 'button-row' },
              redirectButton(method ? 'Replace card' : 'Add a card', 'mutation AddCard { startCheckout(purpose: PAYMENT_METHOD) { url } }', {}, { primary: !method }),
              portalButton())
            : ownerNote('Only owners can add or replace the card.'))),
      card(`This month: ${utcDateFormat.format(p.start)} – ${utcDateFormat.format(lastDay)} (UTC)`,
        h('div', { class: 'stats' },
          stat('Running cost', formatUsd(p.runningUsd), 'at your prices so far'),
          stat('Projected bill', formatUsd(p.projectedUsd), `by ${utcDateFormat.format(lastDay)} at this pace, after the free allowance and credit`),
          stat('Free allowance used', formatUsd(p.freeUsedUsd), `of ${formatUsd(p.freeAllowanceUsd)}`),
          stat('Credit used', formatUsd(p.creditUsedUsd), 'prepaid credit drawn'),
          stat('Provider cost', formatUsd(p.providerCostUsd), 'what providers charged')),
        Number(p.freeAllowanceUsd) > 0
          ? h('div', { class: 'billing-meter' },
            freeAllowanceMeter(p.freeUsedUsd, p.freeAllowanceUsd),
            h('p', { class: 'budget-figures' }, `Free allowance: ${formatUsd(p.freeUsedUsd)} of ${formatUsd(p.freeAllowanceUsd)} used this month`))
          : null,
        h('p', { class: 'hint billing-note' }, 'Usage is reported to Stripe every hour; the free allowance and prepaid credit are drawn before the card.')),
      card('Prepaid credit',
        h('div', { class: 'stats' }, stat('Credit left', formatUsd(billing.creditUsd), 'drawn before the card is charged')),
        creditForm,
        ownerNote('Only owners can buy credit.')),
      card('Invoices', invoices),
      own && own.available ? ownKeysCard(own, owner, load) : null,
    ];
  }

  let first = null;
  let own = null;
  let seq = 0;
  async function load() {
    const mine = ++seq;
    await fill(body, async () => {
      const data = await api.gql(`query Billing { billing { ${BILLING_FIELDS} } ownProviderKeys { ${OWN_KEYS_FIELDS} } }`);
      if (mine === seq && first === null) first = data.billing;
      own = data.ownProviderKeys;
      return render(data.billing, own);
    });
  }

  // Back from Checkout, what was paid arrives by webhook a moment later: look again a few
  // times until it shows (a new card or more credit), while the page is open.
  async function watchForPayment() {
    const signature = (b) => (b ? JSON.stringify([b.paymentMethod, b.creditUsd]) : '');
    const before = signature(first);
    for (let i = 0; i < 8; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 2500));
      if (!body.isConnected) return;
      try {
        const data = await api.gql(`query Billing { billing { ${BILLING_FIELDS} } }`);
        if (!body.isConnected) return;
        if (signature(data.billing) !== before) {
          body.replaceChildren(...render(data.billing, own).flat().filter(Boolean));
          announce('Payment details updated.', 'success');
          return;
        }
      } catch {
        return;
      }
    }
  }

  load().then(() => {
    if (checkout === 'done') watchForPayment();
  });
}

// ---------------------------------------------------------------------------------------------
// Shell and routing

const ROUTES = {
  overview: { title: 'Overview', render: pageOverview },
  keys: { title: 'Keys', render: pageKeys },
  teams: { title: 'Teams & members', render: pageTeams },
  budgets: { title: 'Budgets', render: pageBudgets },
  analytics: { title: 'Analytics', render: pageAnalytics },
  requests: { title: 'Request log', render: (view, param) => (param ? pageRequestDetail(view, param) : pageRequests(view)) },
  billing: { title: 'Billing', render: pageBilling },
  settings: { title: 'Settings', render: pageSettings },
  login: { title: 'Log in', render: pageLogin, public: true },
  signup: { title: 'Sign up', render: pageSignup, public: true },
  verify: { title: 'Finish signing up', render: pageVerify, public: true },
  accept: { title: 'Join an organization', render: pageAccept, public: true },
};

function go(hash) {
  if (window.location.hash === hash) route();
  else window.location.hash = hash;
}

/** `#/name/param?query`: the page, its parameter and the query (such as `?checkout=done`). */
function parseHash() {
  const raw = window.location.hash.replace(/^#\/?/, '');
  const at = raw.indexOf('?');
  const path = at >= 0 ? raw.slice(0, at) : raw;
  const query = new URLSearchParams(at >= 0 ? raw.slice(at + 1) : '');
  const [name, ...rest] = path.split('/');
  let param = rest.join('/');
  try {
    param = decodeURIComponent(param);
  } catch {
    // Leave a malformed escape as it is.
  }
  return { name: name || 'overview', param: param || null, query };
}

function renderAccount() {
  const account = $('#account');
  const v = state.viewer;
  // Links to pages for some roles only (`data-min-role` on their list item).
  for (const item of document.querySelectorAll('#nav [data-min-role]')) item.hidden = !can(item.dataset.minRole);
  if (!v) {
    account.replaceChildren();
    return;
  }
  account.replaceChildren(
    h('span', { class: 'account-org' }, v.organization.name),
    h('span', { class: 'account-user' }, v.email, ' ', badge(titleCase(v.role), 'muted')),
    h('button', { type: 'button', class: 'btn small', onclick: logOut }, 'Log out'));
}

async function logOut() {
  await api.logout();
  state.viewer = null;
  renderAccount();
  announce('You have logged out.');
  go('#/login');
}

function setNavOpen(open) {
  document.body.classList.toggle('nav-open', open);
  $('#menu-toggle').setAttribute('aria-expanded', String(open));
}

let routeSeq = 0;
let firstRoute = true;

async function route() {
  const seq = ++routeSeq;
  const { name, param, query } = parseHash();
  const def = ROUTES[name];
  setNavOpen(false);
  const main = $('#main');
  const view = h('div', { class: 'view' });

  if (def && def.public) {
    if ((name === 'login' || name === 'signup') && api.hasSession()) {
      try {
        if (await api.restore()) {
          go('#/overview');
          return;
        }
      } catch {
        // The server is unreachable: show the page anyway.
      }
    }
    document.body.classList.add('public');
    state.viewer = null;
    renderAccount();
  } else {
    if (!api.hasSession()) {
      state.afterLogin = window.location.hash && name !== 'login' ? window.location.hash : null;
      go('#/login');
      return;
    }
    try {
      await api.restore();
      await ensureViewer();
    } catch (error) {
      if (seq !== routeSeq) return;
      if (error.unauthenticated) {
        go('#/login');
        return;
      }
      document.body.classList.remove('public');
      main.replaceChildren(h('div', { class: 'view' }, pageHeader('Tollgate'), errorEl(error, route)));
      return;
    }
    if (seq !== routeSeq) return;
    document.body.classList.remove('public');
    for (const link of document.querySelectorAll('#nav a')) {
      if (link.dataset.route === name) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
  }
  if (seq !== routeSeq) return;

  main.replaceChildren(view);
  if (!def) {
    document.title = 'Not found · Tollgate';
    view.append(pageHeader('Page not found'), emptyEl('There is no page at this address.', h('a', { href: '#/overview' }, 'Go to the overview')));
  } else {
    document.title = `${def.title} · Tollgate`;
    try {
      def.render(view, param, query);
    } catch (error) {
      view.append(errorEl(error));
      reportBug(error);
    }
  }
  // Move focus to the new page's heading for keyboard and screen reader users (not on the
  // first load, where the browser's own start is expected).
  if (!firstRoute) {
    const heading = $('h1', view);
    if (heading && !document.querySelector('dialog[open]')) heading.focus({ preventScroll: false });
  }
  firstRoute = false;
  window.scrollTo(0, 0);
}

function start() {
  $('#menu-toggle').addEventListener('click', () => setNavOpen(!document.body.classList.contains('nav-open')));
  $('#skip-link').addEventListener('click', (event) => {
    event.preventDefault();
    $('#main').focus();
  });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && document.body.classList.contains('nav-open')) {
      setNavOpen(false);
      $('#menu-toggle').focus();
    }
  });
  api.onSessionEnd(() => {
    state.viewer = null;
    renderAccount();
    for (const dialog of document.querySelectorAll('dialog')) dialog.remove();
    announce('Your session has ended. Log in again.', 'error');
    const { name } = parseHash();
    if (!ROUTES[name] || !ROUTES[name].public) {
      state.afterLogin = window.location.hash;
      go('#/login');
    }
  });
  window.addEventListener('hashchange', route);
  route();
}

start();
