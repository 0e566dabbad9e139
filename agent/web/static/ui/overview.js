// The overview: this device, its team, the queues, and what is safe.

import { h, replace } from './dom.js';
import { t, both, formatTime, roleLabel } from './i18n.js';

export async function renderOverview(ctx) {
  const st = await ctx.status();
  if (!ctx.alive()) return;
  draw(ctx, st);
  ctx.followStatus((fresh) => draw(ctx, fresh));
}

function num(n) {
  return String(Number(n) || 0);
}

// tile is one big figure, optionally a link to where it can be acted on.
function tile(label, value, opts) {
  const o = opts || {};
  const body = [
    h('span', { class: 'tile-value', text: value }),
    h('span', { class: 'tile-label', text: label }),
    o.hint ? h('span', { class: 'tile-hint', text: o.hint }) : null,
  ];
  const cls = 'tile' + (o.tone ? ' tile-' + o.tone : '');
  return o.href ? h('a', { class: cls, href: o.href, data: { tile: o.name || '' } }, body)
    : h('div', { class: cls, data: { tile: o.name || '' } }, body);
}

function draw(ctx, st) {
  const up = st.upstream || {};
  const peers = Array.isArray(st.peers) ? st.peers : [];
  const conflicts = Number(st.conflicts) || 0;
  const dups = Number(st.duplicates) || 0;
  const atRisk = Number(st.at_risk) || 0;

  replace(ctx.main,
    h('h1', { text: t('overview_title') }),
    alertsNotice(st, peers),
    h('section', { class: 'card device-card' },
      h('dl', { class: 'facts' },
        fact(t('device'), st.device || '—'),
        fact(t('role'), roleLabel(st.role)),
        fact(t('deployment'), st.deployment || '—'),
        fact(t('device_id'), st.device_id || '—', 'mono'))),
    h('section', { class: 'tiles' },
      tile(t('records_count'), num(st.records), { href: '#/records', name: 'records' }),
      tile(t('conflicts_count'), num(conflicts),
        { href: '#/conflicts', tone: conflicts ? 'warn' : 'ok', name: 'conflicts' }),
      tile(t('duplicates_count'), num(dups),
        { href: '#/duplicates', tone: dups ? 'warn' : 'ok', name: 'duplicates' }),
      tile(t('at_risk'), num(atRisk), { hint: t('at_risk_hint'), tone: atRisk ? 'danger' : 'ok', name: 'at_risk' }),
      tile(t('held_elsewhere'), num(st.held_elsewhere), { hint: t('held_elsewhere_hint'), name: 'held_elsewhere' })),
    h('div', { class: 'columns' },
      peersCard(peers),
      upstreamCard(st.role, up)));
}

// alertWords names the words of each alert kind the page knows.
const alertWords = { fork: 'alert_fork', clone: 'alert_clone' };

// alertsNotice shows what an operator must look at, in both languages
// whatever the switch says: a fork or a cloned identity is rare and must be
// understood.
function alertsNotice(st, peers) {
  const alerts = Array.isArray(st.alerts) ? st.alerts : [];
  if (alerts.length === 0) return null;
  const names = {};
  for (const p of peers) names[p.device_id] = p.name;
  if (st.device_id) names[st.device_id] = st.device;
  return h('section', { class: 'notice notice-alert', role: 'alert', data: { alerts: String(alerts.length) } },
    alerts.map((a) => {
      const device = names[a.device] ? names[a.device] + ' (' + a.device + ')' : a.device;
      const addrs = Array.isArray(a.addrs) ? a.addrs.join(', ') : '';
      const [first, second] = both(alertWords[a.kind] || 'alert_other',
        { device, seq: a.seq, kind: a.kind, addrs, since: formatTime(a.since) });
      return h('p', { data: { alert: a.kind || '' } },
        h('strong', { text: first }), ' ', h('span', { class: 'muted', text: second }));
    }));
}

function fact(label, value, cls) {
  return h('div', { class: 'fact' }, h('dt', { text: label }), h('dd', { class: cls || null, text: value }));
}

function peersCard(peers) {
  const body = peers.length === 0 ? h('p', { class: 'muted', text: t('peers_none') })
    : h('table', { class: 'table peers' },
      h('thead', null, h('tr', null,
        h('th', { text: t('peer_name') }), h('th', { text: t('role') }), h('th', { text: t('peer_state') }))),
      h('tbody', null, peers.map((p) => h('tr', { data: { peer: p.name || '' } },
        h('td', { text: p.name || p.device_id || '—' }),
        h('td', { text: roleLabel(p.role) }),
        h('td', null, peerState(p))))));
  return h('section', { class: 'card' }, h('h2', { text: t('peers_title') }), body);
}

function peerState(p) {
  if (!p.connected) return h('span', { class: 'badge badge-off', text: t('not_connected') });
  return [h('span', { class: 'badge badge-on', text: t('connected') }),
    p.syncing && !(p.session && p.session.in_sync) ? h('span', { class: 'badge badge-busy', text: t('syncing') }) : null];
}

function upstreamCard(role, up) {
  const hubs = Array.isArray(up.hubs) ? up.hubs : [];
  const parts = [h('h2', { text: t('upstream_title') })];
  if (role === 'hub') {
    parts.push(h('p', { class: 'muted', text: t('upstream_is_hub') }));
  } else if (hubs.length === 0) {
    parts.push(h('p', { class: 'muted', text: t('no_hub') }));
  }
  if (role === 'hub' || hubs.length > 0) {
    parts.push(h('dl', { class: 'facts' },
      role === 'hub' ? null : fact(t('hub_reachable'), up.reachable ? t('reachable_yes') : t('reachable_no')),
      role === 'hub' ? null : fact(t('last_contact'), formatTime(up.last_contact)),
      fact(t('delivered'), num(up.delivered)),
      fact(t('undelivered'), num(up.undelivered))));
    if (up.upload) {
      parts.push(h('p', { class: 'muted', text: t('upload_progress',
        { hub: up.upload.hub || '', sent: num(up.upload.sent_ops), pending: num(up.upload.pending_ops) }) }));
    }
    const origins = Object.values(up.origins || {});
    if (origins.length > 0) {
      origins.sort((a, b) => String(a.device).localeCompare(String(b.device)));
      parts.push(h('h3', { text: t('origins_title') }), h('table', { class: 'table origins' },
        h('thead', null, h('tr', null,
          h('th', { text: t('device') }), h('th', { class: 'num', text: t('captured') }),
          h('th', { class: 'num', text: t('delivered') }))),
        h('tbody', null, origins.map((o) => h('tr', null,
          h('td', { text: o.device || '—' }),
          h('td', { class: 'num', text: num(o.captured) }),
          h('td', { class: 'num', text: num(o.delivered) }))))));
    }
  }
  return h('section', { class: 'card' }, parts);
}
