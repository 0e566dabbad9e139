// The conflict queue: each field with competing values, side by side, and on
// an admin device the means to settle it.

import { api } from './api.js';
import { h, replace, errorBox, toast } from './dom.js';
import { t, fieldLabel, formatTime, formatValue } from './i18n.js';

let itemSeq = 0;

export async function renderConflicts(ctx) {
  const [st, items] = await Promise.all([ctx.status(), api.conflicts()]);
  if (!ctx.alive()) return;
  const canSettle = st.can_settle === true;
  const list = Array.isArray(items) ? items : [];
  const queue = h('div', { class: 'queue', id: 'conflict-queue' });
  replace(ctx.main,
    h('h1', { text: t('conflicts_title') }),
    h('p', { class: 'intro', text: t('conflicts_intro') }),
    canSettle ? null : readOnlyNote(),
    queue);
  fill(ctx, queue, list, canSettle);
}

export function readOnlyNote() {
  return h('div', { class: 'notice notice-readonly', role: 'note', data: { readonly: '' } }, t('read_only'));
}

function fill(ctx, queue, list, canSettle) {
  if (list.length === 0) {
    replace(queue, h('p', { class: 'empty', text: t('conflicts_none') }));
    return;
  }
  replace(queue, list.map((item) => conflictCard(ctx, queue, item, canSettle)));
}

function conflictCard(ctx, queue, item, canSettle) {
  const values = Array.isArray(item.values) ? item.values : [];
  const group = 'c' + (++itemSeq);
  const name = item.full_name || item.record;
  const problem = h('div', { class: 'card-error' });
  const settleBtn = canSettle ? h('button', { type: 'button', class: 'btn', disabled: true, text: t('settle') }) : null;

  const options = values.map((v, i) => {
    const radio = canSettle ? h('input', { type: 'radio', name: group, value: String(i), id: group + '-' + i }) : null;
    const body = [
      h('span', { class: 'value-text', text: formatValue(item.field, v.value) }),
      h('dl', { class: 'value-meta' },
        meta(t('by_device'), v.device || v.device_id || '—'),
        meta(t('by_officer'), v.officer || '—'),
        meta(t('at_time'), formatTime(v.at))),
      canSettle ? h('span', { class: 'pick' }, radio, h('span', { text: t('pick_value') })) : null,
    ];
    return canSettle ? h('label', { class: 'value-card', for: group + '-' + i, data: { value: v.value } }, body)
      : h('div', { class: 'value-card', data: { value: v.value } }, body);
  });

  let custom = null;
  let customInput = null;
  if (canSettle) {
    const radio = h('input', { type: 'radio', name: group, value: 'custom', id: group + '-custom' });
    customInput = h('input', { type: 'text', class: 'custom-input', autocomplete: 'off',
      'aria-label': t('corrected_value') + ': ' + fieldLabel(item.field) });
    customInput.addEventListener('input', () => {
      radio.checked = true;
      update();
    });
    custom = h('div', { class: 'value-card value-custom' },
      h('label', { class: 'pick', for: group + '-custom' }, radio, h('span', { text: t('corrected_value') })),
      customInput);
  }

  const card = h('article', { class: 'card conflict', data: { record: item.record, field: item.field } },
    h('header', { class: 'card-head' },
      h('h2', null, name, h('span', { class: 'field-name', text: ' · ' + fieldLabel(item.field) })),
      h('a', { class: 'link', href: '#/records/' + encodeURIComponent(item.record), text: t('open_record') })),
    h('div', { class: 'values' }, options, custom),
    problem,
    settleBtn ? h('div', { class: 'actions' }, settleBtn) : null);

  function choice() {
    const checked = card.querySelector('input[name="' + group + '"]:checked');
    if (!checked) return null;
    if (checked.value === 'custom') {
      const v = customInput.value.trim();
      return v === '' ? null : v;
    }
    return values[Number(checked.value)].value;
  }
  function update() {
    if (settleBtn) settleBtn.disabled = choice() === null;
  }
  if (canSettle) {
    card.addEventListener('change', update);
    settleBtn.addEventListener('click', async () => {
      const value = choice();
      if (value === null) return;
      settleBtn.disabled = true;
      replace(problem);
      try {
        // seen: every value the admin was shown. A value written since is
        // not superseded, so it stays as a conflict rather than being lost.
        await api.resolve(item.record, item.field, value, values.map((v) => v.op));
      } catch (err) {
        replace(problem, errorBox(err));
        update();
        return;
      }
      if (!ctx.alive()) return;
      card.remove();
      toast(t('settled', { name }));
      if (!queue.querySelector('.conflict')) replace(queue, h('p', { class: 'empty', text: t('conflicts_none') }));
      ctx.status().catch(() => {});
    });
  }
  return card;
}

function meta(label, value) {
  return h('div', null, h('dt', { text: label }), h('dd', { text: value }));
}
