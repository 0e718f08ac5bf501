// `node src/corpus.mjs CASES.json`: every case of the tamper corpus through this verifier, one
// JSON line per case: {"case", "verdict", "failed"}. Offline (no RPC), as the corpus is.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";

import { hex, keysOfText, loadWitnessPolicy, sm3, verifyFile } from "./verify.mjs";

const casesPath = process.argv[2];
const root = dirname(casesPath);
const { cases } = JSON.parse(readFileSync(casesPath, "utf8"));
for (const c of cases) {
  // The file as it is, bundle or certificate, read as evledger-verify reads it.
  const file = c.file ? readFileSync(join(root, c.file)) : null;
  const report = await verifyFile(new Uint8Array(readFileSync(join(root, c.input))), {
    file: file ? { sm3: hex(await sm3(new Uint8Array(file))), size: file.length } : null,
    contentHash: c.hash ?? null, contract: c.contract ?? null,
    trustedKeys: c.key_file ? keysOfText(readFileSync(join(root, c.key_file), "utf8")) : c.keys ?? null,
    witnesses: loadWitnessPolicy(c.witnesses ?? [], c.witness_threshold ?? null),
  });
  console.log(JSON.stringify({ case: c.name, verdict: report.verdict, failed: report.checks.filter((x) => x.ok === false).map((x) => x.name) }));
}
