// The Teams & members page (#/teams): the teams card, then the members card (page-members.js)
// and the invitations card (page-invitations.js).

import * as api from './api.js';
import {
  announce, can, card, confirmDialog, field, fill, fmtInt, formDialog, h, makeForm, pageHeader,
  table, timeEl,
} from './ui.js';
import { membersCard } from './page-members.js';
import { invitationsCard } from './page-invitations.js';

export function pageTeams(view) {
  view.append(pageHeader('Teams & members'), teamsCard(), membersCard(), invitationsCard());
}

/** The organization's teams; admins create, rename and delete them. */
function teamsCard() {
  const teamsBox = h('div', {});
  const admin = can('ADMIN');

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

  loadTeams();
  return card('Teams', createTeam, teamsBox);
}
