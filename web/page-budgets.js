// The Budgets page (#/budgets): budgets per organization, team, key and end user, with their
// spend; admins create, edit and delete them. The spend meter is also the overview's.

import * as api from './api.js';
import {
  $, announce, badge, can, card, confirmDialog, emptyEl, field, fill, fmtPct, formatUsd,
  formDialog, h, keyLabel, loadNames, makeForm, pageHeader, parseThresholds, PERIODS, state, table,
  titleCase, usdInput,
} from './ui.js';

export const BUDGET_FIELDS = `id scope target period limitUsd thresholds periodStart spentUsd reservedUsd remainingUsd createdAt updatedAt`;

// ---------------------------------------------------------------------------------------------
// Budgets: progress bar with reserved spend and threshold ticks

function budgetBar(budget) {
  const limit = Number(budget.limitUsd);
  const spent = Number(budget.spentUsd);
  const reserved = Number(budget.reservedUsd || 0);
  const thresholds = budget.thresholds || [];
  // The bar spans the limit, or further when an alert sits beyond it (a 120 % threshold).
  const span = Math.max(100, ...thresholds);
  const pct = limit > 0 ? (spent / limit) * 100 : spent > 0 ? Infinity : 0;
  const reservedPct = limit > 0 ? (reserved / limit) * 100 : 0;
  const over = spent >= limit && (limit > 0 || spent > 0);
  const spentWidth = Math.min(pct, span);
  const reservedWidth = Math.min(reservedPct, span - spentWidth);
  const shownPct = Number.isFinite(pct) ? pct : 100;
  const valueText = `${formatUsd(budget.spentUsd)} spent${reserved > 0 ? `, ${formatUsd(budget.reservedUsd)} reserved` : ''} of ${formatUsd(budget.limitUsd)} (${Number.isFinite(pct) ? fmtPct(pct / 100) : 'over'})${over ? ', over the limit' : ''}`;
  const spentEl = h('div', { class: 'meter-spent' });
  spentEl.style.width = `${(spentWidth / span) * 100}%`;
  const reservedEl = h('div', { class: 'meter-reserved' });
  reservedEl.style.width = `${(reservedWidth / span) * 100}%`;
  const ticks = thresholds.map((t) => {
    const tick = h('span', { class: 'meter-tick', title: `Alert at ${t}%` });
    tick.style.left = `${(t / span) * 100}%`;
    return tick;
  });
  const level = over ? 'over' : thresholds.some((t) => pct >= t) ? 'warn' : 'ok';
  return h('div', {
    class: `meter ${level}`,
    role: 'progressbar',
    'aria-label': 'Spent of the limit',
    'aria-valuemin': '0',
    'aria-valuemax': '100',
    'aria-valuenow': String(Math.round(Math.min(shownPct, 100) * 10) / 10),
    'aria-valuetext': valueText,
    title: valueText,
  }, spentEl, reservedEl, ticks);
}

export function budgetTargetLabel(budget, names) {
  switch (budget.scope) {
    case 'organization':
      return state.viewer ? state.viewer.organization.name : 'Organization';
    case 'team':
      return (names && names.team.get(budget.target)) || budget.target;
    case 'key':
      return keyLabel(names, budget.target);
    case 'user':
      return budget.target === '*' ? 'Each end user' : budget.target;
    default:
      return budget.target;
  }
}

export function budgetUsage(budget) {
  const over = Number(budget.spentUsd) >= Number(budget.limitUsd);
  return h('div', { class: 'budget-usage' },
    budgetBar(budget),
    h('p', { class: 'budget-figures' },
      h('span', {}, `${formatUsd(budget.spentUsd)} of ${formatUsd(budget.limitUsd)}`),
      Number(budget.reservedUsd || 0) > 0 ? h('span', { class: 'muted' }, ` · ${formatUsd(budget.reservedUsd)} reserved`) : null,
      over ? h('span', {}, ' ', badge('Over limit', 'danger')) : null));
}

const SCOPE_TITLES = { organization: 'Organization', team: 'Teams', key: 'Keys', user: 'End users' };

export function pageBudgets(view) {
  const listBox = h('div', {});
  const formBox = h('div', {});
  const admin = can('ADMIN');
  view.append(pageHeader('Budgets'),
    h('p', { class: 'muted lead' }, 'A budget refuses requests once its spend reaches the limit; alerts go out at each threshold. Periods start at 00:00 UTC, weeks on Monday.'),
    listBox,
    admin ? card('Create a budget', formBox) : null);
  let names = null;

  async function load() {
    await fill(listBox, async () => {
      const [data, loaded] = await Promise.all([api.gql(`query Budgets { budgets { ${BUDGET_FIELDS} } }`), loadNames()]);
      names = loaded;
      if (admin && !formBox.firstChild) formBox.append(createForm());
      if (!data.budgets.length) return emptyEl('No budgets yet.' + (admin ? ' Create one below.' : ''));
      const groups = ['organization', 'team', 'key', 'user']
        .map((scope) => [scope, data.budgets.filter((b) => b.scope === scope)])
        .filter(([, list]) => list.length);
      return groups.map(([scope, list]) => card(SCOPE_TITLES[scope], table({
        caption: `${SCOPE_TITLES[scope]} budgets`,
        rows: list,
        rowAttrs: (b) => ({ dataset: { budgetId: b.id } }),
        columns: [
          { label: scope === 'organization' ? 'Organization' : titleCase(scope === 'user' ? 'End user' : scope), cell: (b) => h('strong', {}, budgetTargetLabel(b, names)) },
          { label: 'Period', cell: (b) => titleCase(b.period) },
          { label: 'Spent', className: 'wide-cell', cell: budgetUsage },
          { label: 'Remaining', numeric: true, cell: (b) => formatUsd(b.remainingUsd) },
          { label: 'Alerts', cell: (b) => b.thresholds.map((t) => `${t}%`).join(', ') },
          ...(admin ? [{ label: 'Actions', className: 'actions', cell: budgetActions }] : []),
        ],
      })));
    });
  }

  function budgetActions(budget) {
    const label = `${budget.scope} budget ${budgetTargetLabel(budget, names)}`;
    return h('div', { class: 'button-row' },
      h('button', { type: 'button', class: 'btn small', 'aria-label': `Edit ${label}`, onclick: () => edit(budget) }, 'Edit'),
      h('button', { type: 'button', class: 'btn small danger', 'aria-label': `Delete ${label}`, onclick: () => remove(budget) }, 'Delete'));
  }

  async function edit(budget) {
    const updated = await formDialog({
      title: `Edit the ${budget.period} budget of ${budgetTargetLabel(budget, names)}`,
      submitLabel: 'Save budget',
      fields: [
        field({ label: 'Limit (USD)', name: 'limitUsd', value: budget.limitUsd, required: true, attrs: { inputmode: 'decimal', 'data-aliases': 'limit' } }),
        field({ label: 'Alert thresholds (%)', name: 'thresholds', value: budget.thresholds.join(', '), hint: 'Percent of the limit, comma-separated.' }),
      ],
      onSubmit: async (values) => {
        const input = { limitUsd: usdInput(values.limitUsd, 'limitUsd', { required: true }) };
        const thresholds = parseThresholds(values.thresholds);
        if (thresholds) input.thresholds = thresholds;
        const data = await api.gql(`mutation UpdateBudget($id: ID!, $input: UpdateBudgetInput!) { updateBudget(id: $id, input: $input) { ${BUDGET_FIELDS} } }`, { id: budget.id, input });
        return data.updateBudget;
      },
    });
    if (updated) {
      announce('Budget saved.', 'success');
      load();
    }
  }

  async function remove(budget) {
    const ok = await confirmDialog({
      title: 'Delete this budget?',
      message: `The ${budget.period} budget of ${budgetTargetLabel(budget, names)} (${formatUsd(budget.limitUsd)}) stops applying.`,
      confirmLabel: 'Delete budget',
    });
    if (!ok) return;
    try {
      await api.gql('mutation DeleteBudget($id: ID!) { deleteBudget(id: $id) }', { id: budget.id });
      announce('Budget deleted.', 'success');
      load();
    } catch (error) {
      if (!error.unauthenticated) announce(error.message, 'error');
    }
  }

  function createForm() {
    const targetBox = h('div', { class: 'target-box' });
    const scope = field({
      label: 'Scope', name: 'scope', value: 'team',
      options: [
        { value: 'organization', label: 'Organization' },
        { value: 'team', label: 'Team' },
        { value: 'key', label: 'Key' },
        { value: 'user', label: 'End user' },
      ],
    });
    const scopeSelect = $('select', scope);
    function targetField() {
      switch (scopeSelect.value) {
        case 'team':
          return field({ label: 'Team', name: 'target', options: names.teams.map((t) => ({ value: t.id, label: t.name })) });
        case 'key':
          return field({
            label: 'Key', name: 'target',
            options: names.keys.filter((k) => k.status !== 'revoked').map((k) => ({ value: k.id, label: `${k.name} (${k.displayPrefix})` })),
          });
        case 'user':
          return field({ label: 'End user', name: 'target', required: true, hint: 'The `user` field of requests, or * for each end user separately.' });
        default:
          return null;
      }
    }
    scopeSelect.addEventListener('change', () => targetBox.replaceChildren(targetField() || ''));
    targetBox.append(targetField());
    return makeForm({
      submitLabel: 'Create budget',
      className: 'form form-grid',
      onSubmit: async (values, form) => {
        const input = {
          scope: values.scope,
          period: values.period,
          limitUsd: usdInput(values.limitUsd, 'limitUsd', { required: true }),
        };
        if (values.scope !== 'organization') input.target = values.target;
        const thresholds = parseThresholds(values.thresholds);
        if (thresholds) input.thresholds = thresholds;
        await api.gql(`mutation CreateBudget($input: CreateBudgetInput!) { createBudget(input: $input) { id } }`, { input });
        form.reset();
        targetBox.replaceChildren(targetField() || '');
        announce('Budget created.', 'success');
        await load();
      },
    },
    scope,
    targetBox,
    field({ label: 'Period', name: 'period', value: 'monthly', options: PERIODS.map((p) => ({ value: p, label: titleCase(p) })) }),
    field({ label: 'Limit (USD)', name: 'limitUsd', required: true, hint: 'Such as 100.00.', attrs: { inputmode: 'decimal', 'data-aliases': 'limit' } }),
    field({ label: 'Alert thresholds (%)', name: 'thresholds', value: '50, 80, 100', hint: 'Percent of the limit, comma-separated.' }));
  }

  load();
}
