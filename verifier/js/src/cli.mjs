// `node src/cli.mjs BUNDLE [--file F | --hash SM3] [--rpc URL] [--key VKEY]... [--key-file F]...
// [--contract ADDR]`: the JS verifier under Node, with evledger-verify's options, report and exit
// codes (0 for verdict 1, 1 for verdict 2, 2 for a usage error or a file that cannot be read).
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

import { formatReport, hex, keysOfText, parseVerifierKey, sm3, verifyFile } from "./verify.mjs";

function fail(message) {
  process.stderr.write(`evledger-verify.js: error: ${message}\n`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: { file: { type: "string" }, hash: { type: "string" }, rpc: { type: "string" }, contract: { type: "string" },
      key: { type: "string", multiple: true }, "key-file": { type: "string", multiple: true } },
  });
} catch (e) {
  fail(e.message);
}
const { values, positionals } = parsed;
if (positionals.length !== 1) fail("give one BUNDLE");
if (values.file !== undefined && values.hash !== undefined) fail("--file and --hash both name the evidence: give one");
if (values.contract !== undefined && !/^0x[0-9a-fA-F]{40}$/.test(values.contract)) fail(`--contract ${values.contract} is not an address`);
let text, file = null, keys = [...(values.key ?? [])];
try {
  text = new Uint8Array(readFileSync(positionals[0] === "-" ? 0 : positionals[0]));
  if (values.file !== undefined) {
    const bytes = new Uint8Array(readFileSync(values.file));
    file = { sm3: hex(await sm3(bytes)), size: bytes.length };
  }
  for (const path of values["key-file"] ?? []) {
    let keyText;
    try { keyText = new TextDecoder("utf-8", { fatal: true }).decode(readFileSync(path)); } catch (e) {
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
const report = await verifyFile(text, {
  file, contentHash: values.hash ?? null, rpcUrl: values.rpc ?? null, trustedKeys: keys.length ? keys : null,
  contract: values.contract ?? null,
});
console.log(formatReport(report));
process.exit(report.verdict === 1 ? 0 : 1);
