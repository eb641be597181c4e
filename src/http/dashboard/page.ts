/**
 * The support dashboard's HTML and CSS, as a string (tsc ships it with the build; no
 * static files to copy). The client script is in `client.ts`. Every data element has a
 * stable id or `data-testid`; the browser test relies on them.
 */
import { DASHBOARD_SCRIPT } from './client.js';

const STYLE = String.raw`
:root { color-scheme: light; --fg: #1c2024; --muted: #60646c; --line: #e0e1e6; --bg: #f7f8fa; --card: #fff;
  --accent: #3e63dd; --err: #e5484d; --warn: #f76b15; --lat: #8e4ec6; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 16px; padding: 12px 24px; background: #111827; color: #fff; }
header h1 { margin: 0; font-size: 17px; font-weight: 600; }
header .who { margin-left: auto; color: #cbd5e1; font-size: 13px; }
header button { background: transparent; color: #fff; border: 1px solid #475569; }
main { padding: 20px 24px; max-width: 1320px; margin: 0 auto; }
button, select, input { font: inherit; border-radius: 6px; border: 1px solid var(--line); padding: 6px 10px; background: #fff; color: var(--fg); }
button { cursor: pointer; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; }
.card h2 { margin: 0 0 10px; font-size: 13px; font-weight: 600; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
#login-view { max-width: 360px; margin: 64px auto; }
#login-form label { display: block; margin-bottom: 10px; color: var(--muted); font-size: 13px; }
#login-form input { display: block; width: 100%; margin-top: 4px; }
.error { color: var(--err); min-height: 1.4em; }
.controls { display: flex; flex-wrap: wrap; align-items: center; gap: 12px; margin-bottom: 16px; }
.controls label { color: var(--muted); font-size: 13px; }
#status { color: var(--muted); font-size: 13px; }
#status.error { color: var(--err); }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(128px, 1fr)); gap: 12px; margin-bottom: 16px; }
.kpi .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.kpi .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; white-space: nowrap; }
.kpi.bad .value { color: var(--err); }
.kpi.warn .value { color: var(--warn); }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 16px; margin-bottom: 16px; }
svg.chart { width: 100%; height: auto; display: block; }
svg.chart .axis { stroke: var(--line); stroke-width: 1; }
svg.chart text { fill: var(--muted); font-size: 10px; }
svg.chart .bar { fill: var(--accent); opacity: .85; }
svg.chart .bar-err { fill: var(--err); }
svg.chart .line { fill: none; stroke: var(--lat); stroke-width: 2; }
svg.chart .dot { fill: var(--lat); }
svg.chart .ref { stroke: var(--muted); stroke-dasharray: 4 3; stroke-width: 1; }
svg.chart .empty { font-size: 13px; }
.legend { display: flex; gap: 14px; color: var(--muted); font-size: 12px; margin-top: 6px; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; vertical-align: -1px; }
.legend .c-req { background: var(--accent); } .legend .c-err { background: var(--err); } .legend .c-lat { background: var(--lat); }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 500; font-size: 12px; }
td.num, th.num { text-align: right; }
td.route, td.path { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; overflow-wrap: anywhere; }
td.nowrap { white-space: nowrap; }
tr.selected td { background: #eef2ff; }
.s4 { color: var(--warn); font-weight: 600; } .s5 { color: var(--err); font-weight: 600; }
.empty-row td { color: var(--muted); text-align: center; }
#details dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; margin: 0; }
#details dt { color: var(--muted); }
#details dd { margin: 0; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; word-break: break-all; }
#details .head { display: flex; align-items: center; justify-content: space-between; }
.note { color: var(--muted); font-size: 12px; }
[hidden] { display: none !important; }
`;

const BODY = String.raw`
<header>
  <h1>Silo · Support dashboard</h1>
  <span class="who" id="who"></span>
  <button type="button" id="sign-out" hidden>Sign out</button>
</header>
<main>
  <section id="login-view" class="card" hidden>
    <h2>Sign in</h2>
    <form id="login-form" method="post" autocomplete="on">
      <label>Email <input id="login-email" name="email" type="email" autocomplete="username" required></label>
      <label>Password <input id="login-password" name="password" type="password" autocomplete="current-password" required></label>
      <p class="error" id="login-error" role="alert"></p>
      <button type="submit" class="primary" id="login-submit">Sign in</button>
    </form>
  </section>

  <section id="dashboard" data-state="idle" hidden>
    <div class="controls">
      <label>Window
        <select id="window" data-testid="window">
          <option value="1h">Last 1 hour</option>
          <option value="24h" selected>Last 24 hours</option>
          <option value="7d">Last 7 days</option>
          <option value="30d">Last 30 days</option>
        </select>
      </label>
      <label>Tenant
        <select id="tenant" data-testid="tenant"><option value="">All tenants</option></select>
      </label>
      <button type="button" id="refresh">Refresh</button>
      <span id="status" role="status"></span>
    </div>

    <div class="kpis">
      <div class="card kpi"><div class="label">Requests</div><div class="value" id="total-requests" data-testid="total-requests">–</div></div>
      <div class="card kpi"><div class="label">4xx</div><div class="value" id="total-4xx" data-testid="total-4xx">–</div></div>
      <div class="card kpi"><div class="label">5xx</div><div class="value" id="total-5xx" data-testid="total-5xx">–</div></div>
      <div class="card kpi"><div class="label">Error rate</div><div class="value" id="error-rate" data-testid="error-rate">–</div></div>
      <div class="card kpi"><div class="label">Mean</div><div class="value" id="latency-mean" data-testid="latency-mean">–</div></div>
      <div class="card kpi"><div class="label">p50</div><div class="value" id="latency-p50" data-testid="latency-p50">–</div></div>
      <div class="card kpi"><div class="label">p95</div><div class="value" id="latency-p95" data-testid="latency-p95">–</div></div>
      <div class="card kpi"><div class="label">p99</div><div class="value" id="latency-p99" data-testid="latency-p99">–</div></div>
      <div class="card kpi"><div class="label">Max</div><div class="value" id="latency-max" data-testid="latency-max">–</div></div>
    </div>

    <div class="grid2">
      <div class="card">
        <h2>Requests and errors</h2>
        <svg id="chart-requests" data-testid="chart-requests" class="chart" role="img" aria-label="Requests and errors per time bucket"></svg>
        <div class="legend"><span><i class="c-req"></i>requests</span><span><i class="c-err"></i>errors (4xx + 5xx)</span><span id="bucket-note"></span></div>
      </div>
      <div class="card">
        <h2>Latency (ms)</h2>
        <svg id="chart-latency" data-testid="chart-latency" class="chart" role="img" aria-label="p95 latency per time bucket"></svg>
        <div class="legend"><span><i class="c-lat"></i>p95 per bucket</span><span>dashed: p50 / p99 of the window</span></div>
      </div>
    </div>

    <div class="grid2">
      <div class="card">
        <h2>Top routes</h2>
        <table id="top-routes" data-testid="top-routes">
          <thead><tr><th>Route</th><th class="num">Requests</th><th class="num">Error rate</th><th class="num">p95 ms</th></tr></thead>
          <tbody></tbody>
        </table>
      </div>
      <div class="card">
        <h2>Recent errors</h2>
        <table id="recent-errors" data-testid="recent-errors">
          <thead><tr><th>Time</th><th>Status</th><th>Method</th><th>Path</th><th>Code</th><th>Tenant</th></tr></thead>
          <tbody></tbody>
        </table>
        <p class="note" id="recent-errors-note"></p>
      </div>
    </div>

    <aside id="details" data-testid="details" class="card" hidden>
      <div class="head"><h2 id="details-title">Request</h2><button type="button" id="details-close">Close</button></div>
      <dl id="details-list"></dl>
    </aside>
  </section>
</main>
`;

/** The page, with `nonce` on its inline style and script (the CSP allows only those). */
export function dashboardPage(nonce: string): string {
  return (
    '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n' +
    '<meta name="referrer" content="no-referrer">\n<link rel="icon" href="data:,">\n' +
    '<title>Silo · Support dashboard</title>\n' +
    `<style nonce="${nonce}">${STYLE}</style>\n</head>\n<body>${BODY}` +
    `<script nonce="${nonce}">${DASHBOARD_SCRIPT}</script>\n</body>\n</html>\n`
  );
}
