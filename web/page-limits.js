// The rate limits card of the Settings page (#/settings): the organization's default limits
// for keys that set none of their own.

import * as api from './api.js';
import { announce, can, card, field, fill, h, makeForm, optionalInt, readOnlyNote } from './ui.js';

/** The organization's default rate limits, for keys that set none of their own. */
export function limitsCard() {
  const admin = can('ADMIN');
  const limitsBox = h('div', {});

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
    readOnlyNote(admin));
    return form;
  });

  return card('Rate limits', limitsBox);
}
