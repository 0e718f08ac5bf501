// The API benchmark's non-Python load generator: autocannon, driven from a JSON spec file so
// that every request can differ (a fresh evidence id per batch, a random seq per proof).
//   node drive.js SPEC.json   -> "ready" once loaded, then one JSON line when done (on stdout):
// the caller times the run between the two lines, without Node's start-up and exit.
// SPEC: {url, connections, seconds, method, headers, path | paths, body_template, placeholder,
//        ok_status, recorded_re, items_per_request}
"use strict";
const fs = require("fs");
const autocannon = require("autocannon");

const spec = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const recorded = spec.recorded_re ? new RegExp(spec.recorded_re) : null;
let counter = 0;
let items = 0;
let bad = 0;
let bodyBytes = 0;
let bodies = 0;
let firstError = null;

function itemsOf(status, body) {
  if (status !== spec.ok_status) return 0;
  if (!recorded) return spec.items_per_request || 1;
  const m = recorded.exec(body.slice(0, 100));  // "recorded":N,"failed":0 or it is an error
  return m && m[2] === "0" ? Number(m[1]) : 0;
}

const request = {
  method: spec.method,
  path: spec.path || spec.paths[0],
  headers: spec.headers,
  setupRequest(req) {
    const i = counter++;
    if (spec.paths) req.path = spec.paths[i % spec.paths.length];
    if (spec.body_template) req.body = spec.body_template.split(spec.placeholder).join(String(i).padStart(8, "0"));
    return req;
  },
  onResponse(status, body) {
    const n = itemsOf(status, body);
    if (bodies < 1000) { bodyBytes += Buffer.byteLength(body); bodies++; }
    if (n) items += n;
    else { bad++; if (firstError === null) firstError = `${status} ${String(body).slice(0, 300)}`; }
  },
};

console.log("ready");
const cpu0 = process.cpuUsage();
autocannon({url: spec.url, connections: spec.connections, duration: spec.seconds, requests: [request],
            timeout: 120}, (err, result) => {
  if (err) { console.error(String(err)); process.exit(1); }
  const cpu = process.cpuUsage(cpu0);
  console.log(JSON.stringify({
    // autocannon counts a timeout in `errors` as well as in `timeouts`: errors alone, not both
    requests: result.requests.total, items, errors: bad + result.errors, seconds: result.duration,  // autocannon reports it in seconds
    cpu_seconds: (cpu.user + cpu.system) / 1e6,
    first_error: firstError || (result.errors ? `${result.errors} connection errors` : null),
    p50_ms: result.latency.p50, p99_ms: result.latency.p99, max_ms: result.latency.max,
    mean_body_bytes: bodies ? bodyBytes / bodies : 0, autocannon: require("autocannon/package.json").version,
  }));
});
