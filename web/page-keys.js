// The Keys page (#/keys): virtual keys, created, rotated, disabled and revoked; and the panel
// that shows a new key's secret once, with examples (also shown after sign-up).

import * as api from './api.js';
import {
  announce, badge, can, confirmDialog, DAY_MS, field, FieldError, fill, fmtInt, formatUsd,
  formDialog, h, isoDate, optionalInt, pageHeader, parseDateInput, parseTags, PERIODS,
  secretDialog, splitList, state, table, timeEl, titleCase, usdInput,
} from './ui.js';

const KEY_FIELDS = `id teamId team { id name } name displayPrefix status allowedModels expiresAt rpmLimit tpmLimit
  budgetUsd budgetPeriod tags { key value } createdBy revokedAt rotatedTo lastUsedAt createdAt`;

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
export async function showNewKey({ title, secret, prefix, name }) {
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

export function pageKeys(view) {
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
