// Builds dist/verify.html (the self-contained verifier page) and dist/verifier-inline.html (the
// same panel, style and script for the certificate to embed) from src/ with the pinned esbuild.
// Reproducible: the same lock file gives the same bytes. `node build.mjs --check` fails when
// the committed files differ from a fresh build.
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { build } from "esbuild";

const here = new URL(".", import.meta.url);
const read = (p) => readFileSync(new URL(p, here), "utf8");

const bundled = await build({
  entryPoints: [new URL("src/page.mjs", here).pathname], bundle: true, format: "iife", minify: true,
  write: false, target: "es2022", legalComments: "none", charset: "utf8",
});
// Inline in a <script>: a "</script" inside the code would end it early.
const script = bundled.outputFiles[0].text.replace(/<\/script/gi, "<\\/script");
const style = read("src/panel.css"), panel = read("src/panel.html");
const page = read("src/verifier.html").replace("/*EVLEDGER-VERIFIER-STYLE*/", () => style)
  .replace("<!--EVLEDGER-VERIFIER-PANEL-->", () => panel).replace("/*EVLEDGER-VERIFIER-SCRIPT*/", () => script);
const inline = `<style>${style}</style>\n${panel}<script>${script}</script>\n`;
const outputs = { "dist/verify.html": page, "dist/verifier-inline.html": inline };

if (process.argv.includes("--check")) {
  const stale = Object.entries(outputs).filter(([p, text]) => { try { return read(p) !== text; } catch { return true; } });
  if (stale.length) { console.error(`stale: ${stale.map(([p]) => p).join(", ")}: run make verifier-page`); process.exit(1); }
  console.log("the committed verifier page is what the sources build");
} else {
  mkdirSync(new URL("dist", here), { recursive: true });
  for (const [p, text] of Object.entries(outputs)) writeFileSync(new URL(p, here), text);
  console.log(`wrote ${Object.keys(outputs).join(", ")} (${page.length.toLocaleString()} characters)`);
}
