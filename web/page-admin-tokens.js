// The admin API tokens card of the Settings page (#/settings): bearer tokens for scripts
// calling /graphql, each shown once when created.

import * as api from './api.js';
import {
  announce, badge, can, card, confirmDialog, DAY_MS, field, FieldError, fill, h, isoDate, makeForm,
  parseDateInput, roleOptions, secretDialog, table, timeEl, titleCase,
} from './ui.js';

/** Admin API tokens: admins create and revoke them. */
export function adminTokensCard() {
  const admin = can('ADMIN');
  const tokensBox = h('div', {});

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
  return card('Admin API tokens', tokensBox);
}
