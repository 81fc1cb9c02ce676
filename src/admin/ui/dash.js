// The dashboard: polls the admin JSON endpoints every 2 s and draws them. Read-only: it only
// sends GETs (the mutating endpoints refuse requests from web pages anyway). No library: the
// charts are SVG polylines of the last 5 minutes kept in memory; a vendored chart library
// would add tens of KB for lines this simple.
"use strict";

const PERIOD_MS = 2000;
const POINTS = 150; // 5 minutes at one point per 2 s
const history = new Map(); // route -> { rate: [], p95: [] }

function el(tag, attrs, ...children) {
  const e = tag.startsWith("svg:")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

async function get(path) {
  const r = await fetch(path, { cache: "no-store", credentials: "same-origin" });
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}

const ms = (s) => (s == null ? "–" : (s * 1000).toFixed(s < 0.01 ? 2 : 1) + " ms");
const pct = (r) => (r == null ? "–" : (r * 100).toFixed(1) + "%");
function bytes(n) {
  if (n == null) return "–";
  const u = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + " " + u[i];
}

function spark(values) {
  const w = 120, h = 28;
  const svg = el("svg:svg", { class: "spark", viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: "none" });
  if (values.length < 2) return svg;
  const max = Math.max(...values, 1e-9);
  // Spread what history there is over the width (up to POINTS, then it scrolls).
  const step = w / (values.length - 1);
  const pts = values.map((v, i) => `${(i * step).toFixed(1)},${(h - 2 - (v / max) * (h - 4)).toFixed(1)}`);
  svg.append(el("svg:polyline", { points: pts.join(" ") }));
  return svg;
}

function remember(name, r) {
  const h = history.get(name) || { rate: [], p95: [] };
  h.rate.push(r.rate_per_second || 0);
  h.p95.push((r.latency_seconds && r.latency_seconds.p95) || 0);
  for (const k of ["rate", "p95"]) if (h[k].length > POINTS) h[k].shift();
  history.set(name, h);
  return h;
}

function drawRoutes(stats) {
  const body = document.querySelector("#routes tbody");
  const rows = [];
  for (const [name, r] of Object.entries(stats.routes || {})) {
    const h = remember(name, r);
    const lat = r.latency_seconds || {};
    const tr = el("tr", { "data-route": name },
      el("td", { class: "route" }, name),
      el("td", {}, r.upstream || ""),
      el("td", { class: "rate" }, (r.rate_per_second || 0).toFixed(2)),
      el("td", { class: "errors" }, pct(r.error_ratio)),
      el("td", {}, ms(lat.p50)), el("td", {}, ms(lat.p95)), el("td", {}, ms(lat.p99)),
      el("td", {}, spark(h.rate)), el("td", {}, spark(h.p95)),
      el("td", {}, pct(r.cache_hit_ratio)),
      el("td", {}, bytes(r.compression_bytes_saved)));
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}

function drawUpstreams(breakers) {
  const cards = [];
  for (const [name, u] of Object.entries(breakers.upstreams || {})) {
    const card = el("div", { class: "card", "data-upstream": name },
      el("h3", {}, name + " ", el("span", { class: "badge state-" + u.state }, u.state)),
      el("div", { class: "meta" }, `in flight ${u.in_flight}` + (u.max_concurrent ? ` / ${u.max_concurrent}` : "")));
    for (const e of u.endpoints || []) {
      const state = e.enabled === false ? "disabled" : e.state;
      card.append(el("div", { class: "endpoint", "data-endpoint": e.endpoint },
        el("span", {}, e.endpoint),
        el("span", { class: "badge state-" + state }, state)));
    }
    cards.push(card);
  }
  document.getElementById("upstreams").replaceChildren(...cards);
}

function drawConfig(c) {
  const hash = (c.source_sha256 || "").slice(0, 12) || "built-in";
  const bits = [`config ${hash}`, `generation ${c.generation}`, `loaded ${c.loaded_at}`];
  if (c.pending_restart && c.pending_restart.length) bits.push("pending restart: " + c.pending_restart.join(", "));
  document.getElementById("config").textContent = bits.join(" · ");
  const err = document.getElementById("reload-error");
  if (c.last_error) {
    const lines = Array.isArray(c.last_error.errors) ? c.last_error.errors.join("\n") : JSON.stringify(c.last_error);
    err.textContent = `last reload rejected (${c.last_error.at || ""}, ${c.last_error.trigger || ""}):\n` + lines;
    err.hidden = false;
  } else {
    err.hidden = true;
  }
}

function drawCache(c) {
  document.getElementById("cache").textContent =
    `${c.objects} objects · ${bytes(c.bytes)} of ${bytes(c.max_bytes)} · hit ratio ${pct(c.hit_ratio)} · ` +
    `${c.purged} purged · ${c.evictions} evicted`;
  const purges = (c.recent_purges || []).map((p) => {
    const [kind, value] = Object.entries(p.selector || {})[0] || ["?", ""];
    const what = (kind === "all" ? "all" : `${kind} ${value}`) + (p.from === "replica" ? " (from another replica)" : "");
    return el("li", { class: "purge", "data-kind": kind },
      el("span", { class: "meta" }, new Date(p.at).toLocaleTimeString() + " "),
      `${what}: ${p.purged} purged`);
  });
  if (!purges.length) purges.push(el("li", { class: "meta" }, "none since start"));
  document.getElementById("purges").replaceChildren(...purges);
}

function drawAdvice(a) {
  if (a.enabled === false) {
    document.getElementById("advice").replaceChildren(
      el("div", { class: "meta" }, "The advisor is off ([admin] advisor = false)."));
    return;
  }
  const items = (a.advice || []).map((x) => el("div", { class: "advice", "data-kind": x.kind },
    el("div", {}, el("span", { class: "kind" }, x.kind), x.summary),
    x.change ? el("pre", {}, x.change) : "",
    el("div", { class: "basis" }, (x.estimate && x.estimate.basis) || "")));
  if (!items.length) items.push(el("div", { class: "meta" },
    `No advice yet: each needs at least ${a.min_samples} observations in the last ${a.window_seconds / 60} minutes.`));
  document.getElementById("advice").replaceChildren(...items);
}

async function tick() {
  const parts = [
    ["/stats", drawRoutes], ["/breakers", drawUpstreams], ["/config", drawConfig],
    ["/cache", drawCache], ["/advice", drawAdvice],
  ];
  const results = await Promise.allSettled(parts.map(([p]) => get(p)));
  const failed = [];
  results.forEach((r, i) => (r.status === "fulfilled" ? parts[i][1](r.value) : failed.push(parts[i][0])));
  document.getElementById("updated").textContent =
    "updated " + new Date().toLocaleTimeString() + (failed.length ? " · failed: " + failed.join(", ") : "");
}

tick();
setInterval(tick, PERIOD_MS);
