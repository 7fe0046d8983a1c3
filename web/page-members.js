// The members card of the Teams & members page (#/teams): the organization's members; owners
// change roles and remove members, anyone may leave.

import * as api from './api.js';
import {
  announce, can, card, confirmDialog, fill, h, roleOptions, state, table, timeEl, titleCase,
} from './ui.js';
// The shell, which imports this module in turn: safe, as these run only once pages are shown.
import { ensureViewer, go, route } from './app.js';

/** The organization's members and their roles. */
export function membersCard() {
  const membersBox = h('div', {});
  // Members are the owners' to manage: invitations, roles, removals.
  const owner = can('OWNER');

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

  loadMembers();
  return card('Members', membersBox);
}
