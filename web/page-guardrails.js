// The Guardrails page (#/guardrails): the guardrail policy set on the organization, a team or a
// key, edited as JSON with a shortcut for what happens to each kind of personal data in
// prompts; and the policy being edited tried on a sample prompt before it is saved.

import * as api from './api.js';
import {
  announce, badge, can, card, field, FieldError, fill, h, loadNames, makeForm, pageHeader, table,
} from './ui.js';

/** The kinds of personal data and secrets the detectors find, as policies name them. */
const ENTITIES = [
  ['email', 'Email addresses'],
  ['phone', 'Phone numbers'],
  ['credit_card', 'Card numbers'],
  ['iban', 'IBANs'],
  ['ssn', 'US Social Security numbers'],
  ['ip_address', 'IP addresses'],
  ['secret', 'API keys and secrets'],
];

const PII_ACTIONS = [
  { value: '', label: 'As the level above decides' },
  { value: 'redact', label: 'Redact' },
  { value: 'block', label: 'Block the request' },
  { value: 'log', label: 'Log only' },
  { value: 'allow', label: 'Allow' },
];

const GET_POLICY = 'query Guardrails($level: PolicyLevelInput!) { guardrailPolicy(level: $level) }';
const SET_POLICY = 'mutation SetGuardrails($level: PolicyLevelInput!, $policy: JSON!) { setGuardrailPolicy(level: $level, policy: $policy) }';
const PREVIEW = 'query GuardrailPreview($policy: JSON!, $prompt: String!) { guardrailPreview(policy: $policy, prompt: $prompt) { text blockedBy actions } }';

/** The level a choice of the level picker names, as `PolicyLevelInput`. */
function levelInput(choice) {
  const [kind, id] = choice.split(':');
  if (kind === 'team') return { teamId: id };
  if (kind === 'key') return { keyId: id };
  return {};
}

/** The policy in the editor, or a FieldError placed under it. */
function readPolicy(text) {
  if (!text.trim()) return {};
  let policy;
  try {
    policy = JSON.parse(text);
  } catch (error) {
    throw new FieldError('policy', `Not JSON: ${error.message}`);
  }
  if (policy === null || typeof policy !== 'object' || Array.isArray(policy)) {
    throw new FieldError('policy', 'A policy is a JSON object: {"input": {…}, "output": {…}}.');
  }
  return policy;
}

/** A server refusal shown under the editor, naming the part of the policy at fault. */
function asPolicyError(error) {
  if (!(error instanceof api.ApiError) || !error.field) return error;
  const where = error.field === 'policy' ? '' : `${error.field}: `;
  return new FieldError('policy', `${where}${error.message}`);
}

const pretty = (policy) => JSON.stringify(policy, null, 2);

export function pageGuardrails(view) {
  const levelBox = h('div', {});
  const editorBox = h('div', {});
  const previewBox = h('div', {});
  view.append(pageHeader('Guardrails'),
    h('p', { class: 'muted' },
      'What the gateway checks in prompts and answers. A key’s requests are checked against its organization’s, team’s and own policies: for each kind of personal data the narrowest level that names it decides; lists add up.'),
    card('Policy', levelBox, editorBox),
    card('Test this policy on a sample prompt', previewBox));

  // The editor's textarea, shared with the preview (which tries the policy as edited).
  let editor = null;

  fill(levelBox, async () => {
    const names = await loadNames();
    const options = [{ value: 'organization', label: 'The organization' }];
    for (const team of names.teams) options.push({ value: `team:${team.id}`, label: `Team: ${team.name}` });
    for (const key of names.keys) {
      if (key.status === 'active') options.push({ value: `key:${key.id}`, label: `Key: ${key.name} (${key.displayPrefix})` });
    }
    const picker = field({ label: 'Set on', name: 'level', value: 'organization', options });
    const select = picker.querySelector('select');
    select.addEventListener('change', () => loadEditor(select.value));
    loadEditor(select.value);
    return picker;
  });

  function loadEditor(choice) {
    const level = levelInput(choice);
    // Organization policies need an admin; team and key policies are checked by the server
    // (team admins, a key's own creator), which says why when it refuses.
    const allowed = choice !== 'organization' || can('ADMIN');
    fill(editorBox, async () => {
      const data = await api.gql(GET_POLICY, { level });
      return policyForm(level, data.guardrailPolicy || {}, allowed);
    });
  }

  function policyForm(level, policy, allowed) {
    const textarea = field({
      label: 'Policy (JSON)', name: 'policy', type: 'textarea', value: pretty(policy),
      hint: 'input: pii, deny_keywords, deny_regex, deny_topics, max_tokens, max_output_tokens, allowed_models, denied_models; output: pii, deny_keywords, deny_regex, max_chars, require_citation; restore_in_answer; webhook. {} sets nothing.',
      attrs: { rows: '14', spellcheck: 'false', class: 'mono', disabled: !allowed },
    });
    editor = textarea.querySelector('textarea');

    // One select per kind of data, kept in step with input.pii in the JSON.
    const piiFields = ENTITIES.map(([entity, label]) => {
      const wrap = field({
        label, name: `pii_${entity}`, value: (policy.input && policy.input.pii && policy.input.pii[entity]) || '',
        options: PII_ACTIONS, attrs: { disabled: !allowed, 'data-entity': entity },
      });
      wrap.querySelector('select').addEventListener('change', (event) => setPii(entity, event.target.value));
      return wrap;
    });

    function setPii(entity, action) {
      let current;
      try {
        current = readPolicy(editor.value);
      } catch {
        announce('Fix the policy’s JSON first.', 'error');
        return;
      }
      const input = current.input || {};
      const pii = { ...(input.pii || {}) };
      if (action) pii[entity] = action;
      else delete pii[entity];
      if (Object.keys(pii).length) input.pii = pii;
      else delete input.pii;
      if (Object.keys(input).length) current.input = input;
      else delete current.input;
      editor.value = pretty(current);
    }

    function syncSelects(saved) {
      const pii = (saved.input && saved.input.pii) || {};
      for (const wrap of piiFields) {
        const select = wrap.querySelector('select');
        select.value = pii[select.dataset.entity] || '';
      }
    }

    return makeForm({
      submitLabel: 'Save policy',
      disabled: !allowed,
      onSubmit: async (values) => {
        const next = readPolicy(values.policy);
        let data;
        try {
          data = await api.gql(SET_POLICY, { level, policy: next });
        } catch (error) {
          throw asPolicyError(error);
        }
        editor.value = pretty(data.setGuardrailPolicy);
        syncSelects(data.setGuardrailPolicy);
        announce('Guardrail policy saved.', 'success');
      },
    },
    h('fieldset', { class: 'fieldset' },
      h('legend', {}, 'Personal data in prompts'),
      h('div', { class: 'grid-2' }, piiFields)),
    textarea,
    allowed ? null : h('p', { class: 'muted' }, 'Only admins and owners can change the organization’s policy.'));
  }

  // The preview: nothing is saved or sent to a provider.
  const result = h('div', { class: 'guardrail-preview', 'aria-live': 'polite' });
  previewBox.append(
    h('p', { class: 'muted' }, 'Tries the policy in the editor (saved or not) on a prompt: what the provider would receive, and what each rule did. Webhooks and topics are not called.'),
    makeForm({
      submitLabel: 'Test',
      onSubmit: async (values) => {
        if (!editor) throw new FieldError('prompt', 'The policy has not loaded yet.');
        let policy;
        try {
          policy = readPolicy(editor.value);
        } catch (error) {
          throw new FieldError('prompt', `The policy: ${error.message}`);
        }
        let data;
        try {
          data = await api.gql(PREVIEW, { policy, prompt: values.prompt });
        } catch (error) {
          const placed = asPolicyError(error);
          throw placed instanceof FieldError && error.field !== 'prompt'
            ? new FieldError('prompt', `The policy: ${placed.message}`)
            : placed;
        }
        showPreview(data.guardrailPreview);
      },
    },
    field({
      label: 'Sample prompt', name: 'prompt', type: 'textarea', required: true,
      value: 'Please email jane.doe@example.com the invoice for card 4111 1111 1111 1111.',
      attrs: { rows: '4', maxlength: '32768' },
    })),
    result);

  function showPreview(preview) {
    const actions = Array.isArray(preview.actions) ? preview.actions : [];
    // Through h(), which leaves out the missing parts (replaceChildren would show "null").
    result.replaceChildren(h('div', {},
      h('h3', {}, 'The provider would receive'),
      preview.blockedBy
        ? h('p', {}, badge('Blocked', 'danger'), ' by ', h('code', {}, preview.blockedBy), ': the request would be refused.')
        : null,
      h('pre', { class: 'preview-text' }, preview.text),
      h('h3', {}, 'What the rules did'),
      table({
        caption: 'Guardrail actions',
        empty: 'No rule matched.',
        rows: actions,
        columns: [
          { label: 'Policy', cell: (a) => String(a.policy ?? '') },
          { label: 'Rule', cell: (a) => h('code', {}, String(a.rule ?? '')) },
          { label: 'Action', cell: (a) => String(a.taken ?? '') },
          { label: 'Data', cell: (a) => (Array.isArray(a.entities) ? a.entities.join(', ') : '') },
        ],
      })));
  }
}
