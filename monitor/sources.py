"""Where the monitor reads from: the ledger's API (checkpoint pages with their consistency
proofs, one checkpoint, a consistency proof) over one keep-alive HTTP connection, and the
chain's Anchored events over plain JSON-RPC, decoded by the offline verifier's reader
(evledger_verify.chain), the one copy of the contract's encoding."""
from __future__ import annotations

import time

import httpx
import orjson

from evledger_verify.chain import ANCHORED_EVENT, JsonRpc, RpcError, anchored_events, keccak256, ledger_key

# eth_getLogs ranges: many public and consortium nodes refuse more than 10,000 blocks a call.
LOG_RANGE_BLOCKS = 10_000


class SourceError(OSError):
    """The API or the chain could not be read (down, refused, or answered nonsense): retried in
    --follow, an error (not an alarm) in one-shot."""


def _json(answer: httpx.Response):
    """The answer's JSON, by orjson: it refuses nesting past 1,024 levels with an error, where
    the standard library's parser can overflow the C stack on a hostile answer."""
    return orjson.loads(answer.content)


class LedgerApi:
    """GET requests of one ledger's checkpoint routes, with an auditor key."""

    def __init__(self, base_url: str, ledger: str, api_key: str | None, timeout: float = 30.0):
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.base_url, self.ledger = base_url.rstrip("/"), ledger
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _get(self, path: str, params: dict | None = None, missing_ok: bool = False):
        url = f"/v1/ledgers/{self.ledger}{path}"
        try:
            answer = self.http.get(url, params=params)
        except httpx.HTTPError as exc:
            raise SourceError(f"cannot reach {self.base_url}: {type(exc).__name__}: {exc}") from None
        if answer.status_code == 404 and missing_ok:
            try:
                code = _json(answer)["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = None
            if code == "not_found":  # an unknown ledger or a wrong URL is an error, not a missing size
                return None
        if answer.status_code != 200:
            try:
                message = _json(answer)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = answer.text[:200]
            raise SourceError(f"GET {self.base_url}{url} answered {answer.status_code}: {message}")
        try:
            return _json(answer)
        except ValueError:  # not JSON, or nested deeper than any answer of ours
            raise SourceError(f"GET {self.base_url}{url} answered something that is not JSON it can read") from None

    def checkpoints(self, after: int, limit: int) -> dict:
        """A page of checkpoints of sizes over `after`, each with its consistency proof from the
        one before (a server without that option lists them without proofs)."""
        page = self._get("/checkpoints", {"after": after, "limit": limit, "consistency": "true"})
        if not isinstance(page, dict) or not isinstance(page.get("checkpoints"), list):
            raise SourceError(f"{self.base_url}: the checkpoint listing has no checkpoints list")
        return page

    def checkpoint(self, size: int) -> dict | None:
        """The checkpoint at `size`, None when the server has none."""
        return self._get(f"/checkpoints/{size}", missing_ok=True)

    def consistency(self, first: int, second: int) -> list[bytes]:
        answer = self._get("/consistency", {"first": first, "second": second})
        try:
            return [bytes.fromhex(p) for p in answer["proof"]]
        except (KeyError, TypeError, ValueError):
            raise SourceError(f"{self.base_url}: the consistency proof {first}..{second} is not a list of hex") from None


class ChainAnchors:
    """The Anchored events of one ledger in one registry contract, read with eth_getLogs."""

    def __init__(self, rpc_url: str, contract: str, origin: str, timeout: float = 10.0):
        self.rpc, self.contract = JsonRpc(rpc_url, timeout=timeout), contract
        self.topics = ["0x" + keccak256(ANCHORED_EVENT.encode()).hex(), "0x" + ledger_key(origin).hex()]
        self._block_times: dict[int, int] = {}

    def _call(self, method: str, params: list):
        try:
            return self.rpc.request(method, params)
        except RpcError as exc:
            raise SourceError(f"chain {self.rpc.url}: {exc}") from None

    def head(self) -> int:
        head = self._call("eth_blockNumber", [])
        try:
            return int(head, 16)
        except (TypeError, ValueError):
            raise SourceError(f"chain {self.rpc.url}: eth_blockNumber answered {str(head)[:80]!r}") from None

    def block_time(self, number: int) -> int:
        if number not in self._block_times:
            if len(self._block_times) > 4096:
                self._block_times.clear()
            try:
                self._block_times[number] = self.rpc.quantity(self.rpc.block(number), "timestamp")
            except RpcError as exc:
                raise SourceError(f"chain {self.rpc.url}: {exc}") from None
        return self._block_times[number]

    def anchors(self, first_block: int, last_block: int) -> list[tuple[int, str, int, int, str]]:
        """(size, root hex, block number, block time, tx hash) of each Anchored event of the
        ledger in blocks first_block..last_block."""
        found = []
        for start in range(first_block, last_block + 1, LOG_RANGE_BLOCKS):
            end = min(last_block, start + LOG_RANGE_BLOCKS - 1)
            logs = self._call("eth_getLogs", [{"address": self.contract, "topics": self.topics,
                                               "fromBlock": hex(start), "toBlock": hex(end)}])
            if not isinstance(logs, list):
                raise SourceError(f"chain {self.rpc.url}: eth_getLogs answered {str(logs)[:80]!r}")
            for log in logs:
                for _key, size, root, _anchorer in anchored_events({"logs": [log]}, self.contract):
                    try:
                        number = int(log["blockNumber"], 16)
                    except (KeyError, TypeError, ValueError):
                        raise SourceError(f"chain {self.rpc.url}: a log without a block number") from None
                    found.append((size, root, number, self.block_time(number), str(log.get("transactionHash"))))
        return found


class LedgerTiles:
    """The same questions as LedgerApi, answered from the ledger's static tiles (a URL prefix
    or a directory; docs/tiles.md): the latest checkpoint is the published one, a consistency
    proof is computed from tiles that hash to its signed root, and an older size's root is
    derived from them. A publication that does not match its own signed root is a read error
    (a broken mirror, not a second history); a signed tree that contradicts what was verified
    is an alarm, as from the API."""

    def __init__(self, location: str, ledger: str, trusted_keys: list[str]):
        from evledger_verify.tiles import fetcher, shown_url

        # base_url names it in messages: no user:password
        self.base_url, self.ledger, self.trusted_keys = shown_url(location), ledger, list(trusted_keys)
        try:
            self._fetch = fetcher(location)
        except ValueError as exc:  # TileError: neither a URL nor a directory
            raise SourceError(str(exc)) from None
        self.alg: str | None = None  # found on the first read (open_published)

    def close(self) -> None:
        pass

    def _latest(self):
        """(TileReader of the published tree, checked against its root; its note)."""
        from evledger_verify.tiles import TileError, open_published, read_published

        # Anyone who runs a mirror can publish a note: only one signed by a pinned key says
        # anything about the ledger (and can raise an alarm); another is a read error.
        try:
            published, note, _ = read_published(self._fetch, self.base_url, self.trusted_keys, "a pinned key")
            reader = open_published(self._fetch, published.size, published.root, self.alg)
        except TileError as exc:
            raise SourceError(f"{self.base_url}: {exc}") from None
        self.alg = reader.alg
        return reader, published, note

    def checkpoints(self, after: int, limit: int) -> dict:
        from evledger_verify.tiles import TileError

        reader, published, note = self._latest()
        page = {"hash_alg": self.alg, "checkpoints": []}
        if published.size > after:
            try:
                proof = reader.consistency_proof(after) if after else []
            except TileError as exc:
                raise SourceError(f"{self.base_url}: {exc}") from None
            # Tiles carry no sealing time: the time it was first seen stands in (no anchor delay is
            # judged from it: the command refuses --max-anchor-delay with --tiles).
            seen = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
            page["checkpoints"].append({"size": published.size, "root": published.root.hex(), "note": note,
                                        "sealed_at": seen, "consistency": {"first": after,
                                                                           "proof": [p.hex() for p in proof]}})
        return page

    def checkpoint(self, size: int) -> dict | None:
        """The root the published (signed, checked) tree gives for `size`; None past it."""
        from evledger_verify.tiles import TileError

        reader, published, note = self._latest()
        if size > published.size:
            # Not a vanished checkpoint: a mirror or a cache may lag (the checkpoint may be
            # cached for seconds); checked again on the next pass.
            raise SourceError(f"{self.base_url}: the published checkpoint (size {published.size}) is older than "
                              f"the one verified (size {size}): a lagging mirror, or a publication rolled back")
        try:
            root = reader.subtree_hash(0, size) if size else reader.root()
        except TileError as exc:
            raise SourceError(f"{self.base_url}: {exc}") from None
        return {"size": size, "root": root.hex(), "derived_from": {"size": published.size, "note": note}}

    def consistency(self, first: int, second: int) -> list[bytes]:
        raise SourceError("a tiles publication gives proofs with its checkpoint")  # never asked: see checkpoints
