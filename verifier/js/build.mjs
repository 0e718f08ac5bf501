// Builds verifier/js/dist/verify.html (the self-contained verifier page) and
// proof_api/templates/verifier-panel.html (the same panel, style and script, which every
// certificate embeds) from src/ with the pinned esbuild. Reproducible: the same lock file gives
// the same bytes. `node build.mjs --check` fails when the committed files differ from a fresh build.
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = new URL(".", import.meta.url);
const read = (p) => readFileSync(new URL(p, here), "utf8");

const bundled = await build({
  entryPoints: [fileURLToPath(new URL("src/page.mjs", here))], bundle: true, format: "iife", minify: true,
  write: false, target: "es2022", legalComments: "none", charset: "utf8",
});
// Inline in a <script>: a "</script" inside the code would end it early, and "<script" or "<!--"
// would change how the page's readers (evledger_verify/certificate.py) scan it.
// esbuild writes "\x3c" in strings back as "<", so the "<" of those is escaped again here; they
// occur only inside string literals (checked: a string's \x3c is the same character).
const script = bundled.outputFiles[0].text.replace(/<\/script/gi, "<\\/script").replace(/<(script|!--)/gi, "\\x3c$1");
if (/<script|<!--/i.test(script)) throw new Error("the bundled script still holds <script or <!--");
const style = read("src/panel.css"), panel = read("src/panel.html");
// The page's Content-Security-Policy allows this one script, by its hash, and nothing else.
const scriptHash = `sha256-${createHash("sha256").update(script, "utf8").digest("base64")}`;
const page = read("src/verifier.html").replace("/*EVLEDGER-VERIFIER-STYLE*/", () => style)
  .replace("'sha256-EVLEDGER-VERIFIER-SCRIPT'", () => `'${scriptHash}'`)
  .replace("<!--EVLEDGER-VERIFIER-PANEL-->", () => panel).replace("/*EVLEDGER-VERIFIER-SCRIPT*/", () => script);
// The certificate (proof_api/certificate.py) embeds the panel; it is package data of proof_api.
const inline = `<style>${style}</style>\n${panel}<script>${script}</script>\n`;
const outputs = { "dist/verify.html": page, "../../proof_api/templates/verifier-panel.html": inline };

if (process.argv.includes("--check")) {
  const stale = Object.entries(outputs).filter(([p, text]) => { try { return read(p) !== text; } catch { return true; } });
  if (stale.length) { console.error(`stale: ${stale.map(([p]) => p).join(", ")}: run make verifier-page`); process.exit(1); }
  console.log("the committed verifier page is what the sources build");
} else {
  mkdirSync(new URL("dist", here), { recursive: true });
  for (const [p, text] of Object.entries(outputs)) writeFileSync(new URL(p, here), text);
  console.log(`wrote ${Object.keys(outputs).join(", ")} (${page.length.toLocaleString()} characters)`);
}
