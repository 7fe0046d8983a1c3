// The Billing page (#/billing, admins and owners): plan and standing, the card, this month's
// cost, prepaid credit and invoices; owners go to Stripe Checkout or the portal from here, and
// Checkout sends them back to #/billing?checkout=done. Own provider keys: page-provider-keys.js.

import * as api from './api.js';
import {
  announce, badge, can, card, dateFormat, emptyEl, field, FieldError, fill, formatUsd, h, makeForm,
  pageHeader, stat, table, timeEl, titleCase, usdInput,
} from './ui.js';
import { OWN_KEYS_FIELDS, ownKeysCard } from './page-provider-keys.js';

const utcDateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeZone: 'UTC' });
const CARD_BRANDS = { visa: 'Visa', mastercard: 'Mastercard', amex: 'American Express', discover: 'Discover', diners: 'Diners Club', jcb: 'JCB', unionpay: 'UnionPay' };
const PLANS = {
  payg: ['Pay as you go', 'Provider cost plus a markup, invoiced monthly.'],
  byok: ['Bring your own keys', 'Your own provider keys; a platform fee, invoiced monthly.'],
};
const INVOICE_KINDS = { paid: 'success', open: 'warn', uncollectible: 'danger', void: 'muted', draft: 'muted' };
const BILLING_FIELDS = `enabled minTopUpUsd plan standing pastDueSince graceEndsAt paymentMethod { brand last4 expMonth expYear } creditUsd
  currentPeriod { start end runningUsd providerCostUsd projectedUsd freeAllowanceUsd freeUsedUsd creditUsedUsd }
  invoices { id status currency amountDueUsd amountPaidUsd hostedUrl pdfUrl periodStart periodEnd createdAt }`;

/** Whole cents of a USD amount with at most two decimals (`"5"`, `"0.01"`), or null. */
function centsOf(amount) {
  const match = /^(\d+)(?:\.(\d{1,2}))?$/.exec(String(amount));
  return match ? BigInt(match[1]) * 100n + BigInt((match[2] || '').padEnd(2, '0')) : null;
}

/** A USD amount with at most two decimals, from `min` to `max` (USD strings), as a string. */
function topUpInput(value, name, { min = '5', max = '100000' } = {}) {
  const amount = usdInput(value, name, { required: true });
  const message = `Enter an amount from ${formatUsd(min)} to ${formatUsd(max)}, with at most two decimals.`;
  const cents = centsOf(amount);
  const [low, high] = [centsOf(min) ?? 500n, centsOf(max) ?? 10000000n];
  if (cents === null || cents < low || cents > high) throw new FieldError(name, message);
  return amount;
}

/** Sends the browser to a payment page the server handed out (Stripe Checkout or portal). */
function leaveFor(url) {
  const target = new URL(url, window.location.href);
  if (target.protocol !== 'https:' && target.protocol !== 'http:') throw new Error('The payment page address is not a web address.');
  window.location.assign(target.href);
}

function paymentCardEl(method) {
  const brand = CARD_BRANDS[method.brand.toLowerCase()] || titleCase(method.brand);
  const expiry = `${String(method.expMonth).padStart(2, '0')}/${method.expYear}`;
  const now = new Date();
  const expired = method.expYear < now.getFullYear() || (method.expYear === now.getFullYear() && method.expMonth < now.getMonth() + 1);
  return h('div', { class: 'payment-card' },
    h('p', { class: 'payment-card-number' },
      h('span', {}, brand), ' ',
      h('span', { class: 'payment-card-digits', 'aria-hidden': 'true' }, `•••• ${method.last4}`),
      h('span', { class: 'visually-hidden' }, `ending in ${method.last4}`)),
    h('p', { class: 'muted' }, `Expires ${expiry}`, expired ? [' ', badge('Expired', 'danger')] : null));
}

function freeAllowanceMeter(used, allowance) {
  const total = Number(allowance);
  const pct = total > 0 ? Math.min((Number(used) / total) * 100, 100) : 0;
  const text = `${formatUsd(used)} of ${formatUsd(allowance)} used`;
  const fillEl = h('div', { class: 'meter-spent' });
  fillEl.style.width = `${pct}%`;
  return h('div', {
    class: `meter ${pct >= 100 ? 'over' : pct >= 80 ? 'warn' : 'ok'}`,
    role: 'progressbar',
    'aria-label': 'Free allowance used',
    'aria-valuemin': '0',
    'aria-valuemax': '100',
    'aria-valuenow': String(Math.round(pct * 10) / 10),
    'aria-valuetext': text,
    title: text,
  }, fillEl);
}

function standingBanner(billing, owner) {
  if (billing.standing === 'grace') {
    return h('div', { class: 'alert warn', role: 'alert' },
      h('p', {}, h('strong', {}, 'A payment failed. '),
        'Requests are still served until ', timeEl(billing.graceEndsAt, 'datetime'),
        '; after that the gateway refuses them (HTTP 402) until the open invoice is paid.'),
      h('p', {}, owner ? 'Replace the card or pay the invoice through Manage billing.' : 'Ask an owner of the organization to replace the card or pay the invoice.'));
  }
  if (billing.standing === 'suspended') {
    return h('div', { class: 'alert error', role: 'alert' },
      h('p', {}, h('strong', {}, 'Service is suspended. '),
        'A payment failed', billing.pastDueSince ? [' on ', timeEl(billing.pastDueSince, 'date')] : null,
        ' and the grace period is over: the gateway refuses requests (HTTP 402) until the open invoice is paid.'),
      h('p', {}, owner ? 'Pay the invoice or replace the card through Manage billing.' : 'Ask an owner of the organization to pay the invoice.'));
  }
  return null;
}

function standingBadge(standing) {
  const kinds = { good: ['Good standing', 'success'], grace: ['Grace period', 'warn'], suspended: ['Suspended', 'danger'] };
  const [text, kind] = kinds[standing] || [standing, ''];
  return badge(text, kind);
}

export function pageBilling(view, _param, query) {
  const owner = can('OWNER');
  const body = h('div', {});
  const refresh = h('button', { type: 'button', class: 'btn', onclick: () => load() }, 'Refresh');
  view.append(pageHeader('Billing', can('ADMIN') ? refresh : null), body);
  if (!can('ADMIN')) {
    body.append(emptyEl('Only admins and owners of the organization can see its billing.'));
    return;
  }

  const checkout = query && query.get('checkout');
  if (checkout === 'done') announce('Thank you: Stripe has your payment details. They show here as soon as Stripe confirms them.', 'success');
  else if (checkout === 'cancelled') announce('Checkout cancelled: nothing was saved or charged.');
  if (checkout) window.history.replaceState(null, '', '#/billing');

  /** A button that asks the server for a payment page and goes there. */
  function redirectButton(label, mutation, variables, { primary = false, ariaLabel } = {}) {
    const button = h('button', { type: 'button', class: `btn${primary ? ' primary' : ''}`, 'aria-label': ariaLabel }, label);
    button.addEventListener('click', async () => {
      button.disabled = true;
      button.setAttribute('aria-busy', 'true');
      try {
        const data = await api.gql(mutation, variables);
        const url = Object.values(data)[0].url;
        announce('Opening the payment page…');
        leaveFor(url);
      } catch (error) {
        button.disabled = false;
        button.removeAttribute('aria-busy');
        if (!error.unauthenticated) announce(error.message, 'error');
      }
    });
    return button;
  }

  const portalButton = () => redirectButton('Manage billing', 'mutation Portal { openBillingPortal { url } }', {});

  function render(billing, own) {
    if (!billing.enabled) {
      return card('No billing here', h('p', {}, 'This deployment does not bill: no payment provider is configured, so there is no card, credit or invoice to manage here.'),
        h('p', { class: 'muted' }, 'Spend is still metered: see the overview, analytics and budgets.'));
    }
    const p = billing.currentPeriod;
    const [planName, planText] = PLANS[billing.plan] || [billing.plan, ''];
    const ownerNote = (text) => (owner ? null : h('p', { class: 'muted owner-note' }, text));
    const method = billing.paymentMethod;
    const lastDay = p.end - 1;

    const invoices = table({
      caption: 'Invoices, newest first',
      empty: 'No invoices yet. The first arrives after the first month with spend beyond the free allowance.',
      rows: billing.invoices,
      rowAttrs: (i) => ({ dataset: { invoiceId: i.id } }),
      columns: [
        { label: 'Date', cell: (i) => timeEl(i.createdAt * 1000, 'date') },
        {
          label: 'Period',
          cell: (i) => (i.periodStart && i.periodEnd
            ? `${utcDateFormat.format(i.periodStart * 1000)} – ${utcDateFormat.format(i.periodEnd * 1000 - 1)}`
            : '—'),
        },
        { label: 'Status', cell: (i) => badge(titleCase(i.status), INVOICE_KINDS[i.status] || '') },
        { label: 'Amount due', numeric: true, cell: (i) => formatUsd(i.amountDueUsd) },
        { label: 'Amount paid', numeric: true, cell: (i) => formatUsd(i.amountPaidUsd) },
        {
          label: 'Links',
          className: 'actions',
          cell: (i) => {
            const when = dateFormat.format(i.createdAt * 1000);
            const links = [
              i.hostedUrl ? h('a', { href: i.hostedUrl, target: '_blank', rel: 'noopener', 'aria-label': `View the invoice of ${when} (opens in a new tab)` }, 'View') : null,
              i.pdfUrl ? h('a', { href: i.pdfUrl, target: '_blank', rel: 'noopener', 'aria-label': `Download the PDF of the invoice of ${when} (opens in a new tab)` }, 'PDF') : null,
            ].filter(Boolean);
            return links.length ? h('div', { class: 'button-row link-row' }, links) : '—';
          },
        },
      ],
    });

    const creditForm = owner ? makeForm({
      submitLabel: 'Buy credit',
      className: 'form inline',
      onSubmit: async (values) => {
        const amountUsd = topUpInput(values.amountUsd, 'amountUsd', { min: billing.minTopUpUsd });
        const data = await api.gql('mutation BuyCredit($amountUsd: String!) { startCheckout(purpose: CREDIT, amountUsd: $amountUsd) { url } }', { amountUsd });
        announce('Opening the payment page…');
        leaveFor(data.startCheckout.url);
      },
    },
    field({ label: 'Amount (USD)', name: 'amountUsd', value: '25', required: true, hint: `From ${formatUsd(billing.minTopUpUsd)}, with at most two decimals.`, attrs: { inputmode: 'decimal', autocomplete: 'off', 'data-aliases': 'amount' } })) : null;

    return [
      standingBanner(billing, owner),
      h('div', { class: 'grid-2' },
        card('Plan',
          h('dl', { class: 'detail-list compact' },
            h('div', {}, h('dt', {}, 'Plan'), h('dd', {}, h('strong', {}, planName), planText ? h('span', { class: 'cell-note' }, planText) : null)),
            h('div', {}, h('dt', {}, 'Standing'), h('dd', {}, standingBadge(billing.standing))),
            billing.graceEndsAt && billing.standing === 'grace'
              ? h('div', {}, h('dt', {}, 'Served until'), h('dd', {}, timeEl(billing.graceEndsAt, 'datetime')))
              : null)),
        card('Payment method',
          method ? paymentCardEl(method) : h('p', { class: 'muted' }, 'No card on file. Monthly usage beyond the free allowance and prepaid credit is charged to a card.'),
          owner
            ? h('div', { class: 'button-row' },
              redirectButton(method ? 'Replace card' : 'Add a card', 'mutation AddCard { startCheckout(purpose: PAYMENT_METHOD) { url } }', {}, { primary: !method }),
              portalButton())
            : ownerNote('Only owners can add or replace the card.'))),
      card(`This month: ${utcDateFormat.format(p.start)} – ${utcDateFormat.format(lastDay)} (UTC)`,
        h('div', { class: 'stats' },
          stat('Running cost', formatUsd(p.runningUsd), 'at your prices so far'),
          stat('Projected bill', formatUsd(p.projectedUsd), `by ${utcDateFormat.format(lastDay)} at this pace, after the free allowance and credit`),
          stat('Free allowance used', formatUsd(p.freeUsedUsd), `of ${formatUsd(p.freeAllowanceUsd)}`),
          stat('Credit used', formatUsd(p.creditUsedUsd), 'prepaid credit drawn'),
          stat('Provider cost', formatUsd(p.providerCostUsd), 'what providers charged')),
        Number(p.freeAllowanceUsd) > 0
          ? h('div', { class: 'billing-meter' },
            freeAllowanceMeter(p.freeUsedUsd, p.freeAllowanceUsd),
            h('p', { class: 'budget-figures' }, `Free allowance: ${formatUsd(p.freeUsedUsd)} of ${formatUsd(p.freeAllowanceUsd)} used this month`))
          : null,
        h('p', { class: 'hint billing-note' }, 'Usage is reported to Stripe every hour; the free allowance and prepaid credit are drawn before the card.')),
      card('Prepaid credit',
        h('div', { class: 'stats' }, stat('Credit left', formatUsd(billing.creditUsd), 'drawn before the card is charged')),
        creditForm,
        ownerNote('Only owners can buy credit.')),
      card('Invoices', invoices),
      own && own.available ? ownKeysCard(own, owner, load) : null,
    ];
  }

  let first = null;
  let own = null;
  let seq = 0;
  async function load() {
    const mine = ++seq;
    await fill(body, async () => {
      const data = await api.gql(`query Billing { billing { ${BILLING_FIELDS} } ownProviderKeys { ${OWN_KEYS_FIELDS} } }`);
      if (mine === seq && first === null) first = data.billing;
      own = data.ownProviderKeys;
      return render(data.billing, own);
    });
  }

  // Back from Checkout, what was paid arrives by webhook a moment later: look again a few
  // times until it shows (a new card or more credit), while the page is open.
  async function watchForPayment() {
    const signature = (b) => (b ? JSON.stringify([b.paymentMethod, b.creditUsd]) : '');
    const before = signature(first);
    for (let i = 0; i < 8; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 2500));
      if (!body.isConnected) return;
      try {
        const data = await api.gql(`query Billing { billing { ${BILLING_FIELDS} } }`);
        if (!body.isConnected) return;
        if (signature(data.billing) !== before) {
          body.replaceChildren(...render(data.billing, own).flat().filter(Boolean));
          announce('Payment details updated.', 'success');
          return;
        }
      } catch {
        return;
      }
    }
  }

  load().then(() => {
    if (checkout === 'done') watchForPayment();
  });
}
