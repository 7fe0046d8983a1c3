// The own provider keys card of the Billing page (#/billing): bring your own key, the
// organization's provider keys and the switch between that plan and pay as you go.

import * as api from './api.js';
import {
  announce, card, confirmDialog, field, FieldError, formatUsd, h, makeForm, table, timeEl,
} from './ui.js';

export const OWN_KEYS_FIELDS = 'available inUse providers keys { provider hint createdAt } feePerRequestUsd feePerMillionTokensUsd';

/**
 * Bring your own key: the organization's own provider keys (only their last four characters
 * come back) and the switch between that plan and pay as you go. Owners change them; admins
 * see them. `reload` redraws the page after a change.
 */
export function ownKeysCard(own, owner, reload) {
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
