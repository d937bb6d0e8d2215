"""The page: one self-contained HTML document (no external resource) that renders the JSON API.

Every value from the API is put into the page with ``textContent`` or as an attribute value through
the DOM, never as HTML, so a table called ``<script>`` shows as that text. The only server-side
insertion is the page's configuration, JSON with ``<``, ``>`` and ``&`` escaped inside a
``type="application/json"`` script element, where it cannot end the element.

Release and purge are Airflow DAG runs: the page asks the plugin's API for the run's conf (checked
against what is held), then posts it to Airflow's own REST API with the user's session, so Airflow
decides whether the user may trigger that DAG.
"""

from __future__ import annotations

import json
from typing import Any

#: Security headers of the page and of drift plots (the plots are our own HTML, without script).
PAGE_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self' 'unsafe-inline'; "
                                "style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; "
                                "frame-ancestors 'self'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
PLOTS_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def render_page(config: dict[str, Any]) -> str:
    """The page with ``config`` (API base, Airflow's DAG-run URL pattern and body shape) embedded."""
    data = json.dumps(config, sort_keys=True)
    for character, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        data = data.replace(character, escaped)
    return _PAGE.replace("__CONFIG__", data)


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Dativo: tables, quarantines, requests</title>
<style>
  :root { color-scheme: light dark; --line: #d0d7de; --muted: #57606a; --bad: #cf222e; --good: #1a7f37;
          --warn: #9a6700; --accent: #0969da; }
  body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; padding: 0 16px 24px; }
  nav { display: flex; gap: 4px; border-bottom: 1px solid var(--line); margin-bottom: 12px; }
  nav a { padding: 10px 12px; text-decoration: none; color: inherit; border-bottom: 2px solid transparent; }
  nav a.active { border-bottom-color: var(--accent); font-weight: 600; }
  h2 { font-size: 18px; margin: 12px 0 8px; } h3 { font-size: 15px; margin: 18px 0 6px; }
  table { border-collapse: collapse; width: 100%; margin-bottom: 8px; }
  th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
  th { font-weight: 600; white-space: nowrap; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
  .nowrap { white-space: nowrap; }
  code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12.5px; }
  .muted { color: var(--muted); } .bad { color: var(--bad); font-weight: 600; }
  .good { color: var(--good); font-weight: 600; } .warn { color: var(--warn); font-weight: 600; }
  .pill { display: inline-block; padding: 0 7px; border: 1px solid var(--line); border-radius: 10px;
          font-size: 12px; margin: 1px 2px; }
  .error { border: 1px solid var(--bad); padding: 8px; margin: 8px 0; border-radius: 6px; }
  .note { border: 1px solid var(--line); padding: 8px; margin: 8px 0; border-radius: 6px; }
  button { font: inherit; padding: 2px 10px; margin-right: 4px; cursor: pointer; }
  input[type=search] { font: inherit; padding: 4px 8px; width: 280px; margin-bottom: 8px; }
</style>
</head>
<body>
<nav id="nav">
  <a href="#tables" data-view="tables">Tables</a>
  <a href="#quarantines" data-view="quarantines">Quarantines</a>
  <a href="#requests" data-view="requests">Data-subject requests</a>
</nav>
<main id="main"><p class="muted">Loading...</p></main>
<script type="application/json" id="dativo-config">__CONFIG__</script>
<script>
"use strict";
const CONFIG = JSON.parse(document.getElementById("dativo-config").textContent);
const main = document.getElementById("main");

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
function grid(headers, rows, numeric) {
  const numbers = new Set(numeric || []);
  return el("table", {}, el("thead", {}, el("tr", {}, headers.map(h => el("th", {}, h)))),
    el("tbody", {}, rows.map(r => el("tr", {}, r.map((c, i) => el("td", numbers.has(i) ? {class: "num"} : {}, c))))));
}
function size(bytes) {
  if (bytes === null || bytes === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"]; let n = bytes, u = 0;
  while (n >= 1024 && u < units.length - 1) { n /= 1024; u++; }
  return (u ? n.toFixed(1) : n) + " " + units[u];
}
function num(value) { return value === null || value === undefined ? "" : Number(value).toLocaleString("en"); }
function when(iso) { return iso ? iso.replace("T", " ").replace(/\\.\\d+/, "").replace("+00:00", " UTC") : ""; }
function json(value) { return value === null || value === undefined ? "" : JSON.stringify(value); }
function watermark(state) {
  const value = ["watermark", "cursor", "upper", "last_value"].map(k => state[k]).find(v => v !== undefined && v !== null);
  if (value === undefined) { const text = json(state); return text.length > 60 ? text.slice(0, 57) + "..." : text; }
  return typeof value === "string" && /^\\d{4}-\\d\\d-\\d\\dT/.test(value) ? when(value) : json(value);
}
function link(text, hash) { return el("a", {href: hash}, text); }
function tableHash(catalog, table) {
  return "#table/" + encodeURIComponent(catalog) + "/" + encodeURIComponent(table);
}
function api(path, options) {
  return fetch(CONFIG.api + path, Object.assign({credentials: "same-origin"}, options || {}))
    .then(async response => {
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(response.status + " " + (body.detail ? json(body.detail) : response.statusText));
      return body;
    });
}
function postHeaders() {
  return Object.assign({"Content-Type": "application/json"}, CONFIG.csrf_token ? {"X-CSRFToken": CONFIG.csrf_token} : {});
}
function show(...nodes) {
  main.replaceChildren(...nodes.flat(Infinity).filter(n => n !== null && n !== undefined && n !== ""));
}
function errors(map) {
  return Object.entries(map || {}).map(([catalog, message]) => el("div", {class: "error"},
    "Catalog " + catalog + " did not answer: " + message));
}
function outcome(text) {
  const kind = {passed: "good", pass: "good", failed: "bad", fail: "bad", error: "bad", warn: "warn"}[text];
  return el("span", kind ? {class: kind} : {}, text === null || text === undefined ? "" : text);
}

async function tablesView() {
  const data = await api("tables");
  const filter = el("input", {type: "search", placeholder: "Filter tables", "aria-label": "Filter tables"});
  const body = el("div");
  const draw = () => {
    const term = filter.value.toLowerCase();
    const rows = data.tables.filter(t => (t.catalog + "." + t.table).toLowerCase().includes(term));
    body.replaceChildren(grid(
      ["Catalog", "Namespace", "Table", "Rows", "Files", "Size", "Last snapshot", "Committed", "Source watermark",
       "Contract"],
      rows.map(t => [t.catalog, t.namespace, link(t.name, tableHash(t.catalog, t.table)), num(t.rows), num(t.files),
                     size(t.size_bytes), el("span", {class: "mono"}, t.snapshot_id || ""), el("span", {class: "nowrap"}, when(t.committed_at)),
                     t.watermark ? el("span", {class: "nowrap", title: (t.source || "") + " " + json(t.watermark)},
                                      watermark(t.watermark)) : "",
                     t.quarantine_of ? el("span", {class: "muted"}, "quarantine of " + t.quarantine_of)
                                     : (t.contract || "")]),
      [3, 4, 5]));
  };
  filter.addEventListener("input", draw);
  draw();
  show(el("h2", {}, "Tables"), errors(data.errors),
       el("p", {class: "muted"}, data.tables.length + " tables, listed in " + data.seconds + " s"), filter, body);
}

async function tableView(catalog, table) {
  const d = await api("tables/" + encodeURIComponent(catalog) + "/" + encodeURIComponent(table));
  const t = d.table;
  const parts = [el("h2", {}, t.catalog + " / " + t.table),
    el("p", {}, "Rows ", num(t.rows), " in ", num(t.files), " files (", size(t.size_bytes), "); snapshot ",
       el("span", {class: "mono"}, t.snapshot_id || "none"), " committed ", when(t.committed_at),
       t.contract ? ["; contract ", el("b", {}, t.contract)] : "")];
  if (t.watermark) parts.push(el("p", {}, "Source ", el("span", {class: "mono"}, t.source || ""),
                                  " watermark ", el("span", {class: "mono"}, json(t.watermark))));
  parts.push(el("h3", {}, "Contract results"), contractResults(d));
  parts.push(el("h3", {}, "Quarantine"), quarantineSummary(d.quarantine));
  parts.push(el("h3", {}, "Drift"), driftSection(d.drift, t));
  parts.push(el("h3", {}, "Schema"), grid(["Id", "Column", "Type", "Required", "Classification", "Data subject",
    "Metrics", "Description"], d.schema.map(c => [c.id, c.name, el("span", {class: "mono"}, c.type),
    c.required ? "yes" : "", c.classification ? el("span", {class: "pill"}, c.classification) : "",
    c.data_subject || "", c.metrics || "", c.doc || ""])));
  parts.push(el("h3", {}, "Branches and tags"), grid(["Name", "Type", "Snapshot", "Max ref age (ms)"],
    d.refs.map(r => [r.name, r.type, el("span", {class: "mono"}, r.snapshot_id), num(r.max_ref_age_ms)])));
  parts.push(el("h3", {}, "Snapshots"), grid(["Snapshot", "Committed", "Operation", "Refs", "Run", "What it did"],
    d.snapshots.map(s => [el("span", {class: "mono"}, s.snapshot_id), when(s.committed_at), s.operation || "",
      s.refs.map(r => el("span", {class: "pill"}, r)), s.run_id || "",
      Object.entries(s.summary).map(([k, v]) => el("span", {class: "pill"}, k + "=" + v))])));
  parts.push(el("h3", {}, "Properties"), grid(["Property", "Value"], Object.entries(d.properties)));
  show(...parts);
}
function contractResults(d) {
  const r = d.contract_results;
  const rules = (d.contract && d.contract.rules) || [];
  if (!r) {
    return el("div", {}, el("p", {class: "muted"}, "No contract report in the reports folder for this table."),
      rules.length ? grid(["Rule", "Engine", "Severity", "Column"], rules.map(x => [x.name, x.engine, x.severity,
                                                                              x.column || ""])) : "");
  }
  return el("div", {}, el("p", {}, "Contract ", r.contract + " v" + r.contract_version, ", verdict ",
      outcome(r.verdict), ": ", num(r.checks_passed), " passed, ", num(r.checks_failed), " failed, ",
      num(r.rows_checked), " rows checked (", r.file, ", ", when(r.written_at), ")"),
    grid(["Rule", "Engine", "Severity", "Outcome", "Column", "Observed", "Failing rows", "Message"],
      r.checks.map(c => [c.name, c.engine, c.severity, outcome(c.outcome), c.column || "", json(c.observed),
                         num(c.failing_rows), c.message || ""]), [6]));
}
function quarantineSummary(q) {
  if (!q) return el("p", {class: "muted"}, "No quarantine table.");
  return el("div", {}, el("p", {}, num(q.rows), " rows held in ", link(q.quarantine_table,
      tableHash(q.catalog, q.quarantine_table))),
    grid(["Check", "Rows"], Object.entries(q.checks).map(([k, v]) => [k, num(v)]), [1]));
}
function driftSection(reports, t) {
  if (!reports.length) return el("p", {class: "muted"}, "No drift report in the reports folder for this table.");
  return el("div", {}, reports.map(r => el("div", {class: "note"},
    el("p", {}, r.dataset_drift ? el("span", {class: "bad"}, "Dataset drift") : el("span", {class: "good"},
       "No dataset drift"), ": ", (r.drifted_columns.length) + " of " + r.columns.length + " columns drifted (",
       r.file, ", ", when(r.written_at), ")",
       r.plots ? [" ", el("a", {href: CONFIG.api + "tables/" + encodeURIComponent(t.catalog) + "/" +
                   encodeURIComponent(t.table) + "/drift/" + encodeURIComponent(r.plots), target: "_blank",
                   rel: "noopener"}, "plots")] : ""),
    grid(["Column", "Kind", "Test", "Value", "Threshold", "Drifted"], r.columns.map(c => [c.column, c.kind,
      c.stattest, c.value === null ? "" : Number(c.value).toPrecision(4), c.threshold,
      c.drifted ? el("span", {class: "bad"}, "yes") : "no"])))));
}

async function quarantinesView() {
  const data = await api("quarantines");
  const status = el("div", {role: "status"});
  const sections = data.quarantines.map(q => el("section", {},
    el("h3", {}, link(q.table, tableHash(q.catalog, q.table)), " (", q.catalog, "): ", num(q.rows), " rows in ",
       q.quarantine_table),
    grid(["Check", "Rows"], Object.entries(q.checks).map(([k, v]) => [k, num(v)]), [1]),
    grid(["Run", "Rows", "Checks", "Reasons", "Quarantined", "Actions"], q.runs.map(run => [
      el("span", {class: "mono"}, run.run_id), num(run.rows),
      Object.entries(run.checks).map(([k, v]) => el("span", {class: "pill"}, k + ": " + v)),
      run.reasons.join("; "), when(run.last_at),
      [el("button", {onclick: () => act("release", q, run, status), disabled: q.contract_file ? null : "disabled",
                     title: q.contract_file ? "Re-check with the contract and publish what passes"
                                             : "The contract is not in the contracts folder"}, "Release"),
       el("button", {onclick: () => act("purge", q, run, status)}, "Purge")]]), [1])));
  show(el("h2", {}, "Quarantines"), errors(data.errors), status,
       sections.length ? sections : el("p", {class: "muted"}, "Nothing is held in quarantine."));
}
async function act(action, q, run, status) {
  const verb = action === "release" ? "Release" : "Purge for good";
  if (!window.confirm(verb + " " + run.rows + " rows of run " + run.run_id + " in " + q.quarantine_table + "?")) return;
  try {
    const planned = await api("quarantines/action", {method: "POST", headers: postHeaders(),
      body: JSON.stringify({catalog: q.catalog, quarantine_table: q.quarantine_table, action: action,
                            run_ids: [run.run_id]})});
    const url = CONFIG.trigger_url.replace("{dag_id}", encodeURIComponent(planned.dag_id));
    const body = Object.assign({}, CONFIG.trigger_body, {conf: planned.conf});
    const response = await fetch(url, {method: "POST", credentials: "same-origin",
      headers: postHeaders(), body: JSON.stringify(body)});
    const result = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(response.status + " " + (result.detail ? json(result.detail) : response.statusText));
    status.replaceChildren(el("div", {class: "note"}, "Triggered " + planned.dag_id + " run " +
      (result.dag_run_id || "") + ": " + action + " of run " + run.run_id + "."));
  } catch (error) {
    status.replaceChildren(el("div", {class: "error"}, action + " was not triggered: " + error.message));
  }
}

async function requestsView() {
  const data = await api("requests");
  const trails = Object.entries(data.audit_trails || {}).filter(([, check]) => check).map(([catalog, check]) =>
    el("p", {}, "Audit trail in ", catalog, ": ", check.valid ? el("span", {class: "good"}, "verified")
      : el("span", {class: "bad"}, "NOT valid"), " (", num(check.events), " events) ", check.reason));
  const rows = data.requests.map(r => [el("span", {class: "mono"}, r.request_id), r.kind || "",
    r.status === "completed" ? el("span", {class: "good"}, r.status) : r.status === "failed"
      ? el("span", {class: "bad"}, r.status) : r.status,
    r.deadline ? el("span", r.overdue ? {class: "bad"} : {}, when(r.deadline) + (r.overdue ? " (overdue)" : ""))
               : el("span", {class: "muted"}, "unknown"),
    r.tables.map(t => el("span", {class: "pill"}, t)),
    r.subject_hashes.map(h => el("span", {class: "pill mono", title: "HMAC-SHA256 under the trail key"}, h)),
    certificate(r.certificate), r.last_event + " " + when(r.last_event_at)]);
  show(el("h2", {}, "Data-subject requests"), errors(data.errors), trails,
       rows.length ? grid(["Request", "Kind", "Status", "Deadline", "Tables", "Subject (keyed hashes)",
                           "Certificate", "Last event"], rows)
                   : el("p", {class: "muted"}, "No request in the audit trail."));
}
function certificate(c) {
  if (!c) return el("span", {class: "muted"}, "none");
  const verdict = c.valid === true ? el("span", {class: "good"}, "signature valid")
    : c.valid === false ? el("span", {class: "bad"}, "signature INVALID") : el("span", {class: "warn"}, "not checked");
  const verified = c.verification ? (c.verification.passed ? "; erasure verified" : "; erasure NOT verified") : "";
  return el("span", {title: c.reason}, verdict, verified, " (", c.file, ")");
}

async function route() {
  const [view, ...rest] = (location.hash.slice(1) || "tables").split("/");
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === view ||
    (view === "table" && a.dataset.view === "tables"));
  try {
    if (view === "table") await tableView(decodeURIComponent(rest[0]), decodeURIComponent(rest.slice(1).join("/")));
    else if (view === "quarantines") await quarantinesView();
    else if (view === "requests") await requestsView();
    else await tablesView();
  } catch (error) {
    show(el("div", {class: "error"}, "Could not load this view: " + error.message));
  }
}
window.addEventListener("hashchange", route);
route();
</script>
</body>
</html>
"""
