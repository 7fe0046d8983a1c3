// The invitations card of the Teams & members page (#/teams): owners invite members by a link
// shown once, and revoke pending invitations.

import * as api from './api.js';
import {
  announce, can, card, confirmDialog, dateTimeFormat, field, fill, h, makeForm, roleOptions,
  secretDialog, table, timeEl, titleCase,
} from './ui.js';

/** Pending invitations: owners send and revoke them, admins see them. */
export function invitationsCard() {
  const invitationsBox = h('div', {});
  const admin = can('ADMIN');
  const owner = can('OWNER');

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

  if (admin) loadInvitations();
  else invitationsBox.append(h('p', { class: 'muted' }, 'Owners invite members; admins and owners see pending invitations.'));
  return card('Invitations', invite, invitationsBox);
}
