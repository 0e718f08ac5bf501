// `node src/cli.mjs BUNDLE [--file F | --hash SM3] [--rpc URL] [--key VKEY]... [--key-file F]...
// [--contract ADDR] [--witness VKEY]... [--witness-threshold K]`: the JS verifier under Node, with evledger-verify's options, report and exit
// codes (0 for verdict 1, 1 for verdict 2, 2 for a usage error or a file that cannot be read).
import { closeSync, createReadStream, openSync, readFileSync, readSync } from "node:fs";
import { parseArgs } from "node:util";

import { MAX_BUNDLE_BYTES, MAX_CERTIFICATE_BYTES, formatReport, keysOfText, loadWitnessPolicy, parseVerifierKey, pyRepr,
  sm3OfChunks, trimKey, verifyFile } from "./verify.mjs";

/** At most `limit` bytes of a file (0: stdin). */
function readPrefix(fd, limit) {
  const buf = Buffer.alloc(limit);
  let got = 0;
  for (;;) {
    let n;
    try { n = readSync(fd, buf, got, limit - got, null); } catch (e) { if (e.code === "EAGAIN") continue; if (e.code === "EOF") break; throw e; }
    if (n === 0) break;
    got += n;
    if (got === limit) break;
  }
  return new Uint8Array(buf.buffer, buf.byteOffset, got);
}

/** As evledger_verify.verify.read_bundle_file: a bundle's first 1 MiB + 1 bytes, read on to
 * 8 MiB + 1 for a certificate (or while all is blank): enough to refuse more. */
function readBundleFile(path) {
  const fd = path === "-" ? 0 : openSync(path, "r");
  try {
    const head = readPrefix(fd, MAX_BUNDLE_BYTES + 1);
    let k = head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf ? 3 : 0;
    while (k < head.length && [0x20, 0x09, 0x0d, 0x0a].includes(head[k])) k++;
    if (k < head.length && head[k] !== 0x3c) return head;
    const rest = readPrefix(fd, MAX_CERTIFICATE_BYTES - MAX_BUNDLE_BYTES);
    const all = new Uint8Array(head.length + rest.length);
    all.set(head);
    all.set(rest, head.length);
    return all;
  } finally {
    if (fd !== 0) closeSync(fd);
  }
}

function fail(message) {
  process.stderr.write(`evledger-verify.js: error: ${message}\n`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: { file: { type: "string" }, hash: { type: "string" }, rpc: { type: "string" }, contract: { type: "string" },
      key: { type: "string", multiple: true }, "key-file": { type: "string", multiple: true },
      witness: { type: "string", multiple: true }, "witness-threshold": { type: "string" } },
  });
} catch (e) {
  fail(e.message);
}
const { values, positionals } = parsed;
if (positionals.length !== 1) fail("give one BUNDLE");
if (values.file !== undefined && values.hash !== undefined) fail("--file and --hash both name the evidence: give one");
if (values.contract !== undefined && !/^0x[0-9a-fA-F]{40}$/.test(values.contract)) fail(`--contract ${values.contract} is not an address`);
// As evledger-verify's --witness-threshold: a whole number of at least 1, in ASCII digits.
let threshold = null;
if (values["witness-threshold"] !== undefined) {
  const given = values["witness-threshold"];
  if (!/^[0-9]{1,20}$/.test(given) || BigInt(given) < 1n) fail(`argument --witness-threshold: must be a whole number of at least 1, not ${pyRepr([...given].slice(0, 40).join(""))}`);
  threshold = BigInt(given) <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(given) : BigInt(given);
}
let text, file = null, keys = (values.key ?? []).map(trimKey);
try {
  text = readBundleFile(positionals[0]);
  if (values.file !== undefined) file = await sm3OfChunks(createReadStream(values.file)); // any size, in chunks
  for (const path of values["key-file"] ?? []) {
    let keyText;
    // ignoreBOM: keysOfText drops one BOM, as Python's utf-8-sig does; a second stays and is refused.
    try { keyText = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(readFileSync(path)); } catch (e) {
      if (e.code) throw e;
      fail(`${path} is not UTF-8 text`);
    }
    const found = keysOfText(keyText);
    if (!found.length) fail(`${path} holds no verifier keys`);
    keys.push(...found);
  }
} catch (e) {
  fail(e.message);
}
for (const key of keys) { // each a verifier key in canonical form, as evledger-verify checks them
  let parsed;
  try { parsed = parseVerifierKey(key); } catch (e) { fail(`${key.slice(0, 80)} is not a verifier key: ${e.message}`); }
  if (parsed.canonical !== key) fail(`${key.slice(0, 80)} is not a verifier key: not in canonical form`);
}
let witnesses;
try { witnesses = loadWitnessPolicy(values.witness ?? [], threshold); } catch (e) { fail(e.message); }
const report = await verifyFile(text, {
  file, contentHash: values.hash ?? null, rpcUrl: values.rpc ?? null, trustedKeys: keys.length ? keys : null,
  contract: values.contract ?? null, witnesses,
});
console.log(formatReport(report));
process.exit(report.verdict === 1 ? 0 : 1);
