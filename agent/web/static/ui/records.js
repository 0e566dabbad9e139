// The dossier list (searchable) and one dossier with its history.

import { api } from './api.js';
import { h, replace, errorBox } from './dom.js';
import { t, fieldLabel, sortFields, formatTime, formatDate, formatValue, kindLabel } from './i18n.js';

const pageSize = 100;
const typingPause = 300; // ms after the last key before searching

export async function renderRecords(ctx) {
  const q0 = ctx.query.get('q') || '';
  const input = h('input', {
    type: 'search', id: 'search', name: 'q', value: q0, autocomplete: 'off',
    placeholder: t('search_placeholder'), 'aria-describedby': 'search-help',
  });
  const results = h('div', { class: 'results', id: 'results' });
  const form = h('form', { class: 'search', role: 'search' },
    h('label', { for: 'search', id: 'search-help', text: t('search_label') }),
    h('div', { class: 'search-row' }, input, h('button', { type: 'submit', class: 'btn', text: t('search_button') })));
  replace(ctx.main, h('h1', { text: t('records_title') }), form, results);

  let searchGen = 0;
  let timer = 0;
  const search = async (q) => {
    const gen = ++searchGen;
    // Keep the search in the address, so Back returns to it, without
    // re-routing (which would take the focus from the box).
    const hash = q ? '#/records?q=' + encodeURIComponent(q) : '#/records';
    if (window.location.hash !== hash) window.history.replaceState(null, '', hash);
    const stillWanted = () => ctx.alive() && gen === searchGen;
    await listInto(results, q, stillWanted);
  };
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    window.clearTimeout(timer);
    search(input.value.trim());
  });
  input.addEventListener('input', () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => search(input.value.trim()), typingPause);
  });
  await search(q0.trim());
}

// listInto fills el with the first page of dossiers matching q, and a button
// for the next pages. The agent does the matching (?q=: name, personal ID,
// commune, without regard to case or diacritics).
async function listInto(el, q, stillWanted) {
  let data;
  try {
    data = await api.records(q, '', pageSize);
  } catch (err) {
    if (stillWanted()) replace(el, errorBox(err));
    return;
  }
  if (!stillWanted()) return;
  const recs = Array.isArray(data.records) ? data.records : [];
  if (recs.length === 0) {
    replace(el, h('p', { class: 'empty', text: q ? t('records_none_match', { q }) : t('records_none') }));
    return;
  }
  const tbody = h('tbody');
  const count = h('p', { class: 'muted count-line' });
  const more = h('div', { class: 'more' });
  let shown = 0;
  const add = (list) => {
    for (const r of list) tbody.appendChild(recordRow(r));
    shown += list.length;
    count.textContent = t('shown_count', { n: shown });
  };
  const pager = (next) => {
    replace(more);
    if (!next) return;
    const b = h('button', { type: 'button', class: 'btn btn-secondary', text: t('load_more') });
    b.addEventListener('click', async () => {
      b.disabled = true;
      try {
        const page = await api.records(q, next, pageSize);
        if (!stillWanted()) return;
        add(Array.isArray(page.records) ? page.records : []);
        pager(page.next);
      } catch (err) {
        if (stillWanted()) replace(more, errorBox(err));
      }
    });
    more.appendChild(b);
  };
  const table = h('table', { class: 'table records' },
    h('thead', null, h('tr', null,
      h('th', { class: 'col-name', text: fieldLabel('full_name') }),
      h('th', { class: 'col-dob', text: fieldLabel('date_of_birth') }),
      h('th', { class: 'col-commune', text: fieldLabel('commune') }),
      h('th', { class: 'col-pid', text: fieldLabel('personal_id') }),
      h('th', { class: 'col-conf num', text: t('col_conflicts') }),
      h('th', { class: 'col-id', text: t('col_id') }))),
    tbody);
  replace(el, count, h('div', { class: 'table-wrap' }, table), more);
  add(recs);
  pager(data.next);
}

function recordRow(r) {
  const f = r.fields || {};
  const n = Object.keys(r.conflicts || {}).length;
  const href = '#/records/' + encodeURIComponent(r.id);
  const tr = h('tr', { class: 'row-link' + (r.retired_into ? ' retired' : ''), data: { id: r.id } },
    h('td', { class: 'col-name' }, h('a', { href, text: f.full_name || r.id }),
      r.retired_into ? h('span', { class: 'badge badge-off', text: t('merged_badge') }) : null),
    h('td', { class: 'col-dob', text: formatDate(f.date_of_birth) }),
    h('td', { class: 'col-commune', text: f.commune || '' }),
    h('td', { class: 'col-pid mono', text: f.personal_id || '' }),
    h('td', { class: 'col-conf num' }, n > 0 ? h('span', { class: 'badge badge-warn', text: String(n) }) : '0'),
    h('td', { class: 'col-id mono', title: r.id, text: r.id }));
  // The whole row opens the dossier: a big target on a small screen.
  tr.addEventListener('click', (ev) => {
    if (ev.target.closest('a')) return;
    window.location.hash = href;
  });
  return tr;
}

export async function renderRecord(ctx) {
  const id = ctx.params[0];
  const [rec, hist, files] = await Promise.all([
    api.record(id),
    api.history(id).then((v) => ({ ok: v }), (err) => ({ err })),
    api.attachments(id).then((v) => ({ ok: v }), (err) => ({ err })),
  ]);
  if (!ctx.alive()) return;
  const f = rec.fields || {};
  const conflicts = rec.conflicts || {};
  const names = sortFields(Array.from(new Set(Object.keys(f).concat(Object.keys(conflicts)))));

  const retired = rec.retired_into ? h('div', { class: 'notice notice-retired', role: 'note' },
    h('p', { text: t('retired_note') }),
    h('a', { class: 'btn btn-secondary', href: '#/records/' + encodeURIComponent(rec.retired_into), data: { survivor: rec.retired_into } },
      t('retired_link') + ' (' + rec.retired_into + ')')) : null;

  const mergedFrom = Array.isArray(rec.merged_from) ? rec.merged_from : [];
  const merged = mergedFrom.length ? h('div', { class: 'notice notice-merged', role: 'note' },
    h('p', { text: t('merged_from_note') }),
    h('ul', { class: 'merged-list' }, mergedFrom.map((other) => h('li', null,
      h('a', { class: 'link mono', href: '#/records/' + encodeURIComponent(other), data: { merged: other }, text: other }))))) : null;

  const rows = names.map((name) => {
    const values = conflicts[name];
    if (!values || values.length < 2) {
      return h('div', { class: 'field', data: { field: name } },
        h('dt', { text: fieldLabel(name) }), h('dd', { text: formatValue(name, f[name]) }));
    }
    return h('div', { class: 'field field-conflict', data: { field: name } },
      h('dt', null, fieldLabel(name), h('span', { class: 'badge badge-warn', text: t('field_conflict', { n: values.length }) })),
      h('dd', null,
        h('ul', { class: 'siblings' }, values.map((v) => h('li', null,
          h('span', { class: 'sibling-value', text: formatValue(name, v.value) }),
          h('span', { class: 'sibling-meta', text: who(v) })))),
        h('a', { href: '#/conflicts', class: 'link', text: t('go_settle') })));
  });

  const meta = h('dl', { class: 'facts facts-inline' },
    metaFact(t('created_by'), rec.created_by || '—'),
    metaFact(t('created'), rec.created_at ? formatTime(rec.created_at) : '—'),
    metaFact(t('updated'), rec.updated_at ? formatTime(rec.updated_at) : '—'));

  replace(ctx.main,
    h('p', null, h('a', { href: '#/records', class: 'link', text: t('back_to_list') })),
    h('h1', null, f.full_name || t('record_title'), ' ', h('span', { class: 'record-id mono', text: rec.id })),
    retired,
    merged,
    h('section', { class: 'card' }, h('h2', { text: t('fields_title') }), h('dl', { class: 'fields' }, rows), meta),
    biometricsCard(files),
    h('section', { class: 'card' }, h('h2', { text: t('history_title') }),
      hist.err ? errorBox(hist.err) : historyTable(Array.isArray(hist.ok) ? hist.ok : [])));
}

function metaFact(label, value) {
  return h('div', { class: 'fact' }, h('dt', { text: label }), h('dd', { text: value }));
}

// who says where a value came from: device, officer, time.
function who(v) {
  return [v.device || v.device_id || '—', v.officer || null, formatTime(v.at)].filter(Boolean).join(' · ');
}

function historyTable(ops) {
  if (ops.length === 0) return h('p', { class: 'muted', text: t('history_none') });
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table history' },
    h('thead', null, h('tr', null,
      h('th', { class: 'col-time', text: t('col_time') }),
      h('th', { text: t('col_device') }),
      h('th', { text: t('col_officer') }),
      h('th', { text: t('col_kind') }),
      h('th', { class: 'col-changes', text: t('col_changes') }))),
    h('tbody', null, ops.map((op) => h('tr', { data: { op: op.op || '', kind: op.kind || '' } },
      h('td', { class: 'col-time', text: formatTime(op.at) }),
      h('td', { text: op.device || op.device_id || '—' }),
      h('td', { text: op.officer || t('nobody') }),
      h('td', { text: kindLabel(op.kind) }),
      h('td', { class: 'col-changes' }, changes(op.fields || {})))))));
}

// changes lists the fields an op wrote. System fields say what they mean,
// with a link to the other dossier.
function changes(fields) {
  const names = Object.keys(fields);
  const items = [];
  for (const name of sortFields(names)) {
    const v = fields[name];
    items.push(h('li', null, h('span', { class: 'change-field', text: fieldLabel(name) + ': ' }),
      v === '' ? h('em', { text: t('cleared') }) : formatValue(name, v)));
  }
  for (const name of names.filter((n) => n.startsWith('_')).sort()) {
    const v = fields[name];
    let label = null;
    let other = '';
    if (name === '_retired_into') {
      label = t('sys_retired_into');
      other = v;
    } else if (name.startsWith('_merged_from.')) {
      label = t('sys_merged_from');
      other = name.slice('_merged_from.'.length);
    } else if (name.startsWith('_distinct.')) {
      label = t('sys_distinct');
      other = name.slice('_distinct.'.length);
    }
    if (label === null) continue;
    items.push(h('li', null, h('span', { class: 'change-field', text: label + ': ' }),
      other ? h('a', { class: 'link mono', href: '#/records/' + encodeURIComponent(other), text: other }) : ''));
  }
  return h('ul', { class: 'changes' }, items);
}

const fingers = ['right_thumb', 'right_index', 'right_middle', 'right_ring', 'right_little',
  'left_thumb', 'left_index', 'left_middle', 'left_ring', 'left_little'];

// biometricsCard shows the dossier's face photo and which of the ten
// fingerprints exist. An agent without attachments (an older one answers
// 404 or 501) shows nothing; another error shows the error.
function biometricsCard(files) {
  if (files.err && (files.err.status === 404 || files.err.status === 501)) return null;
  const body = files.err ? [errorBox(files.err)] : biometrics(Array.isArray(files.ok) ? files.ok : []);
  return h('section', { class: 'card biometrics' }, h('h2', { text: t('biometrics_title') }), ...body);
}

function biometrics(list) {
  const of = (kind, finger) => list.filter((a) => a.kind === kind && (finger === undefined || a.finger === finger));
  const photos = of('photo');
  const photo = h('figure', { class: 'photo', data: { photos: String(photos.length) } },
    photos.length === 0 ? h('p', { class: 'muted', text: t('photo_none') }) : null,
    ...photos.map((a) => a.complete
      ? h('img', { src: api.attachmentURL(a.sha256), alt: t('photo'), data: { sha256: a.sha256 } })
      : h('p', { class: 'muted', text: t('photo_incomplete') })),
    photos.length > 1 ? h('span', { class: 'badge badge-warn', text: t('attachment_conflict', { n: photos.length }) }) : null,
    ...photos.map((a) => h('figcaption', { class: 'muted', text: meta(a) })));
  const have = fingers.filter((f) => of('fingerprint', f).length > 0).length;
  const grid = h('ul', { class: 'fingers' }, fingers.map((f) => {
    const got = of('fingerprint', f);
    const state = got.length === 0 ? 'missing' : got.every((a) => a.complete) ? 'present' : 'incomplete';
    const note = state === 'missing' ? t('finger_missing') : state === 'incomplete' ? t('finger_incomplete') : got.map(meta).join('; ');
    return h('li', { class: 'finger finger-' + state, data: { finger: f, state } },
      h('span', { class: 'finger-name', text: t('finger_' + f) }),
      got.length > 1 ? h('span', { class: 'badge badge-warn', text: t('attachment_conflict', { n: got.length }) }) : null,
      h('span', { class: 'finger-note', text: note }));
  }));
  const docs = of('document');
  return [
    h('div', { class: 'biometrics-row' },
      h('div', null, h('h3', { text: t('photo') }), photo),
      h('div', null, h('h3', null, t('fingerprints'), ' ', h('span', { class: 'muted', text: t('fingers_count', { n: have }) })), grid)),
    docs.length ? h('div', null, h('h3', { text: t('documents') }),
      h('ul', { class: 'documents' }, docs.map((a) => h('li', null,
        a.complete ? h('a', { class: 'link', href: api.attachmentURL(a.sha256), text: a.media_type }) : h('span', { text: a.media_type }),
        ' ', h('span', { class: 'muted', text: meta(a) }))))) : null,
  ];
}

// meta says an attachment's size, the device that captured it and when.
function meta(a) {
  const kb = a.size >= 1024 * 1024 ? (a.size / 1024 / 1024).toFixed(1) + ' MB' : Math.max(1, Math.round(a.size / 1024)) + ' KB';
  return t('attachment_meta', { size: kb, device: a.captured_by || a.captured_by_id || '—', time: a.captured_at ? formatTime(a.captured_at) : '—' });
}
