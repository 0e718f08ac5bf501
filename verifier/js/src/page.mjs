// The verifier page: drop a bundle (or a certificate) and the file, or paste a hash; each named
// check and the verdict. Works from file:// with no network (the chain check asks only the
// RPC URL given). The certificate embeds this same page code and reads its own bundle.
import { bundleTextOfCertificate, formatReport, keysOfText, loadBundle, sm3OfBlob, verifyBundle } from "./verify.mjs";

const $ = (id) => document.getElementById(id);
const state = { bundleText: null, file: null, reading: Promise.resolve() };

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
  if (state.bundleText === null) { $("ev-status").textContent = "drop a proof bundle (or a certificate) first"; return; }
  const loaded = loadBundle(state.bundleText);
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
    trustedKeys: keys.length ? keys : null, contract: $("ev-contract").value.trim() || null,
  });
  show(report);
}

async function take(files) {
  for (const f of files) {
    const head = new TextDecoder().decode(await f.slice(0, 65536).arrayBuffer());
    if (/^\s*\{/.test(head) && /"evledger-proof\/1"/.test(head) && f.size <= (1 << 20) + 1) {
      state.bundleText = new Uint8Array(await f.arrayBuffer());
      $("ev-bundle-name").textContent = f.name;
    } else if (/\x3cscript[^>]+id="evledger-proof"/.test(await f.text().catch(() => ""))) {
      state.bundleText = bundleTextOfCertificate(await f.text());
      $("ev-bundle-name").textContent = `${f.name} (certificate)`;
    } else {
      state.file = f;
      $("ev-file-name").textContent = `${f.name} (${f.size.toLocaleString()} bytes)`;
    }
  }
  $("ev-status").textContent = "";
}

export function start() {
  const embedded = document.getElementById("evledger-proof");
  if (embedded) { // inside a certificate: its own bundle
    state.bundleText = embedded.textContent;
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
window.evledgerVerify = { loadBundle, verifyBundle, formatReport, bundleTextOfCertificate, keysOfText, sm3OfBlob };

// In a certificate the panel comes before the embedded bundle: start once the page is parsed.
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
