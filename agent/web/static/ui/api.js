// The agent's JSON API, from the same origin. Every call either returns the
// decoded answer or throws an ApiError carrying the agent's message in both
// languages ({"error", "error_vi", "fields"}).

import { both, fieldLabel, lang } from './i18n.js';

export class ApiError extends Error {
  constructor(status, en, vi, fields) {
    super(en || vi || 'status ' + status);
    this.status = status;
    this.en = en;
    this.vi = vi;
    this.fields = Array.isArray(fields) ? fields : [];
  }

  // lines: the message in the current language, then the other.
  lines() {
    return lang() === 'en' ? [this.en, this.vi] : [this.vi, this.en];
  }

  // fieldLines: one line per bad field, in the current language.
  fieldLines() {
    return this.fields.map((f) => fieldLabel(f.field) + ': ' +
      (lang() === 'en' ? f.problem : (f.problem_vi || f.problem)));
  }
}

function networkError() {
  const [vi, en] = withVI('error_network');
  return new ApiError(0, en, vi);
}

async function call(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' }, cache: 'no-store' };
  if (body !== undefined) {
    // The API takes JSON only: forms cannot send it, which is part of its
    // defence against cross-site requests.
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (method !== 'GET' && method !== 'HEAD') {
    // The session's CSRF value, set at login beside the HttpOnly session
    // cookie; a cross-site page can neither read it nor send this header.
    const name = 'fieldsync_csrf_' + (location.port || '80') + '=';
    const c = document.cookie.split('; ').find((x) => x.startsWith(name));
    if (c) init.headers['X-CSRF-Token'] = decodeURIComponent(c.slice(name.length));
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw networkError();
  }
  let data = null;
  const text = await res.text().catch(() => '');
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    if (data && (data.error || data.error_vi)) {
      throw new ApiError(res.status, data.error || data.error_vi, data.error_vi || data.error, data.fields);
    }
    const [vi, en] = withVI('error_status', { status: res.status });
    throw new ApiError(res.status, en, vi);
  }
  if (data === null && text) {
    const [vi, en] = withVI('error_bad_answer');
    throw new ApiError(res.status, en, vi);
  }
  return data;
}

// withVI returns [vi, en] whatever the current language.
function withVI(key, params) {
  const [a, b] = both(key, params);
  return lang() === 'en' ? [b, a] : [a, b];
}

const enc = encodeURIComponent;

export const api = {
  status: () => call('GET', '/v1/status'),
  records: (q, after, limit) => {
    const p = new URLSearchParams();
    if (q) p.set('q', q);
    if (after) p.set('after', after);
    p.set('limit', String(limit || 100));
    return call('GET', '/v1/records?' + p.toString());
  },
  record: (id) => call('GET', '/v1/records/' + enc(id)),
  history: (id) => call('GET', '/v1/records/' + enc(id) + '/history'),
  attachments: (id) => call('GET', '/v1/records/' + enc(id) + '/attachments'),
  // attachmentURL is where the bytes of one attachment are read (an <img>'s
  // src: same origin, the session cookie goes with it).
  attachmentURL: (sha) => '/v1/attachments/' + enc(sha),
  conflicts: () => call('GET', '/v1/conflicts'),
  resolve: (id, field, value, seen) => call('POST', '/v1/records/' + enc(id) + '/resolve', { field, value, seen }),
  duplicates: () => call('GET', '/v1/duplicates'),
  merge: (survivor, other, fields) => call('POST', '/v1/merge', { survivor, other, fields }),
  distinct: (records) => call('POST', '/v1/distinct', { records }),
};
