// The page's shell: header, language switch and hash routing. Each view is a
// module that renders into <main> from the agent's API.

import { api } from './api.js';
import { h, replace, errorBox } from './dom.js';
import { t, lang, setLang, roleLabel } from './i18n.js';
import { renderOverview } from './overview.js';
import { renderRecords, renderRecord } from './records.js';
import { renderConflicts } from './conflicts.js';
import { renderDuplicates } from './duplicates.js';

const routes = [
  { re: /^\/?$/, nav: 'overview', view: renderOverview },
  { re: /^\/records$/, nav: 'records', view: renderRecords },
  { re: /^\/records\/([^/]+)$/, nav: 'records', view: renderRecord },
  { re: /^\/conflicts$/, nav: 'conflicts', view: renderConflicts },
  { re: /^\/duplicates$/, nav: 'duplicates', view: renderDuplicates },
];

// How often the header's counts (and the overview) follow the agent: often
// enough to see a peer arrive, rarely enough to cost a laptop nothing.
const statusEvery = 10000;

let generation = 0;
let lastStatus = null;

// parseHash splits "#/records?q=x" into a path and its query.
function parseHash() {
  const raw = window.location.hash.replace(/^#/, '') || '/';
  const i = raw.indexOf('?');
  const path = i < 0 ? raw : raw.slice(0, i);
  const query = new URLSearchParams(i < 0 ? '' : raw.slice(i + 1));
  return { path, query };
}

function applyLabels() {
  document.documentElement.lang = lang();
  document.title = t('title');
  for (const el of document.querySelectorAll('[data-i18n]')) {
    el.textContent = t(el.dataset.i18n);
  }
  const b = document.getElementById('lang');
  b.textContent = t('lang_switch');
  b.setAttribute('aria-label', t('lang_switch_label'));
  b.setAttribute('lang', lang() === 'en' ? 'vi' : 'en');
  showStatus(lastStatus);
}

// showStatus puts the device and the queue sizes in the header.
function showStatus(st) {
  const dev = document.getElementById('device');
  const nc = document.getElementById('count-conflicts');
  const nd = document.getElementById('count-duplicates');
  if (!st) {
    dev.textContent = '';
    nc.textContent = '';
    nd.textContent = '';
    return;
  }
  const role = st.role ? roleLabel(st.role) : '';
  dev.textContent = [st.device, role].filter(Boolean).join(' · ');
  setCount(nc, st.conflicts);
  setCount(nd, st.duplicates);
}

function setCount(el, n) {
  const v = Number(n) || 0;
  el.textContent = v > 0 ? String(v) : '';
  el.hidden = v === 0;
}

// statusListener is the current view's wish to hear of each new status.
let statusListener = null;

// status fetches the agent's status and refreshes the header, and the view
// if it asked to follow the status, with it.
async function status() {
  const st = await api.status();
  lastStatus = st;
  showStatus(st);
  if (statusListener) statusListener(st);
  return st;
}

function markNav(name) {
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.route === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

async function route(focus) {
  const gen = ++generation;
  const { path, query } = parseHash();
  const main = document.getElementById('main');
  let match = null;
  let r = null;
  for (const cand of routes) {
    match = cand.re.exec(path);
    if (match) {
      r = cand;
      break;
    }
  }
  statusListener = null;
  markNav(r ? r.nav : '');
  document.body.dataset.view = r ? r.nav : 'none';
  if (!r) {
    replace(main, h('h1', { text: t('not_found_route') }));
    return;
  }
  replace(main, h('p', { class: 'loading', text: t('loading') }));
  if (focus) {
    // A new view starts at its top, and a screen reader starts reading it.
    window.scrollTo(0, 0);
    main.focus({ preventScroll: true });
  }
  const ctx = {
    main,
    params: match.slice(1).map((s) => decodeURIComponent(s)),
    query,
    // alive: the view is still the one shown; a view checks it after each
    // await before touching the page, so a slow answer cannot overwrite the
    // view the admin has moved on to.
    alive: () => gen === generation,
    status,
    // followStatus calls fn with every status fetched from now on (the
    // header refreshes it every few seconds) while the view is shown.
    followStatus: (fn) => {
      statusListener = (st) => { if (gen === generation) fn(st); };
    },
    // rerender draws the current view again, with fresh data.
    rerender: () => { if (gen === generation) route(false); },
  };
  try {
    await r.view(ctx);
  } catch (err) {
    if (ctx.alive()) replace(main, errorBox(err));
  }
}

function start() {
  document.getElementById('lang').addEventListener('click', () => {
    setLang(lang() === 'en' ? 'vi' : 'en');
    applyLabels();
    route(false);
  });
  window.addEventListener('hashchange', () => route(true));
  applyLabels();
  status().catch(() => { /* each view shows its own errors */ });
  window.setInterval(() => {
    if (document.visibilityState === 'visible') status().catch(() => {});
  }, statusEvery);
  route(false);
}

start();
