// The evledger-proof/1 and /2 verifier in JavaScript: the same ten named checks and verdicts as
// verifier/evledger_verify/verify.py (docs/proof-bundle.md), for the browser page and Node.
// SM3 from hash-wasm, SM2 from sm-crypto-v2, SHA-256 and keccak from @noble/hashes: nobody
// here wrote them. Nothing throws on a malformed bundle: every problem is a failed check.
import { sha256 } from "@noble/hashes/sha2.js";
import { keccak_256 } from "@noble/hashes/sha3.js";
import { createSM3 } from "hash-wasm";
import { sm2 } from "sm-crypto-v2";

import { StrictJSONError, canonicalJson, isInt, loadsStrict } from "./strict-json.mjs";

export const BUNDLE_FORMAT_V1 = "evledger-proof/1";
export const BUNDLE_FORMAT = "evledger-proof/2"; // v1 and the list of the note's cosignatures
export const CHECK_NAMES = ["format", "leaf", "leaf_hash", "inclusion", "checkpoint", "witnesses", "file",
  "content_hash", "anchor", "anchor_on_chain"];
const MAX_COSIGNATURES = 32; // witness lines a v2 bundle lists
export const MAX_BUNDLE_BYTES = 1 << 20;
export const MAX_BUNDLE_DEPTH = 32;
const MAX_LEAF_DEPTH = 32;
const MAX_PATH = 64;
const TWO64 = 1n << 64n;
const EM_DASH = "\u2014";
const SIGNATURE_TYPE = new Uint8Array([0xff, 0x73, 0x6d, 0x32]); // 0xFF "sm2"
// 0xFF "sm2-cosignature/v1": a witness's key (evledger_verify/cosignature.py, docs/cosignature.md)
const COSIGNATURE_TYPE = Uint8Array.from([0xff, ...[..."sm2-cosignature/v1"].map((ch) => ch.charCodeAt(0))]);
const COSIGNATURE_BYTES = 4 + 8 + 64;
const MAX_TIMESTAMP = (1n << 63n) - 1n;
const SM2_P = BigInt("0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF");
const SM2_N = BigInt("0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123");
const SM2_B = BigInt("0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93");

class Failed extends Error {}
class NotChecked extends Error {}
// A note, a key or a cosignature that is malformed or does not verify (note.py's CheckpointError):
// each check says which link it was.
class CheckpointError extends Error {}

// --- bytes ---------------------------------------------------------------------------------------

const enc = new TextEncoder();
export const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const unhex = (h) => Uint8Array.from(h.match(/../g) || [], (x) => parseInt(x, 16));
const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
};
const equalBytes = (a, b) => a.length === b.length && a.every((x, k) => x === b[k]);
const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

function b64encode(bytes) {
  let out = "";
  for (let k = 0; k < bytes.length; k += 3) {
    const n = (bytes[k] << 16) | ((bytes[k + 1] ?? 0) << 8) | (bytes[k + 2] ?? 0);
    out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63] + (k + 1 < bytes.length ? B64[(n >> 6) & 63] : "=")
      + (k + 2 < bytes.length ? B64[n & 63] : "=");
  }
  return out;
}

function b64decode(text) {
  // Strict, as Python's b64decode(validate=True): the alphabet, padding only at the end, length % 4 == 0.
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) throw new Error("not base64");
  const body = text.replace(/=+$/, "");
  const out = [];
  let bits = 0, acc = 0;
  for (const c of body) {
    acc = (acc << 6) | B64.indexOf(c);
    bits += 6;
    if (bits >= 8) { bits -= 8; out.push((acc >> bits) & 0xff); }
  }
  return new Uint8Array(out);
}

export async function sm3(bytes) {
  const h = await createSM3();
  h.init();
  h.update(bytes);
  return h.digest("binary");
}

/** SM3 and size of an async iterable of byte chunks (a Node stream): {sm3, size}. */
export async function sm3OfChunks(chunks) {
  const h = await createSM3();
  h.init();
  let size = 0;
  for await (const chunk of chunks) {
    h.update(chunk);
    size += chunk.length;
  }
  return { sm3: hex(h.digest("binary")), size };
}

/** SM3 of a Blob/File read in chunks, `progress(done, total)` after each. */
export async function sm3OfBlob(blob, progress = () => {}, chunk = 4 << 20) {
  const h = await createSM3();
  h.init();
  for (let at = 0; at < blob.size; at += chunk) {
    h.update(new Uint8Array(await blob.slice(at, at + chunk).arrayBuffer()));
    progress(Math.min(at + chunk, blob.size), blob.size);
  }
  progress(blob.size, blob.size);
  return hex(h.digest("binary"));
}

const treeHash = (alg) => (alg === "sha256" ? async (b) => sha256(b) : sm3);
export const ledgerKey = (origin) => keccak_256(enc.encode(origin));

// --- check 1: the format ---------------------------------------------------------------------

const isText = (re) => (v) => typeof v === "string" && (re === undefined ? v !== "" : new RegExp(`^(?:${re})$`).test(v));
const isIntIn = (min) => (v) => typeof v !== "boolean" && isInt(v) && BigInt(v) >= BigInt(min) && BigInt(v) < TWO64;
const HEX64 = "[0-9a-f]{64}", HEX64_0X = "0x[0-9a-f]{64}", LEDGER_ID = "[a-z0-9][a-z0-9-]{0,62}";
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

const ANCHOR_FIELDS = {
  chain_id: [isIntIn(1), "a positive integer below 2**64"],
  contract: [isText("0x[0-9a-fA-F]{40}"), "0x and 40 hex digits"],
  ledger_key: [isText(HEX64_0X), "0x and 64 lower-case hex digits"],
  tx_hash: [isText(HEX64_0X), "0x and 64 lower-case hex digits"],
  block_number: [isIntIn(1), "a positive integer below 2**64"],
  block_hash: [isText(HEX64_0X), "0x and 64 lower-case hex digits"],
  block_time: [(v) => isIntIn(0)(v) && BigInt(v) <= 253402300799n, "Unix seconds from 0 to 253402300799 (9999-12-31T23:59:59Z)"],
};
const COSIGNATURE_FIELDS = {
  witness_key: [isText(), "a non-empty string"],
  timestamp: [(v) => isIntIn(1)(v) && BigInt(v) <= MAX_TIMESTAMP, "Unix seconds from 1 to 2**63-1"],
};
const BUNDLE_FIELDS = {
  format: [(v) => v === BUNDLE_FORMAT_V1 || v === BUNDLE_FORMAT, `'${BUNDLE_FORMAT_V1}' or '${BUNDLE_FORMAT}'`],
  ledger: [isText(LEDGER_ID), "a ledger id"],
  origin: [isText(), "a non-empty string"],
  hash_alg: [(v) => v === "sm3" || v === "sha256", '"sm3" or "sha256"'],
  leaf: {
    index: [isIntIn(0), "a non-negative integer below 2**64"],
    bytes_b64: [isText("[A-Za-z0-9+/]+={0,2}"), "base64 text"],
    hash: [isText(HEX64), "64 lower-case hex digits"],
  },
  inclusion: {
    tree_size: [isIntIn(1), "a positive integer below 2**64"],
    path: [(v) => Array.isArray(v) && v.length <= MAX_PATH && v.every(isText(HEX64)),
      `a list of at most ${MAX_PATH} hashes of 64 lower-case hex digits`],
  },
  checkpoint: {
    size: [isIntIn(1), "a positive integer below 2**64"],
    root: [isText(HEX64), "64 lower-case hex digits"],
    note: [isText(), "a non-empty string"],
    verifier_key: [isText(), "a non-empty string"],
  },
  anchor: [(v) => v === null || isObject(v), "an object or null"],
  record: [isObject, "an object"],
  issued_at: [isText("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}Z"), "a UTC time"],
};
const BUNDLE_V2_FIELDS = {
  ...BUNDLE_FIELDS,
  cosignatures: [(v) => Array.isArray(v) && v.length <= MAX_COSIGNATURES, `a list of at most ${MAX_COSIGNATURES} cosignatures`],
};

const short = (v) => {
  const t = typeof v === "bigint" ? v.toString() : JSON.stringify(v) ?? String(v);
  return t.length <= 80 ? t : `${t.slice(0, 77)}...`;
};

function shapeProblem(value, fields, where, version) {
  if (!isObject(value)) return `${where.replace(/\.$/, "") || "the bundle"} must be an object`;
  const missing = Object.keys(fields).filter((k) => !Object.hasOwn(value, k));
  if (missing.length) return `${where}${missing[0]} is missing`;
  const unknown = Object.keys(value).filter((k) => !Object.hasOwn(fields, k)).sort();
  if (unknown.length) return `${where}${unknown[0]} is not a field of ${version}`;
  for (const [key, rule] of Object.entries(fields)) {
    if (!Array.isArray(rule)) {
      const p = shapeProblem(value[key], rule, `${where}${key}.`, version);
      if (p) return p;
    } else if (!rule[0](value[key])) {
      return `${where}${key} must be ${rule[1]}, got ${short(value[key])}`;
    }
  }
  return null;
}

function checkFormat(b) {
  if (!isObject(b)) throw new Failed("the bundle must be a JSON object");
  const version = b.format;
  if (version !== BUNDLE_FORMAT_V1 && version !== BUNDLE_FORMAT) {
    throw new Failed(`format is ${short(version)}, not '${BUNDLE_FORMAT_V1}' or '${BUNDLE_FORMAT}': this verifier reads no other version`);
  }
  let problem = shapeProblem(b, version === BUNDLE_FORMAT ? BUNDLE_V2_FIELDS : BUNDLE_FIELDS, "", version);
  if (!problem && b.anchor !== null) problem = shapeProblem(b.anchor, ANCHOR_FIELDS, "anchor.", version);
  for (const [i, entry] of (!problem && version === BUNDLE_FORMAT ? b.cosignatures : []).entries()) {
    problem = problem || shapeProblem(entry, COSIGNATURE_FIELDS, `cosignatures[${i}].`, version);
  }
  if (problem) throw new Failed(problem);
  return `${version}, every field present and well-formed: record ${b.leaf.index} of ledger '${b.ledger}' (origin '${b.origin}', ${b.hash_alg})`;
}

// --- check 2: the leaf -----------------------------------------------------------------------

function leafBytes(b) {
  let raw;
  try { raw = b64decode(b.leaf.bytes_b64); } catch { throw new Failed("leaf.bytes_b64 is not base64"); }
  if (b64encode(raw) !== b.leaf.bytes_b64) throw new Failed("leaf.bytes_b64 is not canonical base64 (it re-encodes differently)");
  return raw;
}

function decodeLeaf(raw) {
  let event;
  try {
    event = loadsStrict(raw, { maxBytes: Infinity, maxDepth: MAX_LEAF_DEPTH });
  } catch (e) {
    throw new Failed(`the leaf bytes are not a canonical version-1 leaf (docs/leaf.md): leaf is not JSON: ${e.message}`);
  }
  const bad = (why) => new Failed(`the leaf bytes are not a canonical version-1 leaf (docs/leaf.md): ${why}`);
  if (!isObject(event)) throw bad("leaf is not a JSON object");
  if (event.v !== 1) throw bad(`leaf version ${short(event.v)} is not 1`);
  const keys = Object.keys(event);
  const wanted = ["ledger", "received_at", "record", "seq", "v"];
  if (keys.length !== wanted.length || !wanted.every((k) => Object.hasOwn(event, k))) throw bad("leaf keys differ from version 1");
  if (!isInt(event.seq) || event.seq < 0) throw bad("leaf seq must be a non-negative integer");
  if (!equalBytes(enc.encode(canonicalJson(event)), raw)) throw bad("leaf bytes are not canonical (key order, spacing, escapes or number form differ)");
  return event;
}

function checkLeaf(b) {
  const leaf = leafBytes(b);
  const event = decodeLeaf(leaf);
  if (BigInt(event.seq) !== BigInt(b.leaf.index)) throw new Failed(`the leaf is record ${event.seq} but leaf.index is ${b.leaf.index}`);
  if (event.ledger !== b.ledger) throw new Failed(`the leaf is of ledger '${event.ledger}', not the bundle's ledger '${b.ledger}'`);
  let same = false;
  try { same = equalBytes(enc.encode(canonicalJson(b.record)), leaf); } catch { same = false; }
  if (!same) throw new Failed("the bundle's record is not what the leaf commits to");
  return `a canonical v1 leaf of ${leaf.length} bytes: record ${event.seq} of ledger '${event.ledger}', received ${event.received_at}, equal to the bundle's record`;
}

// --- check 3: the leaf hash; check 4: the inclusion path (RFC 9162 §2.1.3.2) -------------------

async function checkLeafHash(b) {
  const computed = hex(await treeHash(b.hash_alg)(concat(new Uint8Array([0]), leafBytes(b))));
  if (computed !== b.leaf.hash) throw new Failed(`${b.hash_alg}(0x00 || leaf) is ${computed}, but leaf.hash is ${b.leaf.hash}`);
  return `${b.hash_alg}(0x00 || leaf) = ${computed} = leaf.hash`;
}

function inclusionProofLength(index, size) {
  const inner = (index ^ (size - 1n)).toString(2).replace(/^0+/, "").length;
  const border = (index >> BigInt(inner)).toString(2).split("").filter((c) => c === "1").length;
  return inner + border;
}

export async function verifyInclusion(alg, index, size, leafHash, proof, root) {
  const h = treeHash(alg);
  index = BigInt(index); size = BigInt(size);
  if (index >= size) throw new Failed(`index ${index} >= size ${size}`);
  const want = inclusionProofLength(index, size);
  if (proof.length !== want) throw new Failed(`wrong proof size: proof has ${proof.length} hashes, want ${want}`);
  let fn = index, sn = size - 1n, r = leafHash;
  for (const p of proof) {
    if (sn === 0n) throw new Failed("proof is longer than the path to the root");
    if ((fn & 1n) === 1n || fn === sn) {
      r = await h(concat(new Uint8Array([1]), p, r));
      while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      r = await h(concat(new Uint8Array([1]), r, p));
    }
    fn >>= 1n; sn >>= 1n;
  }
  if (sn !== 0n) throw new Failed("proof is shorter than the path to the root");
  if (!equalBytes(r, root)) throw new Failed(`root mismatch: computed ${hex(r)}, expected ${hex(root)}`);
}

async function checkInclusion(b) {
  const { index } = b.leaf, size = b.inclusion.tree_size, path = b.inclusion.path;
  try {
    await verifyInclusion(b.hash_alg, index, size, unhex(b.leaf.hash), path.map(unhex), unhex(b.checkpoint.root));
  } catch (e) {
    throw new Failed(`the path does not lead from leaf ${index} to checkpoint.root at tree size ${size}: ${e.message}`);
  }
  return `${path.length} hashes lead from leaf.hash at index ${index} to checkpoint.root ${b.checkpoint.root} at tree size ${size} (RFC 9162 §2.1.3.2)`;
}

// --- check 5: the SM2-signed checkpoint note (docs/checkpoint.md) --------------------------------

const keyId = (name, pub, keyType = SIGNATURE_TYPE) => sha256(concat(enc.encode(`${name}\n`), keyType, pub)).slice(0, 4);
// What Python's str.strip() takes off (str.isspace), as evledger_verify.note.parse_verifier_key strips a key.
const pyStrip = (s) => s.replace(/^[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g, "");

/** {name, kid, pub, canonical} of a verifier key of type `keyType` (the ledger's 0xFF "sm2" by
 * default; a witness's is 0xFF "sm2-cosignature/v1"), as evledger_verify.note.parse_verifier_key. */
export function parseVerifierKey(vkey, keyType = SIGNATURE_TYPE) {
  const text = pyStrip(vkey);
  const at1 = text.indexOf("+"), at2 = at1 < 0 ? -1 : text.indexOf("+", at1 + 1);
  if (at2 < 0) throw new CheckpointError("verifier key must be <name>+<key id hex>+<base64 key>");
  const name = text.slice(0, at1), kidHex = text.slice(at1 + 1, at2), b64 = text.slice(at2 + 1);
  let raw;
  if (!/^([0-9a-fA-F]{2})*$/.test(kidHex)) throw new CheckpointError("verifier key is not hex/base64");
  try { raw = b64decode(b64); } catch { throw new CheckpointError("verifier key is not hex/base64"); }
  if (raw.length !== keyType.length + 64 || !equalBytes(raw.slice(0, keyType.length), keyType)) {
    const what = keyType === SIGNATURE_TYPE ? "SM2" : "SM2 cosigning";
    const typeName = String.fromCharCode(...keyType.slice(1));
    throw new CheckpointError(`verifier key is not an ${what} key (type 0xFF '${typeName}', 64-byte point)`);
  }
  const pub = raw.slice(keyType.length);
  const kid = unhex(kidHex.toLowerCase());
  if (!equalBytes(keyId(name, pub, keyType), kid)) throw new CheckpointError("verifier key's key ID does not match its name and public key");
  return { name, kid, pub, canonical: `${name}+${hex(kid)}+${b64encode(raw)}` };
}

// "— <key name> <base64>", with the characters spelt out as in evledger_verify/note.py.
const SIGNATURE_LINE = new RegExp(`^${EM_DASH} ([^\\x00-\\x20\\x7f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]+) ([A-Za-z0-9+/=]+)$`, "u");

function parseNote(note) {
  const sep = note.lastIndexOf("\n\n");
  if (sep < 0) throw new CheckpointError("note has no blank line before its signatures");
  const body = note.slice(0, sep + 1), sigText = note.slice(sep + 2);
  if (!sigText.endsWith("\n")) throw new CheckpointError("note must end with a newline");
  const sigs = [];
  for (const line of sigText.slice(0, -1).split("\n")) {
    const m = SIGNATURE_LINE.exec(line);
    if (!m) throw new CheckpointError("malformed signature line");
    let blob;
    try { blob = b64decode(m[2]); } catch { throw new CheckpointError("signature is not base64"); }
    if (blob.length < 5) throw new CheckpointError("signature is too short");
    sigs.push({ name: m[1], kid: blob.slice(0, 4), sig: blob.slice(4) });
  }
  return { body, sigs };
}

function parseBody(body) {
  if (!body.endsWith("\n")) throw new CheckpointError("checkpoint body must end with a newline");
  const lines = body.slice(0, -1).split("\n");
  if (lines.length < 3) throw new CheckpointError("checkpoint body has too few lines");
  const [origin, sizeText, rootText, ...ext] = lines;
  if (!origin) throw new CheckpointError("checkpoint origin line is empty");
  if (!/^(0|[1-9][0-9]{0,19})$/.test(sizeText) || BigInt(sizeText) >= 2n ** 64n) {
    throw new CheckpointError(`checkpoint size ${pyRepr([...sizeText].slice(0, 30).join(""))} is not a decimal number below 2**64`);
  }
  let root;
  try { root = b64decode(rootText); } catch { throw new CheckpointError("checkpoint root is not base64"); }
  if (root.length !== 32) throw new CheckpointError("checkpoint root is not 32 bytes");
  if (ext.some((e) => !e)) throw new CheckpointError("checkpoint has an empty extension line");
  return { origin, size: BigInt(sizeText), root };
}

function onCurve(pub) {
  const x = BigInt(`0x${hex(pub.slice(0, 32))}`), y = BigInt(`0x${hex(pub.slice(32))}`);
  const mod = (v) => ((v % SM2_P) + SM2_P) % SM2_P;
  return x < SM2_P && y < SM2_P && mod(y * y - (x * x * x - 3n * x + SM2_B)) === 0n;
}

export function sm2Verify(pub, message, sig) {
  if (pub.length !== 64 || sig.length !== 64 || !onCurve(pub)) return false;
  const r = BigInt(`0x${hex(sig.slice(0, 32))}`), s = BigInt(`0x${hex(sig.slice(32))}`);
  if (!(r >= 1n && r < SM2_N && s >= 1n && s < SM2_N)) return false;
  try {
    // GB/T 32918.2 with SM3(Z_A || message), the default user ID 1234567812345678.
    return sm2.doVerifySignature(message, hex(sig), `04${hex(pub)}`, { hash: true, der: false });
  } catch {
    return false;
  }
}

/** Failed("checkpoint: ...") for what the note, the key or the signature got wrong. */
function asCheckpointFailure(check) {
  try {
    return check();
  } catch (e) {
    if (e instanceof CheckpointError) throw new Failed(`checkpoint: ${e.message}`);
    throw e;
  }
}

function checkCheckpoint(b, trustedKeys) {
  const cp = b.checkpoint, origin = b.origin;
  const { key, body, signed, sigs } = asCheckpointFailure(() => {
    const key = parseVerifierKey(cp.verifier_key);
    if (key.canonical !== cp.verifier_key) throw new Failed("checkpoint.verifier_key is not in canonical form (it re-encodes differently)");
    if (key.name !== origin) throw new Failed(`the verifier key is for '${key.name}', not the bundle's origin '${origin}'`);
    const { body, sigs } = parseNote(cp.note);
    const signed = parseBody(body);
    const matching = sigs.filter((s) => s.name === key.name && equalBytes(s.kid, key.kid));
    if (!matching.length) throw new CheckpointError(`note has no signature by key ${key.name} (${hex(key.kid)})`);
    // Counted before any SM2 check, as evledger_verify/note.py does: a note of thousands of lines
    // by the key must not cost thousands of verifications.
    if (matching.length > 1) throw new CheckpointError(`note has ${matching.length} signatures by key ${key.name} (${hex(key.kid)}), want exactly one`);
    if (!sm2Verify(key.pub, enc.encode(body), matching[0].sig)) throw new CheckpointError(`signature by ${key.name} (${hex(key.kid)}) does not verify`);
    return { key, body, signed, sigs };
  });
  const lines = sigs.map((s) => `${EM_DASH} ${s.name} ${b64encode(concat(s.kid, s.sig))}\n`).join("");
  if (cp.note !== `${body}\n${lines}`) throw new Failed("checkpoint.note is not in canonical form (its signature lines re-encode differently)");
  if (signed.origin !== origin) throw new Failed(`the note is for origin '${signed.origin}', not the bundle's origin '${origin}'`);
  if (signed.size !== BigInt(cp.size) || signed.size !== BigInt(b.inclusion.tree_size)) throw new Failed(`the note signs tree size ${signed.size}, but checkpoint.size is ${cp.size} and inclusion.tree_size is ${b.inclusion.tree_size}`);
  if (hex(signed.root) !== cp.root) throw new Failed(`the note signs root ${hex(signed.root)}, but checkpoint.root is ${cp.root}`);
  if (trustedKeys !== null && !trustedKeys.includes(cp.verifier_key)) throw new Failed(`the note is signed by key id ${hex(key.kid)}, which is not one of the ${trustedKeys.length} trusted key(s) given`);
  const whose = trustedKeys !== null ? "a trusted key (--key)" : "the bundle's own key (pass --key to pin it)";
  return `the note's SM2 signature by ${key.name} (key id ${hex(key.kid)}) verifies with ${whose}; it signs origin '${origin}', size ${signed.size}, root ${hex(signed.root)}`;
}

// --- check 6: the witnesses' cosignatures (evledger_verify/cosignature.py, docs/cosignature.md) --
// The C2SP tlog-cosignature v1 message signed with SM2 as the ledger signs its note:
//   "cosignature/v1\ntime <T>\n" <checkpoint body>; line: — <name> base64(key ID || T (u64 BE) || r || s).

/** A witness's verifier key, in canonical form: {name, kid, pub, canonical}. */
export function parseCosignerKey(vkey) {
  const key = parseVerifierKey(vkey, COSIGNATURE_TYPE);
  if (key.canonical !== vkey) throw new CheckpointError("witness key is not in canonical form (it re-encodes differently)");
  return key;
}

/** The timestamp (BigInt) of a valid cosignature (the bytes after the key ID) by witness `vkey` on `body`. */
function verifyCosignature(body, vkey, sig) {
  const key = parseCosignerKey(vkey);
  if (sig.length !== COSIGNATURE_BYTES - 4) throw new CheckpointError(`a cosignature is ${COSIGNATURE_BYTES} bytes with its key ID, got ${sig.length + 4}`);
  const timestamp = BigInt(`0x${hex(sig.slice(0, 8))}`);
  if (!(timestamp > 0n && timestamp <= MAX_TIMESTAMP)) throw new CheckpointError(`cosignature timestamp ${timestamp} is not between 1 and 2**63-1`);
  const message = concat(enc.encode(`cosignature/v1\ntime ${timestamp}\n`), enc.encode(body));
  if (!sm2Verify(key.pub, message, sig.slice(8))) throw new CheckpointError(`cosignature by ${key.name} (${hex(key.kid)}) does not verify`);
  return timestamp;
}

/** For each witness key, the timestamp of its one valid cosignature on the note, or the
 * CheckpointError saying why there is none; two lines by one key are refused before any SM2 check. */
function cosignaturesBy(note, vkeys) {
  const { body, sigs } = parseNote(note);
  const found = new Map();
  for (const vkey of vkeys) {
    const key = parseCosignerKey(vkey);
    const matching = sigs.filter((s) => s.name === key.name && equalBytes(s.kid, key.kid));
    if (!matching.length) found.set(vkey, new CheckpointError(`no cosignature by witness ${key.name} (${hex(key.kid)})`));
    else if (matching.length > 1) found.set(vkey, new CheckpointError(`${matching.length} cosignatures by witness ${key.name} (${hex(key.kid)}), want one`));
    else {
      try { found.set(vkey, verifyCosignature(body, vkey, matching[0].sig)); } catch (e) {
        if (!(e instanceof CheckpointError)) throw e;
        found.set(vkey, e);
      }
    }
  }
  return found;
}

/** The note's signature lines by names other than the bundle's origin (the ledger signs as its origin). */
function cosignatureLines(b) {
  let sigs;
  try { ({ sigs } = parseNote(b.checkpoint.note)); } catch (e) {
    if (e instanceof CheckpointError) throw new Failed(`the note cannot be read: ${e.message}`);
    throw e;
  }
  return sigs.filter((s) => s.name !== b.origin);
}

/**
 * Version 2: every cosignature line of the note is listed, in order, with its witness's key and
 * time, and verifies with that key. With a policy ({keys, threshold}, from loadWitnessPolicy):
 * enough of the keys given have cosigned, whatever the list says.
 */
function checkWitnesses(b, policy) {
  const lines = cosignatureLines(b);
  if (b.format === BUNDLE_FORMAT) {
    const listed = b.cosignatures;
    if (listed.length !== lines.length) throw new Failed(`cosignatures lists ${listed.length}, but the note has ${lines.length} cosignature line(s)`);
    const seen = new Set();
    for (const line of lines) {  // one line per witness key, as signed-note verifiers require
      const id = `${line.name} (${hex(line.kid)})`;
      if (seen.has(id)) throw new Failed(`the note has more than one cosignature line by ${id}`);
      seen.add(id);
    }
    const { body } = parseNote(b.checkpoint.note);
    for (const [i, line] of lines.entries()) {
      const entry = listed[i];
      let timestamp;
      try {
        const w = parseCosignerKey(entry.witness_key);
        if (w.name !== line.name || !equalBytes(w.kid, line.kid)) {
          throw new Failed(`cosignatures[${i}] is by ${w.name} (${hex(w.kid)}), but the note's line ${i + 1} after the ledger's is by ${line.name} (${hex(line.kid)})`);
        }
        timestamp = verifyCosignature(body, entry.witness_key, line.sig);
      } catch (e) {
        if (e instanceof CheckpointError) throw new Failed(`cosignatures[${i}]: ${e.message}`);
        throw e;
      }
      if (timestamp !== BigInt(entry.timestamp)) throw new Failed(`cosignatures[${i}].timestamp is ${entry.timestamp}, but the cosignature is timestamped ${timestamp}`);
    }
  }
  if (policy === null) {
    if (b.format === BUNDLE_FORMAT && lines.length) {
      return `${lines.length} cosignature(s) verify with the bundle's own witness keys (pass --witness to pin them): ${
        b.cosignatures.map((e) => `${e.witness_key.split("+")[0]} at ${utc(e.timestamp)}`).join(", ")}`;
    }
    throw new NotChecked(`no witness keys given (pass --witness)${lines.length ? "" : "; the note carries no cosignatures"}`);
  }
  const found = cosignaturesBy(b.checkpoint.note, policy.keys);
  const valid = [...found].filter(([, v]) => typeof v === "bigint");
  if (valid.length < policy.threshold) {
    const why = [...found.values()].filter((v) => typeof v !== "bigint").map((e) => e.message).join("; ");
    throw new Failed(`${valid.length} of the ${policy.keys.length} witness key(s) given cosigned this checkpoint, ${policy.threshold} required: ${why}`);
  }
  const who = valid.map(([vkey, ts]) => `${parseCosignerKey(vkey).name} at ${utc(ts)}`).join(", ");
  return `${valid.length} of the ${policy.keys.length} witness key(s) given cosigned this checkpoint (threshold ${policy.threshold}): ${who}`;
}

// --- checks 7 and 8: the file (its SM3, computed by the caller), or a hash given ---------------

function committedContentHash(b) {
  const contentHash = decodeLeaf(leafBytes(b)).record.content_hash;
  if (typeof contentHash !== "string") throw new Failed("the committed record has no content_hash");
  return contentHash.toLowerCase();
}

function checkFile(b, file) {
  if (file === null) throw new NotChecked("no file given (--file)");
  const want = committedContentHash(b);
  if (file.sm3 !== want) throw new Failed(`SM3 of the file (${file.size} bytes) is ${file.sm3}, but the record's content_hash is ${want}`);
  return `SM3 of the file (${file.size} bytes) = ${file.sm3} = the record's content_hash`;
}

function checkContentHash(b, given) {
  if (given === null) throw new NotChecked("no hash given (--hash)");
  const want = committedContentHash(b);
  if (typeof given !== "string" || !/^[0-9a-f]{64}$/.test(given.toLowerCase())) throw new Failed(`the given hash ${short(given)} is not 64 hex digits (an SM3 digest)`);
  if (given.toLowerCase() !== want) throw new Failed(`the given hash ${given.toLowerCase()} is not the record's content_hash ${want}`);
  return `the given hash = the record's content_hash ${want}`;
}

// --- checks 9 and 10: the anchor, and the anchor on chain (plain JSON-RPC) ----------------------

/**
 * Unix seconds as Python's time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds)) writes them;
 * past year 9999 (a cosignature's time may be up to 2**63-1) as the number, as verify.py does.
 */
function utc(seconds) {
  const t = BigInt(seconds); // t >= 0 here
  if (t > 253402300799n) return `Unix time ${t}`;
  return new Date(Number(t) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function checkAnchor(b, contract) {
  const anchor = b.anchor;
  if (anchor === null) throw new Failed("no anchor: the record is not proven to be in an anchored tree");
  const want = `0x${hex(ledgerKey(b.origin))}`;
  if (anchor.ledger_key !== want) throw new Failed(`anchor.ledger_key is ${anchor.ledger_key}, but keccak256 of the origin '${b.origin}' is ${want}`);
  if (contract !== null && anchor.contract.toLowerCase() !== contract.toLowerCase()) throw new Failed(`the anchor is in contract ${anchor.contract}, not the registry given (--contract ${contract})`);
  return `the bundle names its anchor: chain ${anchor.chain_id}, contract ${anchor.contract}${contract !== null ? " (the registry given with --contract)" : ""}, tx ${anchor.tx_hash} in block ${anchor.block_number} (${utc(anchor.block_time)}); ledger key keccak256('${b.origin}')`;
}

const ANCHORED_TOPIC = hex(keccak_256(enc.encode("Anchored(bytes32,uint64,bytes32,address)")));
const GET_ANCHOR_SELECTOR = hex(keccak_256(enc.encode("getAnchor(bytes32,uint64)")).slice(0, 4));

const MAX_RPC_RESPONSE_BYTES = 8 << 20;

/** A response's body, at most `cap` + 1 bytes read: an endless answer is cut, then refused. */
async function readCapped(reply, cap) {
  const parts = [];
  let size = 0;
  const reader = reply.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    size += value.length;
    if (size > cap) { await reader.cancel(); break; }
  }
  return concat(...parts);
}

async function rpcCall(given, method, params) {
  const url = given.replace(/^[\x00-\x20]+|[\x00-\x20]+$/g, ""); // as evledger_verify.chain.JsonRpc
  if (!/^https?:\/\//i.test(url)) throw new Error(`${url} is not an http:// or https:// URL`);
  const reply = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, redirect: "error",
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }), signal: AbortSignal.timeout(30000) });
  if (!reply.ok) throw new Error(`HTTP ${reply.status}`);
  const body = loadsStrict(await readCapped(reply, MAX_RPC_RESPONSE_BYTES), { maxBytes: MAX_RPC_RESPONSE_BYTES, maxDepth: 16 });
  if (!isObject(body) || (!Object.hasOwn(body, "result") && !Object.hasOwn(body, "error"))) throw new Error(`the answer to ${method} is not JSON-RPC`);
  if (body.error !== undefined && body.error !== null) throw new Error(`${method} failed: ${short(body.error?.message ?? body.error)}`);
  return body.result;
}

function quantity(what, v) {
  if (typeof v !== "string" || !/^0x[0-9a-fA-F]{1,16}$/.test(v)) throw new Error(`${what} answered ${short(v)}, not a hex uint64`);
  return BigInt(v);
}

async function checkAnchorOnChain(b, rpcUrl) {
  const anchor = b.anchor, size = BigInt(b.checkpoint.size);
  if (anchor === null) throw new NotChecked("there is no anchor to look up");
  if (!rpcUrl) throw new NotChecked("not checked on chain (pass --rpc)");
  const ask = async (what, call) => {
    try { return await call(); } catch (e) { throw new Failed(`could not read ${what} from ${rpcUrl}: ${e.message}`); }
  };
  const chainId = await ask("the chain id", async () => quantity("eth_chainId", await rpcCall(rpcUrl, "eth_chainId", [])));
  if (chainId !== BigInt(anchor.chain_id)) throw new Failed(`${rpcUrl} serves chain ${chainId}, but the anchor is on chain ${anchor.chain_id}`);
  const data = `0x${GET_ANCHOR_SELECTOR}${anchor.ledger_key.slice(2)}${size.toString(16).padStart(64, "0")}`;
  const result = await ask(`getAnchor at ${anchor.contract}`, async () => {
    const r = await rpcCall(rpcUrl, "eth_call", [{ to: anchor.contract, data }, "latest"]);
    if (typeof r !== "string" || !/^0x([0-9a-fA-F]{2})*$/.test(r)) throw new Error("eth_call answered no hex data");
    const words = r.slice(2).toLowerCase();
    if (words.length !== 192 || /[^0]/.test(words.slice(64, 112)) || /[^0]/.test(words.slice(128, 176))) throw new Error(`getAnchor answered ${words.length / 2} bytes that are not (bytes32, uint64, uint64)`);
    return { root: words.slice(0, 64), number: BigInt(`0x${words.slice(64, 128)}`), timestamp: BigInt(`0x${words.slice(128)}`) };
  });
  if (result.number === 0n) throw new Failed(`the contract holds no anchor of size ${size} for ledger key ${anchor.ledger_key}`);
  if (result.root !== b.checkpoint.root) throw new Failed(`the contract holds root ${result.root} for size ${size}, not checkpoint.root ${b.checkpoint.root}`);
  if (result.number !== BigInt(anchor.block_number) || result.timestamp !== BigInt(anchor.block_time)) throw new Failed(`the contract says block ${result.number} at ${result.timestamp}, but the bundle says block ${anchor.block_number} at ${anchor.block_time}`);
  const block = await ask(`block ${result.number}`, async () => {
    const found = await rpcCall(rpcUrl, "eth_getBlockByNumber", [`0x${result.number.toString(16)}`, false]);
    if (!isObject(found)) throw new Error(`the node has no block ${result.number}`);
    return found;
  });
  if (typeof block.hash !== "string" || block.hash.toLowerCase() !== anchor.block_hash) throw new Failed(`block ${result.number} is ${short(block.hash)}, not anchor.block_hash ${anchor.block_hash}`);
  const receipt = await ask(`the receipt of ${anchor.tx_hash}`, async () => {
    const found = await rpcCall(rpcUrl, "eth_getTransactionReceipt", [anchor.tx_hash]);
    if (!isObject(found)) throw new Error(`the node knows no transaction ${anchor.tx_hash} (or it is not mined)`);
    return found;
  });
  const mined = await ask(`the receipt of ${anchor.tx_hash}`, async () => [quantity("status", receipt.status), quantity("blockNumber", receipt.blockNumber)]);
  if (mined[0] !== 1n || mined[1] !== result.number || typeof receipt.to !== "string" || receipt.to.toLowerCase() !== anchor.contract.toLowerCase()) throw new Failed(`transaction ${anchor.tx_hash} is not a successful call of ${anchor.contract} in block ${result.number}`);
  const written = [];
  for (const log of Array.isArray(receipt.logs) ? receipt.logs : []) {
    if (!isObject(log)) continue;
    // As evledger_verify.chain.anchored_events: "0x" then hex (either case), "removed" absent or false.
    const hexOf = (v) => (typeof v === "string" && /^0x[0-9a-fA-F]*$/.test(v) ? v.toLowerCase() : null);
    const topics = Array.isArray(log.topics) ? log.topics.map(hexOf) : [];
    const logData = log.data === undefined || log.data === null ? "0x" : hexOf(log.data);
    if (typeof log.address !== "string" || log.address.toLowerCase() !== anchor.contract.toLowerCase() || (log.removed !== undefined && log.removed !== false
        && log.removed !== null) || topics.length !== 4 || topics.includes(null) || logData === null
        || !topics.every((t) => /^0x[0-9a-f]{64}$/.test(t)) || topics[0] !== `0x${ANCHORED_TOPIC}` || !/^0x[0-9a-f]{64}$/.test(logData)
        || /[^0]/.test(topics[3].slice(2, 26)) || /[^0]/.test(topics[2].slice(2, 50))) continue;
    written.push([topics[1], BigInt(topics[2]), logData.slice(2), `0x${topics[3].slice(26)}`]);
  }
  const matching = written.filter((e) => e[0] === anchor.ledger_key && e[1] === size && e[2] === b.checkpoint.root);
  if (!matching.length) {
    if (!written.length) throw new Failed(`transaction ${anchor.tx_hash} emitted no Anchored event from ${anchor.contract}`);
    throw new Failed(`transaction ${anchor.tx_hash} anchored another checkpoint`);
  }
  return `chain ${chainId} at ${rpcUrl}: getAnchor(${anchor.ledger_key}, ${size}) = root ${b.checkpoint.root}, block ${result.number} ${anchor.block_hash} (${utc(result.timestamp)}), written by tx ${anchor.tx_hash} (its Anchored event, from anchorer ${matching[0][3]})`;
}

// --- the verdict -------------------------------------------------------------------------------

async function run(name, check) {
  try {
    return { name, ok: true, detail: await check() };
  } catch (e) {
    if (e instanceof NotChecked) return { name, ok: null, detail: e.message };
    if (e instanceof Failed) return { name, ok: false, detail: e.message };
    return { name, ok: false, detail: `could not be checked: ${e?.name}: ${e?.message}` };
  }
}

function report(checks, keyPinned = false, contractPinned = false, witnessesPinned = false) {
  const failed = checks.filter((c) => c.ok === false).map((c) => c.name);
  const anchored = checks.some((c) => c.name === "anchor" && c.ok);
  if (!failed.length && anchored) {
    const onChain = checks.some((c) => c.name === "anchor_on_chain" && c.ok);
    const notes = onChain ? ["anchor on chain \u2714"] : ["the anchor itself was not checked on chain: pass --rpc"];
    if (witnessesPinned && checks.some((c) => c.name === "witnesses" && c.ok)) notes.push("cosigned by the witnesses given \u2714");
    if (!keyPinned && !(onChain && contractPinned)) {
      notes.push(onChain ? "neither the signing key nor the contract was pinned: pass --key, or --contract" : "the signing key was not pinned: pass --key");
    }
    return { verdict: 1, verdict_text: `the record is in the anchored tree, unaltered (${notes.join("; ")})`, checks };
  }
  return { verdict: 2, verdict_text: `the record is not proven to be in the anchored tree, or it was altered (failed: ${failed.join(", ")})`, checks };
}

export function malformedReport(problem) {
  return report([{ name: "format", ok: false, detail: problem },
    ...CHECK_NAMES.slice(1).map((name) => ({ name, ok: null, detail: "not checked: the bundle is malformed" }))]);
}

/** Read a bundle's text (bytes or string) as every verifier does, or a report saying why not. */
export function loadBundle(text) {
  try {
    return { bundle: loadsStrict(text, { maxBytes: MAX_BUNDLE_BYTES, maxDepth: MAX_BUNDLE_DEPTH }) };
  } catch (e) {
    if (e instanceof StrictJSONError) return { report: malformedReport(`the bundle cannot be read: ${e.message}`) };
    throw e;
  }
}

/**
 * Every check of one bundle. `file`: {sm3, size} of the evidence file (sm3OfBlob, or sm3 of its
 * bytes), `contentHash`: a hash given instead, `rpcUrl`, `trustedKeys` (published verifier
 * keys, or null), `contract` (the registry's published address, or null), `witnesses` (the
 * witnesses whose cosignatures are required, from loadWitnessPolicy, or null).
 */
export async function verifyBundle(bundle, { file = null, contentHash = null, rpcUrl = null, trustedKeys = null, contract = null,
  witnesses = null } = {}) {
  const first = await run("format", () => checkFormat(bundle));
  if (!first.ok) return malformedReport(first.detail);
  const b = bundle;
  return report([
    first,
    await run("leaf", () => checkLeaf(b)),
    await run("leaf_hash", () => checkLeafHash(b)),
    await run("inclusion", () => checkInclusion(b)),
    await run("checkpoint", () => checkCheckpoint(b, trustedKeys)),
    await run("witnesses", () => checkWitnesses(b, witnesses)),
    await run("file", () => checkFile(b, file)),
    await run("content_hash", () => checkContentHash(b, contentHash)),
    await run("anchor", () => checkAnchor(b, contract)),
    await run("anchor_on_chain", () => checkAnchorOnChain(b, rpcUrl)),
  ], trustedKeys !== null, contract !== null, witnesses !== null);
}

/** The verifier keys of a key file's text: one per line, # comments. */
// As evledger_verify.verify.key_lines: lines end at "\n" alone, and only " \t\r" are blank.
export const trimKey = (s) => s.replace(/^[ \t\r]+|[ \t\r]+$/g, "");

export function keysOfText(text) {
  return text.replace(/^\ufeff/, "").split("\n").map(trimKey).filter((l) => l && !l.startsWith("#"));
}

/** A string as Python's repr() writes one (for the messages that quote what was given). */
export function pyRepr(text) {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let out = "";
  for (const ch of text) {
    const n = ch.codePointAt(0);
    if (ch === "\\" || ch === quote) out += `\\${ch}`;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (n < 0x20 || (n >= 0x7f && n <= 0xa0) || n === 0xad) out += `\\x${n.toString(16).padStart(2, "0")}`;
    else out += ch; // other non-printable characters outside Latin-1 differ from Python's escapes; no key has them
  }
  return `${quote}${out}${quote}`;
}
const pyShort = (text) => { const r = pyRepr(text); return r.length <= 80 ? r : `${r.slice(0, 77)}...`; };

/**
 * The witness policy of the keys given (--witness) and the threshold (--witness-threshold, by
 * default all of them): {keys, threshold}, or null when no key was given. Throws an Error whose
 * message is evledger_verify.verify.load_witness_policy's for a key that is not a witness key
 * or a threshold that cannot be met.
 */
export function loadWitnessPolicy(keys, threshold = null, named = "--witness", thresholdNamed = "--witness-threshold") {
  const given = [];
  for (const raw of keys) {
    const key = trimKey(raw);
    try { parseCosignerKey(key); } catch (e) {
      if (!(e instanceof CheckpointError)) throw e;
      throw new Error(`${named}: ${pyShort(key)} is not a witness key: ${e.message}`);
    }
    if (!given.includes(key)) given.push(key); // one witness counts once, however often it is named
  }
  if (!given.length) {
    if (threshold !== null) throw new Error(`${thresholdNamed} needs the witness keys it counts (${named})`);
    return null;
  }
  if (threshold === null) threshold = given.length;
  const whole = (typeof threshold === "number" && Number.isInteger(threshold)) || typeof threshold === "bigint";
  if (!whole || threshold < 1 || threshold > given.length) {
    throw new Error(`${thresholdNamed} must be from 1 to the ${given.length} witness key(s) given, not ${threshold}`);
  }
  return { keys: given, threshold: Number(threshold) };
}

// Reading the bundle out of a certificate, as verifier/evledger_verify/certificate.py does: a
// linear scan for script elements that skips comments, reads quoted attributes (the first of
// two equal ones counts, entities decoded) and runs a script's text to the next "</script".
// \x3c, not a literal "<": this code is inlined into pages, where "<script" would be markup.
export const MAX_CERTIFICATE_BYTES = 8 << 20;
const MARKUP = /\x3c!--|\x3cscript(?=[\t\n\f\r />])/gi;
const TAG_REST = /(?:[^>"']|"[^"]*"|'[^']*')*>/y;
const ATTRIBUTE = /([^\t\n\f\r "'>/=]+)(?:[\t\n\f\r ]*=[\t\n\f\r ]*(?:"([^"]*)"|'([^']*)'|([^\t\n\f\r "'=<>`]+)))?/g;
const SCRIPT_END = /\x3c\/script/gi;
const COMMENT_END = />|->|[\s\S]*?--!?>/y;
// The named references that stand for printable ASCII (Python's html.unescape knows them all);
// any other reference gives a character outside ASCII, which equals nothing compared here.
const ASCII_ENTITIES = { quot: '"', QUOT: '"', amp: "&", AMP: "&", lt: "<", LT: "<", gt: ">", GT: ">", apos: "'",
  excl: "!", num: "#", dollar: "$", percnt: "%", lpar: "(", rpar: ")", ast: "*", midast: "*", plus: "+", comma: ",",
  period: ".", sol: "/", colon: ":", semi: ";", equals: "=", quest: "?", commat: "@", lsqb: "[", lbrack: "[",
  bsol: "\\", rsqb: "]", rbrack: "]", Hat: "^", lowbar: "_", UnderBar: "_", grave: "`", DiacriticalGrave: "`",
  lcub: "{", lbrace: "{", verbar: "|", vert: "|", VerticalLine: "|", rcub: "}", rbrace: "}", NewLine: "\n", Tab: "\t" };

function unescapeAttribute(value) {
  return value.replace(/&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[A-Za-z][A-Za-z0-9]*;?)/g, (whole, ref) => {
    if (ref[0] === "#") {
      const n = ref[1] === "x" || ref[1] === "X" ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      // As Python's html.unescape: NUL, surrogates and past U+10FFFF are U+FFFD, 0x80-0x9F windows-1252,
      // and the code points it drops (controls, DEL to 0x9F otherwise, noncharacters) are dropped;
      // anything outside ASCII stands as U+FFFD here, since only equality with ASCII names matters.
      if (n === 0x0d) return "\r";
      if (n === 0 || (n >= 0x80 && n <= 0x9f) || (n >= 0xd800 && n <= 0xdfff) || n > 0x10ffff || Number.isNaN(n)) return "\ufffd";
      if ((n >= 0x01 && n <= 0x08) || n === 0x0b || (n >= 0x0e && n <= 0x1f) || n === 0x7f
          || (n >= 0xfdd0 && n <= 0xfdef) || (n & 0xfffe) === 0xfffe) return "";
      return n < 0x80 ? String.fromCharCode(n) : "\ufffd";
    }
    const name = ref.replace(/;$/, "");
    if (ASCII_ENTITIES[name] !== undefined && (ref.endsWith(";") || ["amp", "AMP", "lt", "LT", "gt", "GT", "quot", "QUOT"].includes(name))) {
      return ASCII_ENTITIES[name];
    }
    return ref.endsWith(";") ? "\ufffd" : whole; // a reference to something outside ASCII, or plain text
  });
}

function attributes(text) {
  const found = {};
  for (const m of text.matchAll(ATTRIBUTE)) {
    const name = m[1].toLowerCase();
    if (!Object.hasOwn(found, name)) found[name] = unescapeAttribute(m[2] ?? m[3] ?? m[4] ?? "");
  }
  return found;
}

export function embeddedScripts(html, scriptId = "evledger-proof") {
  const found = [];
  let pos = 0;
  for (;;) {
    MARKUP.lastIndex = pos;
    const m = MARKUP.exec(html);
    if (m === null) break;
    const after = m.index + m[0].length;
    if (m[0] === "\x3c!--") { // where HTML's tokenizer ends it: "<!-->", "<!--->", or the first "-->" or "--!>"
      COMMENT_END.lastIndex = after;
      const end = COMMENT_END.exec(html);
      if (end === null) break;
      pos = after + end[0].length;
      continue;
    }
    TAG_REST.lastIndex = after;
    const tag = TAG_REST.exec(html);
    if (tag === null) break;
    const tagEnd = after + tag[0].length;
    SCRIPT_END.lastIndex = tagEnd;
    const close = SCRIPT_END.exec(html);
    const textEnd = close ? close.index : html.length;
    const attrs = attributes(html.slice(after, tagEnd - 1));
    if (attrs.id === scriptId && attrs.type === "application/json") found.push(html.slice(tagEnd, textEnd));
    pos = textEnd + 1;
  }
  return found;
}

/** The one embedded bundle's JSON text, or an Error. */
export function bundleTextOfCertificate(html) {
  const found = embeddedScripts(html);
  if (found.length !== 1) throw new Error(`expected one \x3cscript type="application/json" id="evledger-proof"> element, found ${found.length}`);
  return found[0];
}

/**
 * What to read as the bundle from a file's bytes: the bytes, or the bundle a certificate (HTML,
 * first non-blank byte "<") embeds, its text read as strict UTF-8. {text} or {report}.
 */
export function bundleTextOfFile(bytes) {
  const bom = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0; // allowed before HTML
  let k = bom;
  while (k < bytes.length && [0x20, 0x09, 0x0d, 0x0a].includes(bytes[k])) k++;
  if (bytes[k] !== 0x3c) return { text: bytes };
  const bad = (why) => ({ report: malformedReport(`the certificate holds no readable bundle: ${why}`) });
  if (bytes.length > MAX_CERTIFICATE_BYTES) return bad(`the certificate is over ${MAX_CERTIFICATE_BYTES} bytes, the limit`);
  let html;
  try { html = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes.subarray(bom)); } catch { return bad("the certificate is not UTF-8"); }
  try { return { text: bundleTextOfCertificate(html) }; } catch (e) { return bad(e.message); }
}

/** A bundle's or a certificate's bytes verified, as evledger-verify verifies a file: the report. */
export async function verifyFile(bytes, options = {}) {
  const input = bundleTextOfFile(bytes);
  const loaded = input.report ? input : loadBundle(input.text);
  return loaded.report ?? verifyBundle(loaded.bundle, options);
}

export function formatReport(r) {
  const marks = { true: "\u2714", false: "\u2718", null: "\u2013" };
  return [...r.checks.map((c) => `${marks[c.ok]} ${c.name.replace(/_/g, " ")}: ${c.detail}`),
    `verdict ${r.verdict === 1 ? "\u2460" : "\u2461"}: ${r.verdict_text}`].join("\n");
}
