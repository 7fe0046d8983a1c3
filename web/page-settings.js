// The Settings page (#/settings): the organization, then the rate limits (page-limits.js),
// cache policy (page-cache-policy.js) and admin API tokens (page-admin-tokens.js) cards.

import { card, h, pageHeader, state, titleCase } from './ui.js';
import { limitsCard } from './page-limits.js';
import { cachePolicyCard } from './page-cache-policy.js';
import { adminTokensCard } from './page-admin-tokens.js';

export function pageSettings(view) {
  const orgBox = h('div', {});
  view.append(pageHeader('Settings'),
    card('Organization', orgBox),
    h('div', { class: 'grid-2' },
      limitsCard(),
      cachePolicyCard()),
    adminTokensCard());

  const v = state.viewer;
  orgBox.append(h('dl', { class: 'detail-list compact' },
    h('div', {}, h('dt', {}, 'Name'), h('dd', {}, v.organization.name)),
    h('div', {}, h('dt', {}, 'Organization ID'), h('dd', {}, h('code', {}, v.organization.id))),
    h('div', {}, h('dt', {}, 'You'), h('dd', {}, `${v.email} · ${titleCase(v.role)}`))));
}
