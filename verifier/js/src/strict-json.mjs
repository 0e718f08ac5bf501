// Strict JSON, as verifier/evledger_verify/strict_json.py reads it: one reading of a text or a
// refusal. Duplicate keys, NaN/Infinity, numbers with a fraction or exponent, -0 and lone
// surrogates are refused; integers are exact (BigInt beyond 2**53), so a leaf re-encodes to its
// own bytes. Iterative depth limit: a hostile text cannot overflow the stack.

export class StrictJSONError extends Error {}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);

export function loadsStrict(input, { maxBytes, maxDepth }) {
  let bytes = input;
  if (typeof input === "string") bytes = new TextEncoder().encode(input);
  if (bytes.length > maxBytes) throw new StrictJSONError(`the text is ${bytes.length} bytes, over the limit of ${maxBytes}`);
  let text;
  try {
    // ignoreBOM: keep a leading BOM, so that it is refused below as Python's json refuses it.
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new StrictJSONError("invalid UTF-8");
  }
  if (text.charCodeAt(0) === 0xfeff) throw new StrictJSONError("not JSON: a byte order mark");
  return parse(text, maxDepth);
}

function parse(text, maxDepth) {
  let i = 0;
  const fail = (what) => { throw new StrictJSONError(`not JSON: ${what} at character ${i}`); };
  const skip = () => { while (i < text.length && WS.has(text.charCodeAt(i))) i++; };
  let depth = 0;

  function value(path) {
    skip();
    const c = text[i];
    if (c === "{") return object(path);
    if (c === "[") return array(path);
    if (c === '"') return string(path);
    if (c === "-" || (c >= "0" && c <= "9")) return number(path);
    if (text.startsWith("true", i)) { i += 4; return true; }
    if (text.startsWith("false", i)) { i += 5; return false; }
    if (text.startsWith("null", i)) { i += 4; return null; }
    if (text.startsWith("NaN", i) || text.startsWith("Infinity", i)) throw new StrictJSONError(`NaN or Infinity is not JSON at ${path}`);
    return fail("unexpected character");
  }

  function enter() {
    depth += 1;
    if (depth > maxDepth) throw new StrictJSONError(`nesting deeper than ${maxDepth} levels (at character ${i})`);
  }

  function object(path) {
    enter();
    i++;
    const obj = Object.create(null);
    const keys = new Set();
    skip();
    if (text[i] === "}") { i++; depth--; return toPlain(obj); }
    for (;;) {
      skip();
      if (text[i] !== '"') fail("expected a key");
      const key = string(path);
      if (keys.has(key)) throw new StrictJSONError(`duplicate key ${JSON.stringify(key)} in object at ${path}`);
      keys.add(key);
      skip();
      if (text[i] !== ":") fail("expected ':'");
      i++;
      obj[key] = value(`${path}.${key}`);
      skip();
      if (text[i] === ",") { i++; continue; }
      if (text[i] === "}") { i++; depth--; return toPlain(obj); }
      fail("expected ',' or '}'");
    }
  }

  function array(path) {
    enter();
    i++;
    const out = [];
    skip();
    if (text[i] === "]") { i++; depth--; return out; }
    for (;;) {
      out.push(value(`${path}[${out.length}]`));
      skip();
      if (text[i] === ",") { i++; continue; }
      if (text[i] === "]") { i++; depth--; return out; }
      fail("expected ',' or ']'");
    }
  }

  function string(path) {
    i++;
    let out = "";
    for (;;) {
      if (i >= text.length) fail("unterminated string");
      const code = text.charCodeAt(i);
      if (code === 0x22) { i++; break; }
      if (code < 0x20) fail("control character in a string");
      if (code === 0x5c) {
        const e = text[i + 1];
        const simple = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" }[e];
        if (simple !== undefined) { out += simple; i += 2; continue; }
        if (e === "u" && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
          out += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16));
          i += 6;
          continue;
        }
        fail("invalid escape");
      }
      out += text[i];
      i++;
    }
    if (!out.isWellFormed()) throw new StrictJSONError(`lone surrogate in a string at ${path}`);
    return out;
  }

  function number(path) {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 5000));
    if (!m) fail("invalid number");
    i += m[0].length;
    if (m[2] !== undefined || m[3] !== undefined) {
      throw new StrictJSONError(`number ${m[0].slice(0, 40)} is not a plain integer (no fraction, no exponent) at ${path}`);
    }
    if (m[0] === "-0") throw new StrictJSONError(`number -0 is not a plain integer (write 0) at ${path}`);
    if (m[0].replace("-", "").length > 4300) throw new StrictJSONError(`integer too long at ${path}`);
    const big = BigInt(m[0]);
    return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
  }

  const result = value("$");
  skip();
  if (i !== text.length) fail("extra data after the value");
  return result;
}

function toPlain(obj) {
  // A plain object, keys in insertion order ("__proto__" kept as an own key).
  const out = {};
  for (const key of Object.keys(obj)) Object.defineProperty(out, key, { value: obj[key], enumerable: true, writable: true, configurable: true });
  return out;
}

export function isInt(v) {
  return (typeof v === "number" && Number.isInteger(v)) || typeof v === "bigint";
}

// Code point order (Python's str order, UTF-8 byte order), not UTF-16 code unit order.
function compareCodePoints(a, b) {
  const x = Array.from(a), y = Array.from(b);
  for (let k = 0; k < Math.min(x.length, y.length); k++) {
    const d = x[k].codePointAt(0) - y[k].codePointAt(0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

// The canonical form of verifier/evledger_verify/leaf.py's canonical_json: sorted keys, no
// whitespace, non-ASCII as UTF-8, `"`, `\` and control characters escaped.
export function canonicalJson(value) {
  if (value === null) return "null";
  if (value === true) return "true";
  if (value === false) return "false";
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "number") {
    if (!Number.isInteger(value)) throw new TypeError("not an integer");
    return String(value);
  }
  if (typeof value === "string") {
    if (!value.isWellFormed()) throw new TypeError("lone surrogate");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const keys = Object.keys(value).sort(compareCodePoints);
  return `{${keys.map((k) => `${canonicalJson(k)}:${canonicalJson(value[k])}`).join(",")}}`;
}
