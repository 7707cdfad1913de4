// headwater dashboard: polls /api/state every 2 s and redraws; no framework, no CDN.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const POLL_MS = 2000;

function el(tag, attrs, ...children) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function num(v) { return v === null || v === undefined ? "-" : Math.round(v).toLocaleString("en-US"); }
function ms(v) {
  if (v === null || v === undefined) return "-";
  return v >= 10000 ? (v / 1000).toFixed(1) + " s" : Math.round(v) + " ms";
}
function metric(name, value, text) {
  // every figure the browser test reads carries its raw value
  return el("span", {"data-metric": name, "data-value": value === null || value === undefined ? "" : String(value)},
    text === undefined ? num(value) : text);
}

function graph(g, stages) {
  const nodes = [["source", g.source], ["topic", g.topic], ...g.transforms.map((t, i) => ["transform" + i, t]),
    ...g.sinks.map((s, i) => ["sink" + i, s])];
  const w = 150, h = 34, gap = 34, width = nodes.length * (w + gap), height = 110;
  const svg = el("svg:svg", {width: width, height: height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": "pipeline graph"});
  const defs = el("svg:defs", {}, el("svg:marker", {id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
    markerWidth: 6, markerHeight: 6, orient: "auto"}, el("svg:path", {d: "M0,0 L10,5 L0,10 z", fill: "#5a7894"})));
  svg.append(defs);
  nodes.forEach(([kind, label], i) => {
    const x = i * (w + gap), y = 8;
    const stage = kind === "source" ? stages.ingest : kind.startsWith("sink") ? stages.process : null;
    const node = el("svg:g", {class: "node", "data-node": kind});
    node.append(el("svg:rect", {x: x, y: y, width: w, height: h, rx: 5}));
    node.append(el("svg:text", {x: x + 6, y: y + 14}, label.length > 24 ? label.slice(0, 23) + "…" : label));
    node.append(el("svg:text", {x: x + 6, y: y + 28, class: "muted"},
      kind === "topic" ? "Kafka" : stage ? stage.state : kind.replace(/\d+$/, "")));
    svg.append(node);
    if (i > 0) svg.append(el("svg:path", {class: "edge", d: `M${x - gap},${y + h / 2} L${x - 2},${y + h / 2}`}));
  });
  const dx = (w + gap), dy = 70;
  svg.append(el("svg:path", {class: "edge dlq", d: `M${dx + w / 2},${8 + h} L${dx + w / 2},${dy - 2}`}));
  const dlq = el("svg:g", {class: "node dlq", "data-node": "dead_letter"});
  dlq.append(el("svg:rect", {x: dx, y: dy, width: w, height: h - 6, rx: 5}));
  dlq.append(el("svg:text", {x: dx + 6, y: dy + 17}, "DLQ " + g.dead_letter));
  svg.append(dlq);
  return svg;
}

function chart(points, series, title) {
  const w = 320, h = 110, pad = 28;
  const svg = el("svg:svg", {width: w, height: h, class: "chart", role: "img", "aria-label": title});
  const ys = series.flatMap(s => points.map(s.value)).filter(v => v !== null && isFinite(v));
  const max = Math.max(1, ...ys);
  const t0 = points.length ? points[0].t : 0, t1 = points.length ? points[points.length - 1].t : 1;
  const x = t => pad + (w - pad - 4) * ((t - t0) / Math.max(1, t1 - t0));
  const y = v => h - 16 - (h - 26) * (v / max);
  svg.append(el("svg:text", {x: 2, y: 10}, num(max)));
  svg.append(el("svg:text", {x: 2, y: h - 4}, points.length ? `last ${Math.round((t1 - t0) / 60)} min` : "no data yet"));
  series.forEach(s => {
    const pts = points.map(p => [p.t, s.value(p)]).filter(([, v]) => v !== null && isFinite(v));
    if (pts.length > 1) {
      svg.append(el("svg:path", {class: "line", stroke: s.color,
        d: pts.map(([t, v], i) => `${i ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ")}));
    }
  });
  series.forEach((s, i) => svg.append(el("svg:text", {x: w - 110, y: 12 + i * 12, fill: s.color}, s.name)));
  return svg;
}

function rates(history, key) {
  const out = [];
  for (let i = 1; i < history.length; i++) {
    const dt = history[i].t - history[i - 1].t;
    out.push({t: history[i].t, v: dt > 0 ? Math.max(0, (history[i][key] - history[i - 1][key]) / dt) : null});
  }
  return out;
}

function stageCard(p, name, s) {
  const rows = [["state", el("span", {class: "state state-" + s.state.replace(" ", "-")},
                  metric(`${p}.${name}.state`, s.state, s.state))],
    [name === "ingest" ? "rows read" : "records consumed", metric(`${p}.${name}.records_in`, s.records_in)],
    [name === "ingest" ? "records produced" : "rows written", metric(`${p}.${name}.records_out`, s.records_out)],
    ["dead-lettered", metric(`${p}.${name}.dead_lettered`, s.dead_lettered)]];
  if (name === "process") {
    rows.push(["filtered", metric(`${p}.process.filtered`, s.filtered)]);
    rows.push(["lag", metric(`${p}.process.lag`, s.lag)]);
  }
  if (s.metrics_url) rows.push(["metrics", el("a", {href: s.metrics_url}, s.metrics_url)]);
  if (s.last_error) rows.push(["last error", s.last_error]);
  return el("div", {class: "card", "data-stage": name}, el("h3", {}, name),
    el("table", {}, ...rows.map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, v)))));
}

function latencyCard(p, stages) {
  const legs = {...(stages.ingest.latency || {}), ...(stages.process.latency || {})};
  const order = ["source_to_kafka", "kafka_to_batch", "batch_to_sink", "end_to_end"];
  const names = Object.keys(legs).sort((a, b) => order.indexOf(a.split(".")[0]) - order.indexOf(b.split(".")[0]));
  const t = el("table", {}, el("tr", {}, el("th", {}, "leg"), el("th", {}, "p50"), el("th", {}, "p95"),
    el("th", {}, "p99"), el("th", {}, "records")));
  for (const n of names) {
    const l = legs[n];
    t.append(el("tr", {}, el("td", {}, n), el("td", {}, metric(`${p}.latency.${n}.p50`, l.p50, ms(l.p50))),
      el("td", {}, metric(`${p}.latency.${n}.p95`, l.p95, ms(l.p95))),
      el("td", {}, metric(`${p}.latency.${n}.p99`, l.p99, ms(l.p99))), el("td", {}, num(l.count))));
  }
  return el("div", {class: "card"}, el("h3", {}, "latency per leg"), names.length ? t : el("span", {class: "muted"}, "no records yet"));
}

function deadLetterCard(p, v) {
  const reasons = {...v.stages.ingest.dead_letters, ...v.stages.process.dead_letters};
  const card = el("div", {class: "card"}, el("h3", {}, "dead letters by reason"));
  const t = el("table", {});
  for (const [r, n] of Object.entries(reasons)) {
    t.append(el("tr", {}, el("td", {}, r), el("td", {}, metric(`${p}.dead_letters.${r}`, n))));
    for (const s of (v.dead_letter_samples || {})[r] || []) {
      t.append(el("tr", {}, el("td", {colspan: 2}, el("span", {class: "sample"}, `${s.position}: ${s.message}`))));
    }
  }
  card.append(Object.keys(reasons).length ? t : el("span", {class: "muted"}, "none"));
  return card;
}

function expectationCard(p, v) {
  const rules = v.stages.process.expectations || {};
  const card = el("div", {class: "card"}, el("h3", {}, "expectations (records failed, by rule)"));
  const t = el("table", {});
  for (const [r, n] of Object.entries(rules)) t.append(el("tr", {}, el("td", {}, r), el("td", {}, metric(`${p}.expectations.${r}`, n))));
  card.append(Object.keys(rules).length ? t : el("span", {class: "muted"}, "no rules"));
  return card;
}

function freshnessCard(p, v) {
  const sinks = (v.graph && v.graph.sinks) || [v.stages.process.sink || "sink"];
  const t = el("table", {});
  for (const s of sinks) {
    t.append(el("tr", {}, el("td", {}, s),
      el("td", {}, metric(`${p}.freshness_s`, v.freshness_s, v.freshness_s === null ? "nothing written yet" : `${v.freshness_s} s ago`))));
  }
  return el("div", {class: "card"}, el("h3", {}, "sink freshness (last write)"), t);
}

function render(state) {
  const main = document.getElementById("pipelines");
  const sections = state.pipelines.map(v => {
    const p = v.name, h = v.history || [];
    const sec = el("section", {class: "pipeline", "data-pipeline": p}, el("h2", {}, p));
    if (v.graph) sec.append(el("div", {class: "graph"}, graph(v.graph, v.stages)));
    const grid = el("div", {class: "grid"}, stageCard(p, "ingest", v.stages.ingest), stageCard(p, "process", v.stages.process));
    const produced = rates(h, "produced"), written = rates(h, "written");
    grid.append(el("div", {class: "card"}, el("h3", {}, "throughput (records/s)"),
      chart(produced.map((r, i) => ({t: r.t, produced: r.v, written: (written[i] || {}).v})),
        [{name: "produced", color: "#0969da", value: q => q.produced}, {name: "written", color: "#1a7f37", value: q => q.written}],
        "throughput")));
    grid.append(el("div", {class: "card"}, el("h3", {}, "consumer lag (records)"),
      chart(h, [{name: "lag", color: "#9a6700", value: q => q.lag}], "lag")));
    grid.append(latencyCard(p, v.stages), deadLetterCard(p, v), expectationCard(p, v), freshnessCard(p, v));
    sec.append(grid);
    return sec;
  });
  main.replaceChildren(...sections);
}

async function poll() {
  const status = document.getElementById("status");
  try {
    const res = await fetch("/api/state", {cache: "no-store"});
    if (!res.ok) throw new Error("HTTP " + res.status);
    const state = await res.json();
    render(state);
    status.textContent = "updated " + new Date(state.generated_at * 1000).toLocaleTimeString();
    status.dataset.ready = "true";
    status.dataset.generatedAt = String(state.generated_at);
  } catch (e) {
    status.textContent = "dashboard server not answering (" + e.message + "); retrying";
  }
  setTimeout(poll, POLL_MS);
}

poll();
