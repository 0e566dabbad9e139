// The duplicate queue: dossiers that may be one person, side by side field by
// field; on an admin device, merge them or mark them as different people.

import { api } from './api.js';
import { h, replace, errorBox, toast } from './dom.js';
import { t, fieldLabel, sortFields, formatTime, formatValue } from './i18n.js';
import { readOnlyNote } from './conflicts.js';

let groupSeq = 0;

export async function renderDuplicates(ctx) {
  const [st, groups] = await Promise.all([ctx.status(), api.duplicates()]);
  if (!ctx.alive()) return;
  const canSettle = st.can_settle === true;
  const list = Array.isArray(groups) ? groups : [];
  // Each group shows whole dossiers: fetch them all before drawing, so the
  // page does not jump while the admin reads it.
  const loaded = await Promise.all(list.map((g) => loadGroup(g)));
  if (!ctx.alive()) return;
  const queue = h('div', { class: 'queue', id: 'duplicate-queue' });
  replace(ctx.main,
    h('h1', { text: t('duplicates_title') }),
    h('p', { class: 'intro', text: t('duplicates_intro') }),
    canSettle ? null : readOnlyNote(),
    queue);
  if (loaded.length === 0) {
    replace(queue, h('p', { class: 'empty', text: t('duplicates_none') }));
    return;
  }
  replace(queue, loaded.map((g) => groupCard(ctx, queue, g, canSettle)));
}

async function loadGroup(g) {
  const ids = Array.isArray(g.records) ? g.records : [];
  try {
    const records = await Promise.all(ids.map((id) => api.record(id)));
    return { group: g, records };
  } catch (err) {
    return { group: g, records: [], err };
  }
}

function reasonText(g) {
  if (g.reason === 'personal_id') return t('reason_personal_id');
  if (g.reason === 'name_dob') return t('reason_name_dob');
  if (g.reason === 'merged_both_ways') return t('reason_merged_both_ways');
  return String(g.reason || '');
}

function groupCard(ctx, queue, loaded, canSettle) {
  const g = loaded.group;
  const gid = 'g' + (++groupSeq);
  const ids = Array.isArray(g.records) ? g.records : [];
  const recs = loaded.records;
  const card = h('article', { class: 'card duplicate', data: { records: ids.join(' ') } },
    h('header', { class: 'card-head' },
      h('h2', null, reasonText(g), recs.length ? h('span', { class: 'dup-key', text: ': ' + sharedText(g, recs[0]) }) : null)));
  if (loaded.err) {
    card.appendChild(errorBox(loaded.err));
    return card;
  }
  const fieldNames = sortFields(Array.from(new Set(recs.flatMap((r) => Object.keys(r.fields || {})))));
  const value = (i, name) => ((recs[i].fields || {})[name] || '');

  // The admin's choices: the dossier kept, which dossiers are the same
  // person (only asked when there are more than two), and per field which
  // dossier's value the kept one takes.
  const state = { survivor: 0, included: recs.map(() => true), choice: {}, touched: {} };
  const defaultChoice = (name) => {
    if (value(state.survivor, name) !== '') return state.survivor;
    const i = recs.findIndex((_, j) => state.included[j] && value(j, name) !== '');
    return i < 0 ? state.survivor : i;
  };
  const differs = (name) => new Set(chosenIndexes().map((i) => value(i, name))).size > 1;

  const tableWrap = h('div', { class: 'table-wrap' });
  const summary = h('p', { class: 'summary' });
  const problem = h('div', { class: 'card-error' });
  const mergeBtn = h('button', { type: 'button', class: 'btn', text: t('merge') });
  const distinctBtn = h('button', { type: 'button', class: 'btn btn-secondary', text: t('distinct') });

  function chosenIndexes() {
    return recs.map((_, i) => i).filter((i) => state.included[i]);
  }
  function draw() {
    for (const name of fieldNames) {
      // A choice of a dossier since left out of the merge goes back to
      // the default.
      if (state.touched[name] && !state.included[state.choice[name]]) state.touched[name] = false;
      if (!state.touched[name]) state.choice[name] = defaultChoice(name);
    }
    replace(tableWrap, table());
    const others = chosenIndexes().filter((i) => i !== state.survivor);
    const enough = state.included[state.survivor] && others.length > 0;
    summary.textContent = enough ? t('merge_summary', {
      keep: label(recs[state.survivor]), others: others.map((i) => label(recs[i])).join(', '),
    }) : t('need_two');
    mergeBtn.disabled = !enough;
    distinctBtn.disabled = chosenIndexes().length < 2;
  }

  function table() {
    const many = recs.length > 2;
    const headCells = recs.map((r, i) => h('th', { class: 'dup-col' + (i === state.survivor ? ' survivor' : '') },
      h('a', { class: 'link', href: '#/records/' + encodeURIComponent(r.id), text: (r.fields || {}).full_name || r.id }),
      h('span', { class: 'dup-id mono', text: r.id }),
      h('span', { class: 'dup-meta', text: [r.created_by, r.created_at ? formatTime(r.created_at) : ''].filter(Boolean).join(' · ') }),
      canSettle ? h('label', { class: 'pick' },
        h('input', { type: 'radio', name: gid + '-keep', checked: i === state.survivor,
          onchange: () => { state.survivor = i; state.included[i] = true; draw(); } }),
        h('span', { text: t('keep_this') })) : null,
      canSettle && many ? h('label', { class: 'pick' },
        h('input', { type: 'checkbox', checked: state.included[i], disabled: i === state.survivor,
          onchange: (ev) => { state.included[i] = ev.target.checked; draw(); } }),
        h('span', { text: t('include') })) : null));
    const rows = fieldNames.map((name) => {
      const diff = differs(name);
      return h('tr', { class: diff ? 'differs' : null, data: { field: name } },
        h('th', { scope: 'row' }, fieldLabel(name), diff ? h('span', { class: 'badge badge-warn', text: t('differs') }) : null),
        recs.map((r, i) => {
          const v = value(i, name);
          const conflicted = (r.conflicts || {})[name];
          const text = [h('span', { class: 'cell-value', text: formatValue(name, v) }),
            conflicted ? h('span', { class: 'badge badge-warn', text: t('nav_conflicts') }) : null];
          const off = !state.included[i];
          if (!canSettle || !diff || v === '' || off) {
            return h('td', { class: off ? 'excluded' : null }, text);
          }
          return h('td', { class: state.choice[name] === i ? 'chosen' : null },
            h('label', { class: 'pick pick-value' },
              h('input', { type: 'radio', name: gid + '-f-' + name, checked: state.choice[name] === i,
                onchange: () => { state.choice[name] = i; state.touched[name] = true; draw(); } }),
              text));
        }));
    });
    return h('table', { class: 'table compare' },
      h('thead', null, h('tr', null, h('th', { class: 'col-field', text: t('field') }), headCells)),
      h('tbody', null, rows));
  }

  async function act(run) {
    mergeBtn.disabled = true;
    distinctBtn.disabled = true;
    replace(problem);
    try {
      const done = await run();
      if (!ctx.alive()) return;
      card.remove();
      toast(done);
      if (!queue.querySelector('.duplicate')) replace(queue, h('p', { class: 'empty', text: t('duplicates_none') }));
      ctx.status().catch(() => {});
    } catch (err) {
      replace(problem, errorBox(err));
      draw();
    }
  }

  mergeBtn.addEventListener('click', () => act(async () => {
    const keep = recs[state.survivor];
    // Only the fields whose chosen value differs from the kept dossier's
    // are written on it.
    const fields = {};
    for (const name of fieldNames) {
      const v = value(state.choice[name], name);
      if (state.included[state.choice[name]] && v !== '' && v !== value(state.survivor, name)) fields[name] = v;
    }
    for (const i of chosenIndexes()) {
      if (i !== state.survivor) await api.merge(keep.id, recs[i].id, fields);
    }
    return t('merged_done', { name: label(keep) });
  }));
  distinctBtn.addEventListener('click', () => act(async () => {
    // Every pair of the dossiers shown as the same group is a different
    // pair of people.
    const chosen = chosenIndexes();
    for (let a = 0; a < chosen.length; a++) {
      for (let b = a + 1; b < chosen.length; b++) {
        await api.distinct([recs[chosen[a]].id, recs[chosen[b]].id]);
      }
    }
    return t('distinct_done');
  }));

  card.append(tableWrap);
  if (canSettle) card.append(summary, problem, h('div', { class: 'actions' }, mergeBtn, distinctBtn));
  draw();
  return card;
}

function label(r) {
  return ((r.fields || {}).full_name || '') + ' (' + r.id + ')';
}

// sharedText shows what the dossiers have in common, taken from the first
// one: the agent's key is folded (lower case, no diacritics), not for people.
function sharedText(g, r) {
  const f = r.fields || {};
  if (g.reason === 'personal_id') return f.personal_id || '';
  if (g.reason === 'name_dob') return [f.full_name, formatValue('date_of_birth', f.date_of_birth)].filter(Boolean).join(', ');
  return '';
}
