// A small element builder. Text goes in with textContent only, never as
// markup: field values come from other devices and must stay text.

import { both } from './i18n.js';

// h builds an element. attrs: class, text, on<event> handlers, dataset
// (data: {...}), and any other attribute by name (false or null leaves it
// out, true sets it empty). children: elements, strings or arrays of them.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'data') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' || k === 'checked' || k === 'disabled') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// replace swaps el's children for the given ones.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

// errorBox shows an error in both languages, the current one first. err is
// an ApiError, or the words of a message as [first, second].
export function errorBox(err) {
  let lines;
  let details = [];
  if (err && err.lines) {
    lines = err.lines();
    details = err.fieldLines ? err.fieldLines() : [];
  } else if (Array.isArray(err)) {
    lines = err;
  } else {
    // A bug in the page rather than an answer from the agent: say so
    // plainly, and keep the cause for whoever opens the console.
    lines = both('error_title');
    lines = [lines[0] + ': ' + String(err && err.message ? err.message : err), lines[1]];
  }
  return h('div', { class: 'error', role: 'alert' },
    h('p', { class: 'error-main', text: lines[0] }),
    h('p', { class: 'error-other', text: lines[1] }),
    details.length ? h('ul', { class: 'error-fields' }, details.map((d) => h('li', { text: d }))) : null);
}

let toastTimer = 0;

// toast shows a short confirmation at the bottom of the screen.
export function toast(text) {
  const el = document.getElementById('toast');
  if (!el) return;
  el.textContent = text;
  el.hidden = false;
  window.clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => { el.hidden = true; }, 4000);
}
