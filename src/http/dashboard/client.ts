/**
 * The support dashboard's browser script: plain JS as a string (inlined into the page
 * under a CSP nonce; no build step, no library). It signs in against
 * `/platform/v1/auth/login` (token kept in sessionStorage), then reads
 * `/platform/v1/tenants`, `/platform/v1/history/stats`, `/platform/v1/history` and
 * `/platform/v1/history/:id` with the bearer token. Charts are drawn as inline SVG.
 * Every value from the API is put in the DOM as text, never as HTML.
 *
 * The statistics are painted as soon as `/platform/v1/history/stats` answers (then
 * `#dashboard` carries `data-stats="ready"`: the first paint); the error lists follow.
 * After each load, `#dashboard` carries `data-state="ready"` and the exact window used
 * (`data-from`, `data-to`, `data-tenant`, `data-window`), so a test can ask the API for
 * the same figures.
 *
 * (Written without template literals: this file is itself one.)
 */
export const DASHBOARD_SCRIPT = String.raw`
(function () {
  'use strict';
  var TOKEN = 'silo.platform.token';
  var WHO = 'silo.platform.who';
  var WINDOWS = { '1h': 3600e3, '24h': 86400e3, '7d': 7 * 86400e3, '30d': 30 * 86400e3 };
  var SVG = 'http://www.w3.org/2000/svg';
  var seq = 0;
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svgEl(parent, tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = String(text);
    parent.appendChild(e);
    return e;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  var int = function (n) { return Number(n).toLocaleString('en-US'); };
  var ms = function (v) { return v === null || v === undefined ? '–' : (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + ' ms'; };
  var pct = function (r) { return (r * 100).toFixed(r > 0 && r < 0.001 ? 2 : 1) + '%'; };
  function when(iso, bucket) {
    var d = new Date(iso);
    if (bucket === 'day') return d.toLocaleDateString('en-GB', { day: '2-digit', month: 'short' });
    if (bucket === 'hour') return d.toLocaleString('en-GB', { day: '2-digit', month: 'short', hour: '2-digit', minute: '2-digit' });
    return d.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit' });
  }
  var stamp = function (iso) { return new Date(iso).toLocaleString('en-GB', { day: '2-digit', month: 'short', hour: '2-digit', minute: '2-digit', second: '2-digit' }); };

  function ApiError(status, message) { this.status = status; this.message = message; }
  async function api(path, opts) {
    opts = opts || {};
    var token = sessionStorage.getItem(TOKEN);
    var headers = { accept: 'application/json' };
    if (token && !opts.anonymous) headers.authorization = 'Bearer ' + token;
    if (opts.body) headers['content-type'] = 'application/json';
    var res = await fetch(path, { method: opts.method || 'GET', headers: headers, body: opts.body ? JSON.stringify(opts.body) : undefined, cache: 'no-store', credentials: 'omit' });
    var type = res.headers.get('content-type') || '';
    var body = type.indexOf('json') >= 0 ? await res.json() : null;
    if (res.status === 401 && !opts.anonymous) { signOut('Your session has ended; sign in again.'); }
    if (!res.ok) throw new ApiError(res.status, (body && (body.detail || body.message)) || ('HTTP ' + res.status));
    return body;
  }

  function setStatus(text, isError) { var s = $('status'); s.textContent = text; s.className = isError ? 'error' : ''; }

  function showLogin(message) {
    $('dashboard').hidden = true; $('sign-out').hidden = true; $('who').textContent = '';
    $('login-view').hidden = false; $('login-error').textContent = message || '';
    $('login-email').focus();
  }
  function signOut(message) {
    sessionStorage.removeItem(TOKEN); sessionStorage.removeItem(WHO);
    seq++;
    showLogin(message);
  }
  async function showDashboard() {
    $('login-view').hidden = true; $('dashboard').hidden = false; $('sign-out').hidden = false;
    $('who').textContent = sessionStorage.getItem(WHO) || '';
    try { await loadTenants(); } catch (e) { setStatus('Could not load tenants: ' + e.message, true); return; }
    await load();
  }

  async function loadTenants() {
    var sel = $('tenant'); var keep = sel.value;
    var r = await api('/platform/v1/tenants');
    while (sel.options.length > 1) sel.remove(1);
    r.data.slice().sort(function (a, b) { return a.slug < b.slug ? -1 : 1; }).forEach(function (t) {
      var label = t.slug + (t.name && t.name !== t.slug ? ' — ' + t.name : '') + (t.status !== 'active' ? ' (' + t.status + ')' : '');
      sel.appendChild(el('option', { value: t.slug }, label));
    });
    sel.value = keep;
    if (sel.value !== keep) sel.value = '';
  }

  async function load() {
    var mine = ++seq;
    var win = $('window').value; var tenant = $('tenant').value;
    var to = new Date(); var from = new Date(to.getTime() - WINDOWS[win]);
    var dash = $('dashboard');
    dash.dataset.state = 'loading'; dash.dataset.stats = 'loading';
    setStatus('Loading…');
    var q = new URLSearchParams({ from: from.toISOString(), to: to.toISOString() });
    if (tenant) q.set('tenant', tenant);
    var errorsOf = function (cls) { var p = new URLSearchParams(q); p.set('statusClass', cls); p.set('pageSize', '20'); return api('/platform/v1/history?' + p); };
    try {
      // The statistics (from the rollups) are painted as soon as they arrive; the error lists follow.
      var lists = Promise.all([errorsOf('4xx'), errorsOf('5xx')]);
      lists.catch(function () { /* reported below */ });
      var stats = await api('/platform/v1/history/stats?' + q);
      if (mine !== seq) return;
      renderTotals(stats);
      drawRequests($('chart-requests'), stats.series, stats.window.bucket);
      drawLatency($('chart-latency'), stats.series, stats.window.bucket, stats.latency);
      renderRoutes(stats.byRoute);
      $('bucket-note').textContent = 'one bar per ' + stats.window.bucket;
      dash.dataset.stats = 'ready';
      var all = await lists;
      if (mine !== seq) return;
      renderErrors(all[0], all[1]);
      dash.dataset.from = from.toISOString(); dash.dataset.to = to.toISOString();
      dash.dataset.tenant = tenant; dash.dataset.window = win;
      dash.dataset.state = 'ready';
      setStatus('Updated ' + to.toLocaleTimeString('en-GB'));
    } catch (e) {
      if (mine !== seq) return;
      dash.dataset.state = 'error';
      setStatus('Could not load: ' + e.message, true);
    }
  }

  function setValue(id, value, text) { var e = $(id); e.dataset.value = value === null ? '' : String(value); e.textContent = text; }
  function renderTotals(s) {
    setValue('total-requests', s.totals.requests, int(s.totals.requests));
    setValue('total-4xx', s.totals.clientErrors, int(s.totals.clientErrors));
    setValue('total-5xx', s.totals.serverErrors, int(s.totals.serverErrors));
    setValue('error-rate', s.totals.errorRate, pct(s.totals.errorRate));
    $('total-4xx').parentElement.classList.toggle('warn', s.totals.clientErrors > 0);
    $('total-5xx').parentElement.classList.toggle('bad', s.totals.serverErrors > 0);
    ['mean', 'p50', 'p95', 'p99', 'max'].forEach(function (k) { setValue('latency-' + k, s.latency[k], ms(s.latency[k])); });
  }

  var W = 720, H = 230, L = 46, R = 10, T = 12, B = 28;
  function nice(max) {
    if (max <= 0) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(max))); var m = max / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  function frame(svg, series, bucket, top, unit) {
    clear(svg);
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    var ph = H - T - B;
    [0, 0.5, 1].forEach(function (f) {
      var y = T + ph - f * ph;
      svgEl(svg, 'line', { x1: L, x2: W - R, y1: y, y2: y, class: 'axis' });
      var v = top * f;
      svgEl(svg, 'text', { x: L - 6, y: y + 3, 'text-anchor': 'end' }, (v >= 10 || v === 0 ? Math.round(v) : v.toFixed(1)) + unit);
    });
    var n = series.length; var bw = (W - L - R) / Math.max(1, n);
    [0, Math.floor((n - 1) / 2), n - 1].filter(function (i, k, a) { return i >= 0 && a.indexOf(i) === k; }).forEach(function (i) {
      svgEl(svg, 'text', { x: L + i * bw + bw / 2, y: H - 8, 'text-anchor': i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle' }, when(series[i].start, bucket));
    });
    return { ph: ph, bw: bw };
  }

  function drawRequests(svg, series, bucket) {
    var top = nice(Math.max.apply(null, [1].concat(series.map(function (p) { return p.count; }))));
    var f = frame(svg, series, bucket, top, '');
    var gap = f.bw > 4 ? 1 : 0;
    series.forEach(function (p, i) {
      var x = L + i * f.bw + gap / 2; var w = Math.max(f.bw - gap, 0.5);
      var h = (p.count / top) * f.ph; var eh = (p.errors / top) * f.ph;
      var g = svgEl(svg, 'g', { class: 'bucket' });
      var bar = svgEl(g, 'rect', { x: x, y: T + f.ph - h, width: w, height: h, class: 'bar', 'data-count': p.count, 'data-errors': p.errors, 'data-start': p.start });
      svgEl(bar, 'title', {}, when(p.start, bucket) + ': ' + p.count + ' requests, ' + p.errors + ' errors');
      if (p.errors > 0) svgEl(g, 'rect', { x: x, y: T + f.ph - eh, width: w, height: eh, class: 'bar-err' });
    });
    if (!series.some(function (p) { return p.count > 0; })) svgEl(svg, 'text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' }, 'No requests in this window');
  }

  function drawLatency(svg, series, bucket, latency) {
    var values = series.map(function (p) { return p.p95; }).filter(function (v) { return v !== null; });
    var top = nice(Math.max.apply(null, [1, latency.p99 || 0].concat(values)));
    var f = frame(svg, series, bucket, top, '');
    var y = function (v) { return T + f.ph - (v / top) * f.ph; };
    [['p50', latency.p50], ['p99', latency.p99]].forEach(function (r) {
      if (r[1] === null) return;
      svgEl(svg, 'line', { x1: L, x2: W - R, y1: y(r[1]), y2: y(r[1]), class: 'ref', 'data-ref': r[0] });
      svgEl(svg, 'text', { x: L + 4, y: y(r[1]) - 3 }, r[0] + ' ' + ms(r[1]));
    });
    var pts = [];
    series.forEach(function (p, i) { if (p.p95 !== null) pts.push([L + i * f.bw + f.bw / 2, y(p.p95), p]); });
    if (pts.length > 1) svgEl(svg, 'polyline', { points: pts.map(function (q) { return q[0].toFixed(1) + ',' + q[1].toFixed(1); }).join(' '), class: 'line' });
    pts.forEach(function (q) {
      var dot = svgEl(svg, 'circle', { cx: q[0], cy: q[1], r: 3, class: 'dot', 'data-p95': q[2].p95, 'data-start': q[2].start });
      svgEl(dot, 'title', {}, when(q[2].start, bucket) + ': p95 ' + ms(q[2].p95));
    });
    if (!pts.length) svgEl(svg, 'text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' }, 'No requests in this window');
  }

  function emptyRow(tbody, cols, text) { var tr = el('tr', { class: 'empty-row' }); var td = el('td', { colspan: cols }, text); tr.appendChild(td); tbody.appendChild(tr); }
  function renderRoutes(rows) {
    var tbody = $('top-routes').tBodies[0]; clear(tbody);
    if (!rows.length) return emptyRow(tbody, 4, 'No requests');
    rows.forEach(function (r) {
      var tr = el('tr', { 'data-route': r.route === null ? '' : r.route, 'data-count': r.count });
      tr.appendChild(el('td', { class: 'route' }, r.route === null ? '(no route)' : r.route));
      tr.appendChild(el('td', { class: 'num' }, int(r.count)));
      tr.appendChild(el('td', { class: 'num' + (r.errorRate > 0 ? ' s4' : '') }, pct(r.errorRate)));
      tr.appendChild(el('td', { class: 'num' }, r.p95 === null ? '–' : r.p95.toFixed(1)));
      tbody.appendChild(tr);
    });
  }

  function renderErrors(c4, c5) {
    var tbody = $('recent-errors').tBodies[0]; clear(tbody);
    var rows = c4.data.concat(c5.data).sort(function (a, b) { return a.createdAt === b.createdAt ? b.id - a.id : a.createdAt < b.createdAt ? 1 : -1; }).slice(0, 20);
    var total = c4.total + c5.total;
    $('recent-errors-note').textContent = total > rows.length ? 'Newest ' + rows.length + ' of ' + int(total) + ' errors in this window.' : '';
    if (!rows.length) return emptyRow(tbody, 6, 'No errors in this window');
    rows.forEach(function (r) {
      var tr = el('tr', { 'data-id': r.id, 'data-status': r.status });
      var td = el('td', { class: 'nowrap' }); td.appendChild(el('a', { href: '#entry-' + r.id, class: 'details-link', 'data-id': r.id }, stamp(r.createdAt))); tr.appendChild(td);
      tr.appendChild(el('td', { class: r.status >= 500 ? 's5' : 's4' }, r.status));
      tr.appendChild(el('td', {}, r.method));
      tr.appendChild(el('td', { class: 'path' }, r.path));
      tr.appendChild(el('td', {}, r.errorCode || ''));
      tr.appendChild(el('td', { class: 'nowrap' }, r.tenantSlug || ''));
      tbody.appendChild(tr);
    });
  }

  var FIELDS = ['id', 'createdAt', 'requestId', 'tenantSlug', 'tenantId', 'method', 'route', 'path', 'query', 'status', 'errorCode', 'durationMs', 'responseBytes', 'userKind', 'userId', 'ip', 'userAgent'];
  async function showDetails(id) {
    var panel = $('details'); var list = $('details-list');
    Array.prototype.forEach.call(document.querySelectorAll('#recent-errors tr.selected'), function (tr) { tr.classList.remove('selected'); });
    var row = document.querySelector('#recent-errors tr[data-id="' + Number(id) + '"]'); if (row) row.classList.add('selected');
    panel.hidden = false; panel.dataset.state = 'loading'; clear(list);
    $('details-title').textContent = 'Request #' + id;
    try {
      var r = await api('/platform/v1/history/' + encodeURIComponent(id));
      FIELDS.forEach(function (k) {
        var v = r[k];
        list.appendChild(el('dt', {}, k));
        list.appendChild(el('dd', { 'data-field': k }, v === null || v === undefined ? '–' : k === 'createdAt' ? v + '  (' + stamp(v) + ')' : v));
      });
      panel.dataset.id = String(r.id); panel.dataset.state = 'ready';
      panel.scrollIntoView({ block: 'nearest' });
    } catch (e) {
      list.appendChild(el('dd', { class: 'error' }, 'Could not load: ' + e.message)); panel.dataset.state = 'error';
    }
  }

  $('login-form').addEventListener('submit', async function (ev) {
    ev.preventDefault();
    var btn = $('login-submit'); btn.disabled = true; $('login-error').textContent = '';
    try {
      var r = await api('/platform/v1/auth/login', { method: 'POST', anonymous: true, body: { email: $('login-email').value, password: $('login-password').value } });
      sessionStorage.setItem(TOKEN, r.accessToken);
      sessionStorage.setItem(WHO, $('login-email').value.trim().toLowerCase() + ' (' + r.role + ')');
      $('login-password').value = '';
      await showDashboard();
    } catch (e) {
      $('login-error').textContent = e.status === 401 ? 'Email or password is wrong.' : e.message;
    } finally { btn.disabled = false; }
  });
  $('sign-out').addEventListener('click', function () { signOut(''); });
  $('window').addEventListener('change', load);
  $('tenant').addEventListener('change', load);
  $('refresh').addEventListener('click', function () { loadTenants().catch(function () {}).then(load); });
  $('details-close').addEventListener('click', function () { $('details').hidden = true; });
  $('recent-errors').addEventListener('click', function (ev) {
    var a = ev.target.closest && ev.target.closest('a.details-link');
    if (!a) return;
    ev.preventDefault();
    showDetails(a.dataset.id);
  });

  if (sessionStorage.getItem(TOKEN)) showDashboard(); else showLogin('');
})();
`;
