// `node src/corpus.mjs CASES.json`: every case of the tamper corpus through this verifier, one
// JSON line per case: {"case", "verdict", "failed"}. Offline (no RPC), as the corpus is.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";

import { bundleTextOfCertificate, loadBundle, sm3, hex, verifyBundle } from "./verify.mjs";

const casesPath = process.argv[2];
const root = dirname(casesPath);
const { cases } = JSON.parse(readFileSync(casesPath, "utf8"));
for (const c of cases) {
  const raw = readFileSync(join(root, c.input));
  const text = c.kind === "certificate" ? bundleTextOfCertificate(raw.toString("utf8")) : new Uint8Array(raw);
  const loaded = loadBundle(text);
  let report = loaded.report;
  if (!report) {
    const file = c.file ? readFileSync(join(root, c.file)) : null;
    report = await verifyBundle(loaded.bundle, {
      file: file ? { sm3: hex(await sm3(new Uint8Array(file))), size: file.length } : null,
      contentHash: c.hash ?? null, trustedKeys: c.keys ?? null, contract: c.contract ?? null,
    });
  }
  console.log(JSON.stringify({ case: c.name, verdict: report.verdict, failed: report.checks.filter((x) => x.ok === false).map((x) => x.name) }));
}
