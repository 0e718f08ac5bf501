// The verifier page: drop a bundle (or a certificate) and the file, or paste a hash; give the
// published keys and the witnesses' keys if you have them; each named check and the verdict. Works from file:// with no network (the chain check asks only the
// RPC URL given). The certificate embeds this same page code and reads its own bundle.
import { MAX_BUNDLE_BYTES, MAX_CERTIFICATE_BYTES, bundleTextOfCertificate, bundleTextOfFile, embeddedScripts, formatReport,
  keysOfText, loadBundle, loadWitnessPolicy, malformedReport, sm3OfBlob, verifyBundle, verifyFile } from "./verify.mjs";

const $ = (id) => document.getElementById(id);
// bundle: {text} to read, or {report} when a certificate held no readable bundle.
const state = { bundle: null, file: null, reading: Promise.resolve() };

function show(report) {
  const out = $("ev-report");
  out.textContent = "";
  for (const c of report.checks) {
    const li = document.createElement("li");
    li.className = c.ok === true ? "ok" : c.ok === false ? "bad" : "skip";
    li.textContent = `${c.ok === true ? "\u2714" : c.ok === false ? "\u2718" : "\u2013"} ${c.name.replace(/_/g, " ")}: ${c.detail}`;
    out.append(li);
  }
  const verdict = $("ev-verdict");
  verdict.className = report.verdict === 1 ? "v1" : "v2";
  verdict.textContent = `verdict ${report.verdict === 1 ? "\u2460" : "\u2461"}: ${report.verdict_text}`;
}

async function verifyNow() {
  await state.reading; // files chosen a moment ago are still being looked at
  if (state.bundle === null) { $("ev-status").textContent = "drop a proof bundle (or a certificate) first"; return; }
  // The witnesses' keys (one per line) and how many must have cosigned (empty: all of them),
  // refused as evledger-verify refuses --witness and --witness-threshold.
  let witnesses;
  try {
    const given = $("ev-witness-threshold").value.trim();
    if (given && (!/^[0-9]+$/.test(given) || BigInt(given) < 1n)) throw new Error(`witness threshold: must be a whole number of at least 1, not ${given}`);
    witnesses = loadWitnessPolicy(keysOfText($("ev-witnesses").value), given ? Number(given) : null, "witness keys", "witness threshold");
  } catch (e) {
    $("ev-status").textContent = e.message;
    return;
  }
  $("ev-status").textContent = "";
  const loaded = state.bundle.report ? state.bundle : loadBundle(state.bundle.text);
  if (loaded.report) { show(loaded.report); return; }
  let file = null;
  if (state.file) {
    const bar = $("ev-progress");
    bar.hidden = false;
    const sm3 = await sm3OfBlob(state.file, (done, total) => { bar.max = total || 1; bar.value = done; });
    file = { sm3, size: state.file.size };
  }
  const hash = $("ev-hash").value.trim() || null;
  const keys = keysOfText($("ev-keys").value);
  const report = await verifyBundle(loaded.bundle, {
    file, contentHash: hash, rpcUrl: $("ev-rpc").value.trim() || null,
    trustedKeys: keys.length ? keys : null, contract: $("ev-contract").value.trim() || null, witnesses,
  });
  show(report);
}

// The first byte after a BOM and blanks, looked for in the first 8 MiB (as the commands read a
// file whose start is blank on to the certificate limit).
const firstByte = async (f) => {
  for (let at = 0; at < Math.min(f.size, MAX_CERTIFICATE_BYTES); at += 65536) {
    const chunk = new Uint8Array(await f.slice(at, at + 65536).arrayBuffer());
    const start = at === 0 && chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf ? 3 : 0;
    const found = chunk.subarray(start).find((b) => ![0x20, 0x09, 0x0d, 0x0a].includes(b));
    if (found !== undefined) return found;
  }
  return undefined;
};

// Which of the files is the bundle, a certificate or the evidence, from their first bytes only:
// an evidence file of gigabytes is never read here (its SM3 is computed in chunks later).
async function take(files) {
  for (const f of files) {
    const first = await firstByte(f);
    // A JSON object naming the bundle format (its "/" may be written "\/") is the bundle; other JSON is evidence.
    if (first === 0x7b && (f.size > MAX_BUNDLE_BYTES
        || /"evledger-proof\\?\/[12]"/.test(new TextDecoder().decode(await f.slice(0, 65536).arrayBuffer())))) {
      // A bundle (one too large is read one byte past the limit, and refused as Python refuses it).
      state.bundle = { text: new Uint8Array(await f.slice(0, MAX_BUNDLE_BYTES + 1).arrayBuffer()) };
      $("ev-bundle-name").textContent = f.name;
      continue;
    }
    if (first === 0x3c && f.size <= MAX_CERTIFICATE_BYTES) {
      const bytes = new Uint8Array(await f.arrayBuffer());
      const text = new TextDecoder().decode(bytes);
      if (embeddedScripts(text).length) { // a certificate: the bundle it embeds
        state.bundle = bundleTextOfFile(bytes);
        $("ev-bundle-name").textContent = `${f.name} (certificate)`;
        continue;
      }
    }
    state.file = f;
    $("ev-file-name").textContent = `${f.name} (${f.size.toLocaleString()} bytes)`;
  }
  $("ev-status").textContent = "";
}

export function start() {
  // Inside a certificate: its own bundle, the one <script type="application/json" id="evledger-proof">,
  // counted in <template> contents too (the readers of the file's text see those).
  const scripts = (root) => [...root.querySelectorAll("script#evledger-proof")]
    .concat(...[...root.querySelectorAll("template")].map((t) => scripts(t.content)));
  const embedded = scripts(document).filter((e) => e.type === "application/json");
  if (embedded.length) {
    state.bundle = embedded.length === 1 ? { text: embedded[0].textContent } : { report: malformedReport(
      `the certificate holds no readable bundle: expected one embedded bundle, found ${embedded.length}`) };
    $("ev-bundle-name").textContent = "the bundle embedded in this certificate";
  }
  const drop = $("ev-drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  const chosen = (files) => { state.reading = take(files).catch((e) => { $("ev-status").textContent = String(e); }); };
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); chosen(e.dataTransfer.files); });
  $("ev-pick").addEventListener("change", (e) => chosen(e.target.files));
  $("ev-verify").addEventListener("click", () => verifyNow().catch((e) => { $("ev-status").textContent = String(e); }));
}

// The verifier's functions, for a console or a script (the tests run the corpus through them).
window.evledgerVerify = { loadBundle, verifyBundle, verifyFile, formatReport, bundleTextOfCertificate, bundleTextOfFile,
  keysOfText, loadWitnessPolicy, sm3OfBlob };

// In a certificate the panel comes before the embedded bundle: start once the page is parsed.
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
