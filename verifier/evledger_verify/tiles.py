"""C2SP tlog-tiles: the layout of a published ledger, and a client that computes proofs from it.

A ledger's publication directory (docs/tiles.md) is served unchanged by any static server:

    <prefix>/checkpoint                      the signed checkpoint note (mutable)
    <prefix>/tile/<L>/<N>[.p/<W>]            hash tiles: 256 hashes at tree height 8*L
    <prefix>/tile/entries/<N>[.p/<W>]        entry bundles: the leaves, each after a
                                             big-endian uint16 length

exactly as tlog-tiles says for a SHA-256 ledger, and with SM3 hashes for an SM3 ledger. The
client here fetches only what a proof needs, and trusts nothing it fetched until the result
checks out against the signed checkpoint: the partial tiles at the top are tied to the signed
root (`check_root`), each full tile to its hash in the tile above, each entry to its leaf
hash, so a wrong tile or entry can only make a read fail.
"""
from __future__ import annotations

import base64
import http.client
import re
import socket
import struct
import threading
import urllib.parse
import zlib
from pathlib import Path

from .note import Checkpoint, CheckpointError, parse_note, verify_checkpoint
from .proof import DIGEST_SIZE, consistency_path, hash_function, inclusion_path, split_point

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # hashes in a full tile, entries in a full bundle
FULL_TILE_BYTES = TILE_WIDTH * DIGEST_SIZE
MAX_LEVEL = 63
MAX_ENTRY_BYTES = 0xFFFF  # an entry's length is a uint16
CHECKPOINT_MAX_BYTES = 1 << 20
ENTRY_BUNDLE_MAX_BYTES = TILE_WIDTH * (2 + MAX_ENTRY_BYTES)

_INDEX = r"(?:x[0-9]{3}/){0,6}[0-9]{3}"  # up to 21 digits: any index below 2**64
_WIDTH = r"[1-9][0-9]?|1[0-9]{2}|2[0-4][0-9]|25[0-5]"
_LEVEL = r"[0-9]|[1-5][0-9]|6[0-3]"
# Every path a publication directory holds, and nothing else (a server checks paths with it).
PATH_RE = re.compile(rf"checkpoint|tile/(?P<level>{_LEVEL}|entries)/(?P<index>{_INDEX})(?:\.p/(?P<width>{_WIDTH}))?")


class TileError(ValueError):
    """Tiles that cannot be fetched, are malformed, or do not match the signed checkpoint."""


def index_path(index: int) -> str:
    """`index` in zero-padded 3-digit elements, all but the last with an `x`: 1234067 is
    `x001/x234/067`."""
    if index < 0:
        raise ValueError(f"tile index {index} is negative")
    digits = f"{index:d}"
    digits = digits.zfill(-(-len(digits) // 3) * 3)
    parts = [digits[i:i + 3] for i in range(0, len(digits), 3)]
    return "/".join(["x" + p for p in parts[:-1]] + parts[-1:])


def _suffix(width: int) -> str:
    if not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"tile width {width} is not between 1 and {TILE_WIDTH}")
    return "" if width == TILE_WIDTH else f".p/{width}"


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    if not 0 <= level <= MAX_LEVEL:
        raise ValueError(f"tile level {level} is not between 0 and {MAX_LEVEL}")
    return f"tile/{level}/{index_path(index)}{_suffix(width)}"


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    return f"tile/entries/{index_path(index)}{_suffix(width)}"


def parse_path(path: str) -> tuple[int | str, int, int] | None:
    """(level or "entries", index, width) of a tile path, ("checkpoint", 0, 0) for the
    checkpoint, None for anything that is not a publication path."""
    m = PATH_RE.fullmatch(path)
    if m is None:
        return None
    if path == "checkpoint":
        return "checkpoint", 0, 0
    level = m.group("level")
    index = int(m.group("index").replace("x", "").replace("/", ""))
    if index_path(index) != m.group("index"):  # "x000/001" spells 1 with a redundant element
        return None
    return (level if level == "entries" else int(level)), index, int(m.group("width") or TILE_WIDTH)


def tile_widths(size: int) -> list[tuple[int, int, int]]:
    """The tiles of a tree of `size` leaves, (level, index, width), bottom level first: full
    tiles, then the partial one of each level where it is not empty."""
    out = []
    level = 0
    while size >> (TILE_HEIGHT * level):
        count = size >> (TILE_HEIGHT * level)  # hashes at this tile level
        out += [(level, n, TILE_WIDTH) for n in range(count // TILE_WIDTH)]
        if count % TILE_WIDTH:
            out.append((level, count // TILE_WIDTH, count % TILE_WIDTH))
        level += 1
    return out


def encode_entry_bundle(entries) -> bytes:
    out = bytearray()
    for entry in entries:
        if len(entry) > MAX_ENTRY_BYTES:
            raise ValueError(f"an entry of {len(entry)} bytes does not fit a bundle's uint16 length")
        out += struct.pack(">H", len(entry)) + entry
    return bytes(out)


def decode_entry_bundle(data: bytes, count: int, where: str = "entry bundle") -> list[bytes]:
    entries, at = [], 0
    while at < len(data):
        if at + 2 > len(data):
            raise TileError(f"{where}: truncated length at byte {at}")
        (n,) = struct.unpack_from(">H", data, at)
        if at + 2 + n > len(data):
            raise TileError(f"{where}: entry {len(entries)} runs past the end")
        entries.append(data[at + 2:at + 2 + n])
        at += 2 + n
    if len(entries) != count:
        raise TileError(f"{where} has {len(entries)} entries, want {count}")
    return entries


# -- fetching -------------------------------------------------------------------------------

FETCH_DEADLINE = 60.0  # seconds for one file, connection and headers included, however slowly it trickles
MAX_REDIRECTS = 3


def _gunzip(data: bytes, limit: int, what: str) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)  # bounded: a small bomb cannot fill memory
    except zlib.error as exc:
        raise TileError(f"{what}: bad gzip body: {exc}") from None
    if not inflater.eof and len(out) <= limit:
        raise TileError(f"{what}: truncated gzip body")
    return out


def shown_url(url: str) -> str:
    """The URL for messages, without any user:password in it."""
    parts = urllib.parse.urlsplit(url)
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl() if "@" in parts.netloc else url


class _Get:
    """One GET with a deadline on the whole exchange: a watchdog shuts the socket when it
    passes, so no server can hold a client by trickling bytes or headers."""

    def __init__(self, url: str, timeout: float):
        self.url, self.timeout, self.cut = url, timeout, False

    def _cut(self, conn) -> None:
        self.cut = True
        sock = conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __call__(self, limit: int) -> tuple[int, str | None, str, bytes]:
        """(status, Location, Content-Encoding, body of at most `limit` + 1 bytes; empty unless
        the status is 200)."""
        watchdog = None
        try:
            parts = urllib.parse.urlsplit(self.url)
            if not parts.hostname:
                raise TileError(f"GET {shown_url(self.url)}: no host in the URL")
            make = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
            conn = make(parts.hostname, parts.port, timeout=self.timeout)  # a bad port: ValueError, below
            headers = {"Accept-Encoding": "gzip, identity", "User-Agent": "evledger-verify"}
            if parts.username is not None:
                credentials = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
                headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
            watchdog = threading.Timer(FETCH_DEADLINE, self._cut, (conn,))
            watchdog.daemon = True
            watchdog.start()
            conn.connect()
            if self.cut:  # the deadline passed while connecting: there was no socket to shut
                raise TileError(f"GET {shown_url(self.url)}: not received within {FETCH_DEADLINE:g} s")
            conn.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), headers=headers)
            response = conn.getresponse()
            chunks, total = [], 0
            while total <= limit and response.status == 200:
                piece = response.read1(min(65536, limit + 1 - total))
                if not piece:
                    break
                chunks.append(piece)
                total += len(piece)
            if self.cut:  # the shut socket reads as the end of the body: it is not
                raise TileError(f"GET {shown_url(self.url)}: not received within {FETCH_DEADLINE:g} s")
            if response.status == 200 and response.length and total <= limit:
                raise TileError(f"GET {shown_url(self.url)}: the body ends {response.length} bytes short of its "
                                f"Content-Length")
            return (response.status, response.getheader("Location"),
                    (response.getheader("Content-Encoding") or "identity").strip().lower(), b"".join(chunks))
        except TileError:
            raise
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if self.cut:
                raise TileError(f"GET {shown_url(self.url)}: not received within {FETCH_DEADLINE:g} s") from None
            raise TileError(f"GET {shown_url(self.url)}: {type(exc).__name__}: {exc}") from None
        finally:
            if watchdog is not None:
                watchdog.cancel()
                conn.close()


def fetcher(location: str, timeout: float = 10.0):
    """`fetch(path, limit) -> bytes | None` (None: not found) under a URL prefix (http/https)
    or a local publication directory, such as a copy a court was given. Anything that goes
    wrong reading it is a TileError."""
    parts = urllib.parse.urlsplit(location)
    if parts.scheme in ("http", "https"):
        if parts.query or parts.fragment or not parts.hostname:
            raise TileError(f"tiles URL {shown_url(location)!r} must be a prefix (scheme, host, path): no ?query or "
                            f"#fragment")
        base = location.rstrip("/") + "/"

        def fetch_url(path: str, limit: int) -> bytes | None:
            url = base + path
            # An incompressible tile grows a little in gzip: the body may be that much longer; what
            # it inflates to is held to the limit.
            for _ in range(MAX_REDIRECTS + 1):
                status, location_header, encoding, data = _Get(url, timeout)(limit + limit // 64 + 1024)
                if status in (301, 302, 303, 307, 308) and location_header:
                    try:
                        url = urllib.parse.urljoin(url, location_header)
                    except ValueError:
                        raise TileError(f"GET {shown_url(url)}: redirected to an unreadable Location") from None
                    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
                        raise TileError(f"GET {shown_url(base + path)}: redirected to {shown_url(url)[:200]!r}, not http(s)")
                    continue
                break
            else:
                raise TileError(f"GET {shown_url(base + path)}: more than {MAX_REDIRECTS} redirects")
            if status in (404, 410):
                return None
            if status != 200:
                raise TileError(f"GET {shown_url(url)}: HTTP {status}")
            if encoding == "gzip":
                data = _gunzip(data, limit, f"GET {shown_url(url)}")
            elif encoding != "identity":
                raise TileError(f"GET {shown_url(url)}: unexpected Content-Encoding {encoding[:40]!r}")
            if len(data) > limit:
                raise TileError(f"GET {shown_url(url)}: more than {limit} bytes")
            return data
        return fetch_url
    if "://" in location:
        raise TileError(f"tiles location {shown_url(location)!r}: only http(s) URLs and local directories are read")
    root = Path(location)
    if not root.is_dir():
        raise TileError(f"tiles location {location!r} is not a URL or a directory")

    def fetch_file(path: str, limit: int) -> bytes | None:
        try:
            with open(root / path, "rb") as f:
                data = f.read(limit + 1)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise TileError(f"{root / path}: {exc.strerror or exc}") from None
        if len(data) > limit:
            raise TileError(f"{root / path}: more than {limit} bytes")
        return data
    return fetch_file


def read_published(fetch, where: str, keys: list[str], whose: str = "a key given") -> tuple[Checkpoint, str, str]:
    """(checkpoint, note, the key that signed it) of the publication's `checkpoint`, its
    signature checked with the first of `keys` that verifies it; TileError when there is none,
    it is not a signed note, or none of the keys signed it (`whose` names them in the message)."""
    raw = fetch("checkpoint", CHECKPOINT_MAX_BYTES)
    if raw is None:
        raise TileError(f"{where} publishes no checkpoint")
    try:
        note = raw.decode("utf-8")
        parse_note(note)
    except (UnicodeDecodeError, CheckpointError) as exc:
        raise TileError(f"the checkpoint at {where} is not a signed note: {exc}") from None
    problems = []
    for vkey in keys:
        try:
            return verify_checkpoint(note, vkey), note, vkey
        except CheckpointError as exc:
            problems.append(str(exc))
    raise TileError(f"the checkpoint at {where} is not signed by {whose}: {'; '.join(problems) or 'no key given'}")


def open_published(fetch, size: int, root: bytes, alg: str | None = None) -> "TileReader":
    """A reader of the published tree of `size` leaves whose tiles hash to the signed `root`.
    Without `alg`, the ledger's hash is found: the one under which the tiles hash to the root
    and entry 0 to its leaf hash (at sizes 1, 256, 65536… the root is a stored hash, reached
    with no hashing at all, so the root alone cannot tell)."""
    problems = []
    for candidate in [alg] if alg else ["sm3", "sha256"]:
        reader = TileReader(fetch, candidate, size)
        try:
            reader.check_root(root)
            if alg is None and size:
                reader.entry(0)
        except TileError as exc:
            problems.append((candidate, str(exc)))
            continue
        return reader
    if len({p for _, p in problems}) == 1:  # the same for each hash: a file missing, unreadable
        raise TileError(problems[0][1])
    raise TileError("; ".join(f"as {a}: {p}" for a, p in problems))


class TileReader:
    """The tree of one published checkpoint (`size` leaves), read from its tiles on demand.
    Once `check_root` has tied the top tiles to the signed root, every file it reads is checked
    before use: a full tile against its hash in the tile above, an entry against its leaf hash."""

    def __init__(self, fetch, alg: str, size: int):
        self._fetch = fetch
        self.alg = alg
        self.size = size
        self._h = hash_function(alg)
        self._tiles: dict[tuple[int | str, int], bytes] = {}
        self._whole: set[tuple[int | str, int]] = set()  # the full file served for a partial one gone
        self._checked: set[tuple[int, int]] = set()  # full tiles that hash to their parent entry

    def _get(self, level: int | str, index: int, width: int, unit: int, limit: int) -> bytes:
        key = (level, index)
        data = self._tiles.get(key)
        if data is not None:
            return data
        make = entries_path if level == "entries" else (lambda i, w: tile_path(level, i, w))
        path = make(index, width)
        data = self._fetch(path, limit)
        if data is None and width < TILE_WIDTH:
            # A partial tile may be gone once its full tile exists (tlog-tiles allows it): the
            # full one starts with the same hashes (entries).
            path, width = make(index, TILE_WIDTH), TILE_WIDTH
            data = self._fetch(path, limit)
            if data is not None:
                self._whole.add(key)
        if data is None:
            raise TileError(f"{path} is not published")
        if unit and len(data) != width * unit:
            raise TileError(f"{path} is {len(data)} bytes, want {width * unit}")
        self._tiles[key] = data
        return data

    def _width(self, level: int, index: int) -> int:
        count = self.size >> (TILE_HEIGHT * level)
        return min(TILE_WIDTH, count - index * TILE_WIDTH)

    def node(self, height: int, index: int) -> bytes:
        """The hash of the complete subtree of 2**height leaves starting at leaf index << height."""
        level, below = divmod(height, TILE_HEIGHT)
        first = index << below  # its first hash at tile height level*8
        tile, at = divmod(first, TILE_WIDTH)
        if (index + 1) << height > self.size:
            raise TileError(f"node {height}/{index} is not complete in a tree of {self.size}")
        width = self._width(level, tile)
        data = self._get(level, tile, width, DIGEST_SIZE, FULL_TILE_BYTES)
        if width == TILE_WIDTH and (level, tile) not in self._checked:
            # A full tile hashes to its entry in the tile above, itself checked the same way up
            # to the partial tiles at the top, which check_root ties to the signed root.
            if self._fold(data) != self.node(height - below + TILE_HEIGHT, tile):
                raise TileError(f"{tile_path(level, tile)} does not hash to its entry in level {level + 1}'s tile")
            self._checked.add((level, tile))
        return self._fold(data[at * DIGEST_SIZE:(at + (1 << below)) * DIGEST_SIZE])

    def _fold(self, data: bytes) -> bytes:
        """The root of the perfect subtree over the hashes in `data` (a power of two of them)."""
        hashes = [data[i:i + DIGEST_SIZE] for i in range(0, len(data), DIGEST_SIZE)]
        while len(hashes) > 1:
            hashes = [self._h(b"\x01" + hashes[i] + hashes[i + 1]) for i in range(0, len(hashes), 2)]
        return hashes[0]

    def subtree_hash(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) of RFC 9162 §2.1.1 from complete subtrees."""
        n = hi - lo
        if n & (n - 1) == 0 and lo % n == 0:
            return self.node(n.bit_length() - 1, lo >> (n.bit_length() - 1))
        k = split_point(n)
        return self._h(b"\x01" + self.subtree_hash(lo, lo + k) + self.subtree_hash(lo + k, hi))

    def root(self) -> bytes:
        return self._h(b"") if self.size == 0 else self.subtree_hash(0, self.size)

    def check_root(self, root: bytes) -> None:
        """TileError unless the tiles hash to the signed checkpoint's `root`."""
        computed = self.root()
        if computed != root:
            raise TileError(f"the published tiles hash to {computed.hex()}, not to the signed checkpoint's "
                            f"root {root.hex()} (size {self.size}, {self.alg})")

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_path(index, self.size if size is None else size, self.subtree_hash)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        return consistency_path(size1, self.size if size2 is None else size2, self.subtree_hash)

    def entry(self, index: int) -> bytes:
        """The leaf bytes of entry `index`, from its entry bundle, checked against its leaf hash."""
        if not 0 <= index < self.size:
            raise TileError(f"entry {index} is not in a tree of {self.size}")
        return self._checked_entry(self._bundle(index // TILE_WIDTH), index)

    def entries(self, bundle: int) -> list[bytes]:
        """The leaves of an entry bundle, each checked against its leaf hash."""
        entries = self._bundle(bundle)
        return [self._checked_entry(entries, bundle * TILE_WIDTH + at) for at in range(len(entries))]

    def _bundle(self, bundle: int) -> list[bytes]:
        """The entries of bundle `bundle` in this tree (unchecked)."""
        width = self._width(0, bundle)
        data = self._get("entries", bundle, width, 0, ENTRY_BUNDLE_MAX_BYTES)
        whole = ("entries", bundle) in self._whole
        path = entries_path(bundle, TILE_WIDTH if whole else width)
        return decode_entry_bundle(data, TILE_WIDTH if whole else width, path)[:width]

    def _checked_entry(self, entries: list[bytes], index: int) -> bytes:
        entry = entries[index % TILE_WIDTH]
        if self.leaf_hash(entry) != self.node(0, index):
            raise TileError(f"entry {index} in {entries_path(index // TILE_WIDTH, len(entries))} does not hash to "
                            f"its level-0 tile hash")
        return entry

    def leaf_hash(self, entry: bytes) -> bytes:
        return self._h(b"\x00" + entry)
