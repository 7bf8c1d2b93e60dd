// toggled console: a single page over the server's own HTTP API (no build step, no framework).
// Safety rule: data from the flag file or the store reaches the page only as text nodes or
// attribute values set with setAttribute — never as HTML. Links are built from encoded keys.
'use strict';

const TOKEN_KEY = 'toggled.console.token';
const session = { token: sessionStorage.getItem(TOKEN_KEY), liveAbort: null, refresh: null, timer: null };
const ui = { search: '', filter: 'all', auditFlag: '', auditActor: '' };
const $ = (selector) => document.querySelector(selector);

// ---------- DOM ----------

/** An element: attributes by name (`on*` are listeners), children as nodes or text. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else if (name === 'value') el.value = value;
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const link = (hash, text, attrs) => h('a', { href: hash, ...attrs }, text);
const flagHref = (key) => '#/flags/' + encodeURIComponent(key);
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'short', timeStyle: 'medium' });
const when = (ts) => (ts ? dateFormat.format(new Date(ts)) : '—');
const compact = (v) => (v === undefined ? '' : JSON.stringify(v));
/// A live-state value as text: nothing is '—', an object its members that are set.
const shown = (v) => {
  if (v == null) return '—';
  if (typeof v !== 'object') return String(v);
  const set = Object.entries(v).filter(([, x]) => x != null).map(([k, x]) => `${k}: ${typeof x === 'object' ? JSON.stringify(x) : x}`);
  return set.length ? set.join(', ') : '—';
};

function table(headers, rows, attrs) {
  return h('div', { class: 'scroll' },
    h('table', attrs || {},
      h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, rows)));
}

function toast(text, kind) {
  const t = h('div', { class: 'toast ' + (kind || '') }, text);
  $('#toasts').append(t);
  setTimeout(() => t.remove(), 4000);
}

/** A tiny Markdown renderer (headings, lists, task boxes, bold, code) that only makes text nodes. */
function markdown(text) {
  const root = h('div', { class: 'markdown' });
  let list = null;
  const inline = (s) => {
    const out = [];
    const re = /(\*\*[^*]+\*\*|`[^`]+`)/g;
    let at = 0;
    for (const m of s.matchAll(re)) {
      out.push(s.slice(at, m.index));
      const tok = m[0];
      out.push(tok.startsWith('**') ? h('strong', {}, tok.slice(2, -2)) : h('code', {}, tok.slice(1, -1)));
      at = m.index + tok.length;
    }
    out.push(s.slice(at));
    return out;
  };
  for (const line of String(text).split('\n')) {
    const heading = /^(#{1,4})\s+(.*)$/.exec(line);
    const item = /^\s*[-*]\s+(\[[ xX]\]\s+)?(.*)$/.exec(line);
    if (item) {
      if (!list) { list = h('ul'); root.append(list); }
      const box = item[1] ? (item[1].includes('x') || item[1].includes('X') ? '☑ ' : '☐ ') : '';
      list.append(h('li', {}, box, inline(item[2])));
      continue;
    }
    list = null;
    if (heading) root.append(h('h' + Math.min(heading[1].length + 2, 6), {}, inline(heading[2])));
    else if (line.trim()) root.append(h('p', {}, inline(line)));
  }
  return root;
}

// ---------- API ----------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: 'Bearer ' + session.token };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method, headers, cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = text;
  if ((response.headers.get('content-type') || '').includes('json')) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(response.status, error.code || 'http_' + response.status, error.message || String(text));
  }
  return data;
}

/** Evaluation counts by flag and reason, read from the server's own `/metrics`. */
async function evaluationCounts() {
  const counts = {};
  try {
    const response = await fetch('/metrics', { cache: 'no-store' });
    if (!response.ok) return counts;
    for (const line of (await response.text()).split('\n')) {
      if (!line.startsWith('toggled_evaluations_total{')) continue;
      const end = line.lastIndexOf('}');
      const labels = {};
      for (const m of line.slice(line.indexOf('{') + 1, end).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]] = m[2];
      const n = Number(line.slice(end + 1).trim().split(' ')[0]);
      if (!labels.flag || !Number.isFinite(n) || n === 0) continue;
      const perFlag = (counts[labels.flag] ||= {});
      perFlag[labels.reason] = (perFlag[labels.reason] || 0) + n;
    }
  } catch { /* counts are an extra; the list works without them */ }
  return counts;
}

const countsText = (c) => (c ? Object.entries(c).sort().map(([r, n]) => `${r} ${n}`).join(' · ') : '—');

// ---------- status ----------

/** What an operator needs to know at a glance: `{kind, text}` from `GET /flags`' state. */
function flagStatus(flag) {
  const s = flag.state || {};
  const o = s.override;
  if (s.effective === 'rolled_back') return { kind: 'rolled_back', text: `rolled back by ${o ? o.actor : 'the monitor'}` };
  if (s.effective === 'killed') return { kind: 'overridden', text: `killed by ${o.actor}` };
  if (s.effective === 'forced' || s.effective === 'forced_on') return { kind: 'overridden', text: `overridden by ${o.actor}` };
  if (s.effective === 'disabled') return { kind: 'static', text: 'disabled in the file' };
  if (s.paused) return { kind: 'paused', text: `paused at stage ${s.stage} of ${s.stages}` };
  if (s.sunset_phase) return { kind: 'sunset', text: `sunset: ${s.sunset_phase} phase` };
  if (flag.strategy === 'gradual') {
    if (s.stage == null) return { kind: 'rolling_out', text: 'rollout not started' };
    if (!s.next_stage_at) return { kind: 'rolling_out', text: `stage ${s.stage} of ${s.stages} (${s.stage_percentage}%), final` };
    return { kind: 'rolling_out', text: `rolling out: stage ${s.stage} of ${s.stages} (${s.stage_percentage}%), next ${when(s.next_stage_at)}` };
  }
  if (flag.strategy === 'ab_test') {
    if (s.window_over) return { kind: 'ab_test', text: `A/B window over${s.winner ? ', winner ' + s.winner : ''}` };
    return { kind: 'ab_test', text: s.window_ends_at ? `A/B window until ${when(s.window_ends_at)}` : 'A/B test (open-ended)' };
  }
  if (flag.strategy) return { kind: 'rolling_out', text: flag.strategy };
  return { kind: 'static', text: 'static' };
}

const FILTERS = [
  ['all', 'All'], ['rolling_out', 'Rolling out'], ['ab_test', 'A/B tests'], ['sunset', 'Sunset'],
  ['overridden', 'Overridden'], ['rolled_back', 'Rolled back'], ['paused', 'Paused'], ['static', 'Static'],
];

const FIRST_ROWS = 60;
const MORE_ROWS = 250;

const pill = (status) => h('span', { class: 'pill ' + status.kind, 'data-testid': 'status' }, status.text);

// ---------- actions ----------

/** Opens the confirmation dialog; `run(reason)` performs the change. A reason is required
 * (it is audited) unless `audited` is false, for changes whose route records none. */
function confirmAction(title, detail, run, audited = true) {
  const dialog = $('#confirm-dialog');
  const reason = h('input', { id: 'reason', 'data-testid': 'reason-input', autocomplete: 'off', required: audited });
  const error = h('p', { class: 'error', role: 'alert' });
  const confirm = h('button', { type: 'submit', class: 'danger', 'data-testid': 'confirm' }, 'Confirm');
  const form = h('form', {
    novalidate: true, // our own message for an empty reason, read by screen readers
    onsubmit: async (e) => {
      e.preventDefault();
      if (audited && !reason.value.trim()) { error.textContent = 'A reason is required: it is written to the audit log.'; reason.focus(); return; }
      confirm.disabled = true;
      try {
        await run(reason.value.trim());
        dialog.close();
        toast(title + ': done');
        refreshSoon();
      } catch (err) {
        error.textContent = err.message;
        confirm.disabled = false;
      }
    },
  },
  h('h2', { id: 'confirm-title' }, title),
  h('p', {}, detail),
  audited ? [h('label', { for: 'reason' }, 'Reason (required, audited)'), reason] : null, error,
  h('div', { class: 'buttons' },
    h('button', { type: 'button', onclick: () => dialog.close(), 'data-testid': 'cancel' }, 'Cancel'), confirm));
  dialog.replaceChildren(form);
  dialog.showModal();
  (audited ? reason : confirm).focus();
}

const put = (key, body) => api('PUT', '/flags/' + encodeURIComponent(key), body);

function killButton(key) {
  return h('button', {
    class: 'danger', 'data-testid': 'kill-' + key, 'aria-label': 'Kill ' + key,
    onclick: () => confirmAction('Kill ' + key, 'Every evaluation answers the safe default value until the override is cleared.',
      (reason) => put(key, { enabled: false, reason })),
  }, 'Kill');
}

/// Killed or rolled back: nothing to kill or pause until the override is cleared.
const isOff = (flag) => {
  const o = flag.state && flag.state.override;
  return Boolean(o && (o.kind === 'kill' || o.kind === 'rolled_back'));
};

function actions(flag) {
  const key = flag.key;
  const out = isOff(flag) ? [] : [killButton(key)];
  const variant = h('select', { 'aria-label': 'Variant to force', 'data-testid': 'variant-select' },
    Object.keys(flag.variants || {}).map((v) => h('option', { value: v }, v)));
  out.push(h('span', { class: 'group' }, variant, h('button', {
    'data-testid': 'force-variant',
    onclick: () => confirmAction(`Force ${key} to ${variant.value}`, 'Every evaluation answers this variant.',
      (reason) => put(key, { variant: variant.value, reason })),
  }, 'Force variant')));
  const value = h('input', { 'aria-label': 'JSON value to force', placeholder: 'JSON value, e.g. true', 'data-testid': 'value-input', size: 14 });
  out.push(h('span', { class: 'group' }, value, h('button', {
    'data-testid': 'force-value',
    onclick: () => {
      let parsed;
      try { parsed = JSON.parse(value.value); } catch { toast('The value must be JSON (true, 3, "text", {...}).', 'bad'); value.focus(); return; }
      confirmAction(`Force ${key} to ${value.value}`, 'Every evaluation answers this value.', (reason) => put(key, { value: parsed, reason }));
    },
  }, 'Force value')));
  if (flag.state && flag.state.override) {
    out.push(h('button', {
      'data-testid': 'clear-' + key,
      onclick: () => confirmAction('Clear the override of ' + key, 'The flag file decides again.',
        (reason) => api('DELETE', `/flags/${encodeURIComponent(key)}/override`, { reason })),
    }, 'Clear override'));
  }
  if (flag.strategy === 'gradual' && !isOff(flag)) {
    const paused = flag.state && flag.state.paused;
    const action = paused ? 'resume' : 'pause';
    out.push(h('button', {
      'data-testid': action + '-' + key,
      onclick: () => confirmAction(`${paused ? 'Resume' : 'Pause'} the rollout of ${key}`,
        paused ? 'Stages advance again; the paused time is added to every later stage.' : 'The current stage is held until resumed.',
        (reason) => api('POST', `/flags/${encodeURIComponent(key)}/rollout`, { action, reason })),
    }, paused ? 'Resume rollout' : 'Pause rollout'));
  }
  return h('div', { class: 'actions', role: 'group', 'aria-label': 'Actions' }, out);
}

// ---------- views ----------

async function viewFlags(main) {
  const search = h('input', { type: 'search', id: 'search', value: ui.search, placeholder: 'key, description, owner', 'data-testid': 'search' });
  const filter = h('select', { id: 'filter', 'data-testid': 'status-filter' }, FILTERS.map(([v, t]) => h('option', { value: v, selected: v === ui.filter }, t)));
  const summary = h('p', { class: 'muted', 'data-testid': 'summary' });
  const body = h('tbody');
  let data = { flags: [] };
  let counts = {};
  let generation = 0;
  const row = (f, status) => h('tr', { 'data-testid': 'flag-row-' + f.key },
    h('th', { scope: 'row' }, link(flagHref(f.key), f.key)),
    h('td', {}, f.type),
    h('td', {}, pill(status)),
    h('td', { class: 'small c-counts' }, countsText(counts[f.key])),
    h('td', { class: 'small c-description' }, f.description || ''),
    h('td', {}, isOff(f) ? '' : killButton(f.key)));
  const fill = () => {
    const q = ui.search.toLowerCase();
    const shown = [];
    for (const f of data.flags) {
      const status = flagStatus(f);
      if (ui.filter !== 'all' && status.kind !== ui.filter) continue;
      if (q && ![f.key, f.description, f.owner].some((x) => x && String(x).toLowerCase().includes(q))) continue;
      shown.push([f, status]);
    }
    // The first screenful now, the rest a chunk per task: a long list paints at once and
    // stays responsive. A newer fill (search, live change) abandons an older one.
    const mine = ++generation;
    body.replaceChildren(...shown.slice(0, FIRST_ROWS).map(([f, st]) => row(f, st)));
    const more = (from) => {
      if (mine !== generation || from >= shown.length) return;
      body.append(...shown.slice(from, from + MORE_ROWS).map(([f, st]) => row(f, st)));
      setTimeout(() => more(from + MORE_ROWS));
    };
    setTimeout(() => more(FIRST_ROWS));
    const r = data.last_reload || {};
    summary.textContent = `${shown.length} of ${data.flags.length} flags · revision ${data.revision || 'none'} · last reload ${when(r.at)} (${r.trigger || '—'}${r.ok === false ? ', rejected' : ''})`;
  };
  search.addEventListener('input', () => { ui.search = search.value; fill(); });
  filter.addEventListener('change', () => { ui.filter = filter.value; fill(); });
  main.replaceChildren(
    h('h1', {}, 'Flags'),
    h('div', { class: 'filters' },
      h('label', { for: 'search' }, 'Search'), search,
      h('label', { for: 'filter' }, 'Status'), filter),
    summary,
    h('div', { class: 'scroll' }, h('table', { class: 'fixed', 'data-testid': 'flag-list' },
      h('colgroup', {}, ['key', 'type', 'status', 'counts', 'description', 'action'].map((c) => h('col', { class: 'col-' + c }))),
      h('thead', {}, h('tr', {}, ['Key', 'Type', 'Status', 'Evaluations by reason', 'Description', ''].map((x) => h('th', { scope: 'col' }, x)))),
      body)));
  const refresh = async () => {
    [data, counts] = await Promise.all([api('GET', '/flags'), evaluationCounts()]);
    fill();
  };
  await refresh();
  // For benches/console.sh: the list is built, and (after the next frame) painted.
  performance.mark('toggled:flags-rendered');
  requestAnimationFrame(() => setTimeout(() => performance.mark('toggled:flags-painted')));
  return refresh;
}

/** An audit subject as a link: a flag, a release (`release:<id>`), or plain text. */
function subjectLink(subject) {
  const release = /^release:(\d+)$/.exec(subject || '');
  if (release) return link('#/releases/' + release[1], subject);
  if (!subject || subject === '*' || subject.startsWith('release:')) return subject;
  return link(flagHref(subject), subject);
}

function auditTable(entries) {
  return table(['When', 'Actor', 'Action', 'Flag', 'Reason', 'Before', 'After'], entries.map((e) =>
    h('tr', { 'data-testid': 'audit-row' },
      h('td', { class: 'nowrap' }, when(e.at)),
      h('td', {}, e.actor),
      h('td', {}, e.action),
      h('td', {}, subjectLink(e.flag)),
      h('td', {}, e.reason || ''),
      h('td', { class: 'json' }, compact(e.before)),
      h('td', { class: 'json' }, compact(e.after)))), { 'data-testid': 'audit' });
}

function explainForm(key) {
  const context = h('textarea', { id: 'context', rows: 4, 'data-testid': 'explain-context' }, '{"targetingKey": "user-1"}');
  const out = h('div', { 'data-testid': 'explain-result', 'aria-live': 'polite' });
  const run = async (e) => {
    e.preventDefault();
    let ctx;
    try { ctx = JSON.parse(context.value); } catch (err) { out.replaceChildren(h('p', { class: 'error' }, 'The context must be a JSON object: ' + err.message)); return; }
    try {
      const answer = await api('POST', '/evaluate', { flag: key, context: ctx, explain: true });
      out.replaceChildren(
        h('p', {}, 'Answer: ', h('code', {}, compact(answer.value)), ` (variant ${answer.variant}, reason ${answer.reason})`),
        table(['Step', 'Outcome', 'Detail'], (answer.explain || []).map((s) =>
          h('tr', {}, h('td', {}, s.step), h('td', {}, s.outcome), h('td', { class: 'json' }, typeof s.detail === 'string' ? s.detail : compact(s.detail))))));
    } catch (err) {
      out.replaceChildren(h('p', { class: 'error' }, err.message));
    }
  };
  return h('section', {}, h('h2', {}, 'Explain'),
    h('form', { onsubmit: run },
      h('label', { for: 'context' }, 'Context (JSON)'), context,
      h('button', { type: 'submit', 'data-testid': 'explain' }, 'Explain')),
    out);
}

async function viewFlag(main, key) {
  const head = h('div');
  const state = h('section');
  const audit = h('section');
  const scheduled = h('section');
  const definition = h('section');
  main.replaceChildren(h('p', {}, link('#/flags', '← All flags')), head, state, explainForm(key), scheduled, audit, definition);
  const refresh = async () => {
    const [flag, log, counts, plans] = await Promise.all([
      api('GET', '/flags/' + encodeURIComponent(key)),
      api('GET', '/audit?limit=50&flag=' + encodeURIComponent(key)),
      evaluationCounts(),
      api('GET', '/schedules?flag=' + encodeURIComponent(key)),
    ]);
    const describe = (a) => a.kind + (a.value === undefined ? '' : ' ' + JSON.stringify(a.value));
    scheduled.replaceChildren(h('h2', {}, 'Scheduled changes'), plans.schedules.length === 0
      ? h('p', { class: 'muted' }, 'None.')
      : table(['At', 'Change', 'By', 'Reason', 'Status', 'Result'], plans.schedules.map((p) =>
        h('tr', { 'data-testid': 'schedule-' + p.id }, h('td', {}, when(p.at)), h('td', {}, describe(p.action)),
          h('td', {}, p.created_by), h('td', {}, p.reason || '—'), h('td', {}, h('span', { class: 'pill static' }, p.status)), h('td', {}, p.result || '—')))));
    const s = flag.state || {};
    head.replaceChildren(
      h('h1', { 'data-testid': 'flag-title' }, flag.key, ' ', pill(flagStatus(flag))),
      h('p', { 'data-testid': 'description' }, flag.description || ''),
      h('p', { class: 'muted' }, `${flag.type} · owner ${flag.owner || '—'} · service ${flag.service || '—'}`),
      actions(flag));
    const live = Object.entries(s).filter(([k]) => k !== 'alerts' && k !== 'override');
    const alerts = (flag.monitoring && flag.monitoring.alerts) || [];
    const verdicts = s.alerts || [];
    state.replaceChildren(
      h('h2', {}, 'Live state'),
      table(['Field', 'Value'], live.map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, shown(v))))),
      s.override ? h('p', { 'data-testid': 'override' }, `Override: ${s.override.kind} by ${s.override.actor} at ${when(s.override.created_at)} — ${s.override.reason || 'no reason'}`) : null,
      h('p', {}, 'Evaluations by reason: ', countsText(counts[key])),
      h('h3', {}, 'Alerts'),
      alerts.length === 0 ? h('p', { class: 'muted' }, 'No monitoring alerts.') :
        table(['Condition', 'For', 'Action', 'Last verdict', 'Observed', 'At'], alerts.map((a) => {
          const v = verdicts.find((x) => x.condition === a.condition) || {};
          return h('tr', {}, h('td', {}, a.condition), h('td', {}, a.for), h('td', {}, a.action),
            h('td', {}, v.verdict == null ? 'not checked yet' : h('span', { class: 'pill ' + (v.verdict === 'breach' ? 'rolled_back' : v.verdict === 'clear' ? 'ok' : 'static') }, String(v.verdict))), h('td', {}, v.observed == null ? '—' : v.observed), h('td', {}, when(v.at)));
        })));
    audit.replaceChildren(h('h2', {}, 'Audit trail'), log.entries.length ? auditTable(log.entries) : h('p', { class: 'muted' }, 'No changes yet.'));
    const def = { ...flag };
    delete def.state;
    definition.replaceChildren(h('h2', {}, 'Definition'), h('pre', { class: 'json', 'data-testid': 'definition' }, JSON.stringify(def, null, 2)));
  };
  await refresh();
  return refresh;
}

async function viewAudit(main) {
  const flag = h('input', { id: 'audit-flag', value: ui.auditFlag, 'data-testid': 'audit-flag' });
  const actor = h('input', { id: 'audit-actor', value: ui.auditActor, 'data-testid': 'audit-actor' });
  const out = h('div');
  const refresh = async () => {
    const q = (ui.auditFlag ? '&flag=' + encodeURIComponent(ui.auditFlag) : '')
      + (ui.auditActor ? '&actor=' + encodeURIComponent(ui.auditActor) : '');
    const log = await api('GET', '/audit?limit=1000' + q);
    out.replaceChildren(h('p', { class: 'muted' }, `${log.entries.length} entries (newest first, at most 1,000)`), auditTable(log.entries));
  };
  const apply = (e) => { e.preventDefault(); ui.auditFlag = flag.value.trim(); ui.auditActor = actor.value.trim(); refresh().catch(showError); };
  main.replaceChildren(h('h1', {}, 'Audit log'),
    h('form', { class: 'filters', onsubmit: apply },
      h('label', { for: 'audit-flag' }, 'Flag'), flag,
      h('label', { for: 'audit-actor' }, 'Actor (name or its start)'), actor,
      h('button', { type: 'submit' }, 'Filter')),
    out);
  await refresh();
  return refresh;
}

/** Changes waiting for a second admin (four-eyes), with approve and reject; every schedule. */
async function viewRequests(main) {
  const out = h('div');
  const describe = (a) => a.kind + (a.value === undefined ? '' : ' ' + JSON.stringify(a.value));
  const refresh = async () => {
    const [waiting, all] = await Promise.all([api('GET', '/change-requests'), api('GET', '/schedules')]);
    const decide = (r, verb) => h('button', {
      type: 'button', class: verb === 'reject' ? 'danger' : '', 'data-testid': `${verb}-${r.id}`,
      onclick: () => confirmAction(`${verb === 'approve' ? 'Approve' : 'Reject'} change request #${r.id}`,
        `${describe(r.action)} on ${r.flag}, asked by ${r.created_by}`,
        (reason) => api('POST', `/change-requests/${r.id}/${verb}`, { reason })),
    }, verb === 'approve' ? 'Approve' : 'Reject');
    const rows = waiting.change_requests.map((r) => h('tr', { 'data-testid': 'request-' + r.id },
      h('td', {}, link('#/flags/' + encodeURIComponent(r.flag), r.flag)), h('td', {}, describe(r.action)),
      h('td', {}, r.created_by), h('td', {}, r.reason || '—'), h('td', {}, when(r.at)),
      h('td', {}, decide(r, 'approve'), ' ', decide(r, 'reject'))));
    const schedules = all.schedules.map((p) => h('tr', { 'data-testid': 'scheduled-' + p.id },
      h('td', {}, p.flag), h('td', {}, describe(p.action)), h('td', {}, when(p.at)), h('td', {}, p.created_by),
      h('td', {}, h('span', { class: 'pill static' }, p.status)), h('td', {}, p.result || '—')));
    out.replaceChildren(
      h('h2', {}, 'Waiting for approval'),
      rows.length ? table(['Flag', 'Change', 'Asked by', 'Reason', 'Due', ''], rows, { 'data-testid': 'requests' })
        : h('p', { class: 'muted', 'data-testid': 'no-requests' }, 'Nothing waits.'),
      h('h2', {}, 'Scheduled changes and requests'),
      schedules.length ? table(['Flag', 'Change', 'At', 'By', 'Status', 'Result'], schedules) : h('p', { class: 'muted' }, 'None.'));
  };
  main.replaceChildren(h('h1', {}, 'Change requests'), out);
  await refresh();
  return refresh;
}

/** The Unleash SDK instances that registered or reported, and, in Edge mode, the upstream. */
async function viewSdks(main) {
  const out = h('div');
  const refresh = async () => {
    const [list, ready] = await Promise.all([api('GET', '/sdk-instances'), api('GET', '/ready').catch(() => ({}))]);
    const rows = list.instances.map((i) => h('tr', { 'data-testid': 'sdk-' + i.app + '-' + i.instance },
      h('td', {}, i.app), h('td', {}, i.instance), h('td', {}, i.sdk || '—'), h('td', {}, i.kind),
      h('td', {}, new Date(i.last_seen).toLocaleString())));
    const parts = [h('p', { class: 'muted' }, `${list.instances.length} instances (most recently seen first, at most 1,000)`),
      table(['App', 'Instance', 'SDK', 'Kind', 'Last seen'], rows, { 'data-testid': 'sdk-instances' })];
    const up = ready.upstream;
    if (up) {
      parts.unshift(h('p', { 'data-testid': 'upstream' },
        `Edge mode: following ${up.url}, ${up.up ? 'up' : 'down: ' + (up.error || '?')}; `
        + `last success ${up.last_success ? new Date(up.last_success).toLocaleString() : 'never'}; `
        + `${up.queued_reports} reports queued` + (up.untranslated.length ? `; not translated: ${up.untranslated.join('; ')}` : '')));
    }
    out.replaceChildren(...parts);
  };
  main.replaceChildren(h('h1', {}, 'Unleash SDKs'), out);
  await refresh();
  return refresh;
}

function gatesTable(metrics) {
  return table(['Gate', 'Value', 'Threshold', 'Blocking', 'Result'], (metrics.gates || []).map((g) =>
    h('tr', { 'data-testid': 'gate-' + g.name },
      h('th', { scope: 'row' }, g.name, h('div', { class: 'small muted' }, g.description || '')),
      h('td', {}, g.value == null ? '—' : Math.round(g.value * 100) / 100),
      h('td', {}, `${g.comparison} ${g.threshold}`),
      h('td', {}, g.blocking ? 'yes' : 'no'),
      h('td', {}, h('span', { class: 'pill ' + (g.passed == null ? 'static' : g.passed ? 'ok' : 'rolled_back') }, g.passed == null ? 'no data' : g.passed ? 'pass' : 'fail')))));
}

/** Records an approval (`{role, approver}`) or a test report (`{test, passed}`). */
function recordForm(path, release) {
  const role = h('select', { id: 'approve-role', 'data-testid': 'approve-role' },
    [release.requires && release.requires.approval, 'rollback', 'product_manager', 'tech_lead', 'qa', 'security'].filter((x, i, all) => x && all.indexOf(x) === i).map((x) => h('option', { value: x }, x)));
  const approver = h('input', { id: 'approver', 'data-testid': 'approver', autocomplete: 'off' });
  const test = h('select', { id: 'test-name', 'data-testid': 'test-name' },
    ((release.requires && release.requires.tests) || []).map((x) => h('option', { value: x }, x)));
  const passed = h('select', { id: 'test-passed', 'data-testid': 'test-passed' }, h('option', { value: 'true' }, 'passed'), h('option', { value: 'false' }, 'failed'));
  const send = (body, what) => (e) => {
    e.preventDefault();
    confirmAction(`Record ${what} on release #${release.id}`, JSON.stringify(body), () => api('POST', path + '/approvals', body), false);
  };
  return h('div', { class: 'forms' },
    h('form', { class: 'filters', onsubmit: (e) => send({ role: role.value, approver: approver.value.trim() }, 'an approval')(e) },
      h('label', { for: 'approve-role' }, 'Role'), role, h('label', { for: 'approver' }, 'Approver'), approver,
      h('button', { type: 'submit', 'data-testid': 'approve' }, 'Record approval')),
    test.options.length ? h('form', { class: 'filters', onsubmit: (e) => send({ test: test.value, passed: passed.value === 'true' }, 'a test report')(e) },
      h('label', { for: 'test-name' }, 'Test'), test, h('label', { for: 'test-passed' }, 'Result'), passed,
      h('button', { type: 'submit', 'data-testid': 'record-test' }, 'Record test report')) : null);
}

async function viewReleases(main) {
  const list = h('section');
  const gates = h('section');
  main.replaceChildren(h('h1', {}, 'Releases'), list, gates);
  const refresh = async () => {
    const [releases, metrics] = await Promise.all([api('GET', '/releases'), api('GET', '/releases/metrics')]);
    list.replaceChildren(releases.releases.length === 0 ? h('p', { class: 'muted' }, 'No releases yet (POST /releases or toggled release --server).') :
      table(['Id', 'Service', 'Version', 'Type', 'Status', 'Since', 'Scheduled'], releases.releases.map((r) =>
        h('tr', { 'data-testid': 'release-row-' + r.id },
          h('th', { scope: 'row' }, link('#/releases/' + encodeURIComponent(r.id), '#' + r.id)),
          h('td', {}, r.service), h('td', {}, r.version), h('td', {}, r.type),
          h('td', {}, h('span', { class: 'pill ' + r.status }, r.status)), h('td', {}, when(r.status_at)), h('td', {}, when(r.scheduled_at))))));
    gates.replaceChildren(h('h2', {}, 'Quality gates (last 30 days)'), gatesTable(metrics));
  };
  await refresh();
  return refresh;
}

async function viewRelease(main, id) {
  const out = h('div');
  main.replaceChildren(h('p', {}, link('#/releases', '← All releases')), out);
  const path = '/releases/' + encodeURIComponent(id);
  const refresh = async () => {
    const [r, notes, plan] = await Promise.all([api('GET', path), api('GET', path + '/notes'), api('GET', path + '/plan')]);
    const moves = ['in_progress', 'deployed', 'failed', 'rolled_back', 'cancelled'].map((status) => h('button', {
      'data-testid': 'status-' + status,
      onclick: () => confirmAction(`Move release #${r.id} to ${status}`, 'The transition is checked by the server.',
        () => api('POST', path + '/status', { status }), false),
    }, status.replace('_', ' ')));
    const approvals = r.approvals || [];
    const tests = Object.entries(r.tests || {});
    out.replaceChildren(
      h('h1', { 'data-testid': 'release-title' }, `${r.service} ${r.version} `, h('span', { class: 'pill ' + r.status }, r.status)),
      h('p', { class: 'muted' }, `#${r.id} · ${r.type} · since ${when(r.status_at)} · created ${when(r.created_at)} · deployed ${when(r.deployed_at)}`),
      h('div', { class: 'actions', role: 'group', 'aria-label': 'Status transitions' }, moves),
      (r.missing || []).length ? h('p', { class: 'error' }, 'Missing before deployment: ' + r.missing.join(', ')) : h('p', { class: 'ok' }, 'Every required approval and test is recorded.'),
      h('h2', {}, 'Approvals'),
      recordForm(path, r),
      approvals.length ? table(['Role', 'Approver', 'At'], approvals.map((a) => h('tr', {}, h('td', {}, a.role), h('td', {}, a.approver), h('td', {}, when(a.at))))) : h('p', { class: 'muted' }, 'None yet.'),
      h('h2', {}, 'Test reports'),
      tests.length ? table(['Test', 'Result'], tests.map(([name, t]) => h('tr', {}, h('td', {}, name), h('td', {}, compact(t))))) : h('p', { class: 'muted' }, 'None yet.'),
      h('h2', {}, 'Flags shipped'), h('p', {}, (r.flags || []).length ? r.flags.join(', ') : '—'),
      r.rollback_recommended ? h('p', { class: 'error', 'data-testid': 'rollback-recommended' },
        `Rollback recommended: flag ${r.rollback_recommended.flag} was rolled back (${r.rollback_recommended.trigger}) at ${when(r.rollback_recommended.at)}.`) : null,
      r.rollback_awaits_approval ? h('p', { class: 'error' }, 'Rolled back; its flags are killed once a "rollback" approval is recorded.') : null,
      r.flags_killed ? h('p', {}, 'Flags killed by the rollback: ', r.flags_killed.length ? r.flags_killed.join(', ') : 'none') : null,
      h('h2', {}, 'Release notes'), markdown(notes),
      h('h2', {}, 'Plan'), markdown(plan));
  };
  await refresh();
  return refresh;
}

function viewSignIn(main, message) {
  const token = h('input', { id: 'token', type: 'password', autocomplete: 'off', required: true, 'data-testid': 'token-input' });
  const error = h('p', { class: 'error', role: 'alert', 'data-testid': 'sign-in-error' }, message || '');
  const submit = async (e) => {
    e.preventDefault();
    session.token = token.value.trim();
    try {
      await api('GET', '/flags');
    } catch (err) {
      session.token = null;
      error.textContent = err.status === 401 ? 'That token was refused: ' + err.message
        : err.status === 403 ? 'That is not an admin token: ' + err.message : 'Sign-in failed: ' + err.message;
      token.select();
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, session.token);
    startLive();
    if (!location.hash || location.hash === '#/') location.hash = '#/flags';
    else route();
  };
  main.replaceChildren(h('form', { class: 'signin', onsubmit: submit },
    h('h1', {}, 'Sign in'),
    h('p', {}, 'Paste an admin token. It is kept in this tab only and sent as an Authorization header.'),
    h('label', { for: 'token' }, 'Admin token'), token,
    h('button', { type: 'submit', 'data-testid': 'sign-in' }, 'Sign in'),
    error));
  token.focus();
}

// ---------- routing, live updates ----------

function showError(err) {
  if (err instanceof ApiError && err.status === 401) { signOut('Your token is no longer accepted: ' + err.message); return; }
  toast(err.message, 'bad');
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  session.token = null;
  if (session.liveAbort) session.liveAbort.abort();
  session.refresh = null;
  chrome(false);
  viewSignIn($('#main'), message);
}

function chrome(signedIn) {
  $('#nav').hidden = !signedIn;
  $('#sign-out').hidden = !signedIn;
  $('#live').hidden = !signedIn;
}

async function route() {
  const main = $('#main');
  if (!session.token) { chrome(false); viewSignIn(main); return; }
  chrome(true);
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  for (const a of document.querySelectorAll('#nav a')) a.toggleAttribute('aria-current', a.getAttribute('href') === '#/' + parts[0]);
  session.refresh = null;
  try {
    if (parts[0] === 'flags' && parts[1]) session.refresh = await viewFlag(main, parts[1]);
    else if (parts[0] === 'audit') session.refresh = await viewAudit(main);
    else if (parts[0] === 'sdks') session.refresh = await viewSdks(main);
    else if (parts[0] === 'requests') session.refresh = await viewRequests(main);
    else if (parts[0] === 'releases' && parts[1]) session.refresh = await viewRelease(main, parts[1]);
    else if (parts[0] === 'releases') session.refresh = await viewReleases(main);
    else session.refresh = await viewFlags(main);
    main.dataset.ready = 'true';
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) main.replaceChildren(h('h1', {}, 'Not found'), h('p', {}, err.message));
    else showError(err);
  }
}

/** Refreshes the current view once, shortly: a burst of events costs one round of requests. */
function refreshSoon() {
  clearTimeout(session.timer);
  session.timer = setTimeout(() => { if (session.refresh) session.refresh().catch(showError); }, 100);
}

function setLive(on, text) {
  const el = $('#live');
  el.textContent = text;
  el.className = 'live ' + (on ? 'on' : 'off');
}

function describeEvent(kind, data) {
  const who = data.detail && (data.detail.actor || (data.detail.override && data.detail.override.actor) || data.detail.trigger);
  return `${kind}${data.flag ? ' ' + data.flag : ''}${who ? ' (' + who + ')' : ''}`;
}

/** `/events` read with fetch, so the token travels in a header (EventSource cannot send one). */
async function startLive() {
  if (session.liveAbort) session.liveAbort.abort();
  const abort = new AbortController();
  session.liveAbort = abort;
  let lastId = null;
  while (session.token && !abort.signal.aborted) {
    try {
      const headers = { Authorization: 'Bearer ' + session.token, Accept: 'text/event-stream' };
      if (lastId) headers['Last-Event-ID'] = lastId;
      const response = await fetch('/events', { headers, signal: abort.signal, cache: 'no-store' });
      if (!response.ok) throw new Error('HTTP ' + response.status);
      setLive(true, 'Live');
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, '\n');
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let kind = 'message';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('id:')) lastId = line.slice(3).trim();
            else if (line.startsWith('event:')) kind = line.slice(6).trim();
            else if (line.startsWith('data:')) data += line.slice(5).trim();
          }
          if (!data) continue;
          let parsed = {};
          try { parsed = JSON.parse(data); } catch { /* shown by kind only */ }
          toast('Change: ' + describeEvent(kind, parsed));
          refreshSoon();
        }
      }
    } catch { /* reconnect below */ }
    if (abort.signal.aborted) return;
    setLive(false, 'Reconnecting…');
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

document.addEventListener('DOMContentLoaded', () => {
  $('#sign-out').addEventListener('click', () => signOut('Signed out.'));
  window.addEventListener('hashchange', route);
  if (session.token) startLive();
  route();
});
