// The cache policy card of the Settings page (#/settings): the organization's cache mode, time
// to live and sharing.

import * as api from './api.js';
import { announce, can, card, field, fill, h, makeForm, optionalInt, readOnlyNote } from './ui.js';

/** The organization's cache policy: mode, time to live and sharing. */
export function cachePolicyCard() {
  const admin = can('ADMIN');
  const cacheBox = h('div', {});

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
    readOnlyNote(admin));
    return form;
  });

  return card('Cache policy', cacheBox);
}
