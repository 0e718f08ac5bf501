// Reproducible build of AnchorRegistry.sol with the pinned solc-js (see package.json).
//
//   node build.mjs           compile and write AnchorRegistry.json
//   node build.mjs --check   compile and exit 1 if AnchorRegistry.json differs from the result
//
// The artifact is pretty-printed JSON with keys sorted at every level and a trailing newline,
// and the bytecode carries no metadata hash, so the same source and compiler always give
// byte-identical output.
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import solc from "solc";

const here = dirname(fileURLToPath(import.meta.url));
const CONTRACT = "AnchorRegistry";
const SOURCE_NAME = `${CONTRACT}.sol`;
const SOURCE_PATH = join(here, SOURCE_NAME);
const ARTIFACT_PATH = join(here, `${CONTRACT}.json`);

// evmVersion "paris": no PUSH0 (Shanghai), so FISCO BCOS, Besu and py-evm all run it.
// bytecodeHash "none": no IPFS/Swarm hash of the metadata appended to the bytecode.
const SETTINGS = {
  evmVersion: "paris",
  metadata: { bytecodeHash: "none" },
  optimizer: { enabled: true, runs: 200 },
};

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    const out = {};
    for (const key of Object.keys(value).sort()) out[key] = sortKeys(value[key]);
    return out;
  }
  return value;
}

function compile() {
  const sourceBytes = readFileSync(SOURCE_PATH);
  const input = {
    language: "Solidity",
    sources: { [SOURCE_NAME]: { content: sourceBytes.toString("utf8") } },
    settings: {
      ...SETTINGS,
      outputSelection: {
        [SOURCE_NAME]: {
          [CONTRACT]: ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "evm.deployedBytecode.opcodes"],
        },
      },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  let failed = false;
  for (const diag of output.errors ?? []) {
    console.error(diag.formattedMessage ?? diag.message);
    if (diag.severity === "error") failed = true;
  }
  if (failed) throw new Error("compilation failed");

  const contract = output.contracts?.[SOURCE_NAME]?.[CONTRACT];
  if (!contract) throw new Error(`no ${CONTRACT} in the compiler output`);
  if (/\bPUSH0\b/.test(contract.evm.deployedBytecode.opcodes)) {
    throw new Error("bytecode uses PUSH0; evmVersion must stay pre-Shanghai");
  }
  const artifact = {
    contractName: CONTRACT,
    abi: contract.abi,
    bytecode: "0x" + contract.evm.bytecode.object,
    deployedBytecode: "0x" + contract.evm.deployedBytecode.object,
    compiler: { version: solc.version(), settings: SETTINGS },
    sourceSha256: createHash("sha256").update(sourceBytes).digest("hex"),
  };
  return JSON.stringify(sortKeys(artifact), null, 2) + "\n";
}

const check = process.argv.includes("--check");
let fresh;
try {
  fresh = compile();
} catch (err) {
  console.error(`build.mjs: ${err.message}`);
  process.exit(2);
}

if (check) {
  const committed = existsSync(ARTIFACT_PATH) ? readFileSync(ARTIFACT_PATH, "utf8") : null;
  if (committed === fresh) {
    console.log(`${CONTRACT}.json is up to date (solc ${solc.version()})`);
    process.exit(0);
  }
  console.error(
    committed === null
      ? `${CONTRACT}.json is missing; run: node build.mjs`
      : `${CONTRACT}.json differs from a fresh compile with solc ${solc.version()}; run: node build.mjs`,
  );
  process.exit(1);
}

writeFileSync(ARTIFACT_PATH, fresh);
console.log(`wrote ${CONTRACT}.json (solc ${solc.version()}, ${(fresh.length / 1024).toFixed(1)} KiB)`);
