"""The anchor registry as anyone reads it: the ledger key, the one reader of `getAnchor`, the
`Anchored` event, and a plain Ethereum JSON-RPC client (urllib) for the offline verifier.

The contract is anchor/contracts/AnchorRegistry.sol. `getAnchor` is encoded and decoded here
and only here; how the call travels is the caller's: the verifier and `evledger anchor verify`
send `eth_call` with `JsonRpc`, the anchor worker through its web3 connection. Only keccak comes
from outside the standard library (pycryptodome), and only when a key is computed.
"""
from __future__ import annotations

import functools
import http.client
import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from .strict_json import StrictJSONError, loads_strict

# getAnchor(bytes32 ledger, uint64 size) returns (bytes32 root, uint64 blockNumber, uint64 timestamp),
# all zeros when the contract holds no such anchor. A test holds this entry equal to the artifact's.
GET_ANCHOR_ABI = [{
    "type": "function", "name": "getAnchor", "stateMutability": "view",
    "inputs": [{"name": "ledger", "type": "bytes32", "internalType": "bytes32"},
               {"name": "size", "type": "uint64", "internalType": "uint64"}],
    "outputs": [{"name": "root", "type": "bytes32", "internalType": "bytes32"},
                {"name": "blockNumber", "type": "uint64", "internalType": "uint64"},
                {"name": "timestamp", "type": "uint64", "internalType": "uint64"}],
}]
# The event `anchor(ledger, size, root)` emits, and nothing else does: the proof that a
# transaction wrote this anchor. Topics: keccak256 of the signature, ledger, size, anchorer;
# data: root.
ANCHORED_EVENT = "Anchored(bytes32,uint64,bytes32,address)"
# A JSON-RPC answer the verifier reads: a receipt with a few logs is a few KB.
MAX_RPC_RESPONSE_BYTES = 8 << 20
MAX_RPC_DEPTH = 16
TOTAL_TIMEOUT_READS = 3  # a whole exchange may take three times the per-read timeout


def keccak256(data: bytes) -> bytes:
    from Crypto.Hash import keccak  # pycryptodome: only computing a key needs it

    return keccak.new(digest_bits=256, data=data).digest()


@functools.lru_cache(maxsize=4096)
def ledger_key(origin: str) -> bytes:
    """The contract's id for a ledger: keccak256 of its checkpoint origin (UTF-8)."""
    return keccak256(origin.encode())


@dataclass(frozen=True)
class OnChainAnchor:
    size: int
    root: bytes
    block_number: int
    timestamp: int


def _signature(entry: dict) -> str:
    return f"{entry['name']}({','.join(arg['type'] for arg in entry['inputs'])})"


def get_anchor_call(ledger: bytes, size: int) -> bytes:
    """The call data of getAnchor(ledger, size): selector, then each argument in a 32-byte word."""
    if len(ledger) != 32 or not 0 <= size < 2**64:
        raise ValueError("getAnchor takes a 32-byte ledger key and a uint64 size")
    return keccak256(_signature(GET_ANCHOR_ABI[0]).encode())[:4] + ledger + size.to_bytes(32, "big")


def decode_get_anchor(size: int, result: bytes) -> OnChainAnchor | None:
    """getAnchor's answer, None when the contract holds no such anchor (it answers zeros).
    ValueError for an answer that is not three words of the declared types."""
    if len(result) != 96 or any(result[32:56]) or any(result[64:88]):
        raise ValueError(f"getAnchor answered {len(result)} bytes that are not (bytes32, uint64, uint64)")
    number, timestamp = int.from_bytes(result[32:64], "big"), int.from_bytes(result[64:96], "big")
    if number == 0:
        return None
    return OnChainAnchor(size, bytes(result[:32]), number, timestamp)


def get_anchor(eth_call, contract: str, ledger: bytes, size: int) -> OnChainAnchor | None:
    """getAnchor(ledger, size) of the registry at `contract`, through `eth_call(to, data) -> bytes`
    (a JsonRpc's, or a web3 connection's). Errors of the call propagate, for each caller to word
    its own way."""
    return decode_get_anchor(size, eth_call(contract, get_anchor_call(ledger, size)))


def anchored_events(receipt: dict, contract: str) -> list[tuple[str, int, str, str]]:
    """(ledger key 0x-hex, size, root hex, anchorer) of each Anchored event that `contract`
    emitted in a transaction, from its JSON-RPC receipt (hex strings); logs of other contracts
    or events, or malformed, are skipped."""
    topic = keccak256(ANCHORED_EVENT.encode())
    found = []
    logs = receipt.get("logs")
    for log in logs if isinstance(logs, list) else []:
        if not isinstance(log, dict):
            continue
        if not isinstance(log.get("topics"), list) or not isinstance(log.get("address"), str):
            continue
        try:
            topics = [bytes.fromhex(_unhex(t)) for t in log["topics"]]
            data = bytes.fromhex(_unhex(log.get("data") or "0x"))
        except (TypeError, ValueError):
            continue
        removed = log.get("removed")  # absent, null or false; anything else is a removed log
        if (str(log.get("address")).lower() != contract.lower() or not (removed is None or removed is False)
                or len(topics) != 4
                or topics[0] != topic or len(data) != 32 or any(topics[3][:12]) or any(topics[2][:24])
                or any(len(t) != 32 for t in topics)):
            continue
        found.append(("0x" + topics[1].hex(), int.from_bytes(topics[2], "big"), data.hex(), "0x" + topics[3][12:].hex()))
    return found


_HEX = re.compile(r"0x[0-9a-fA-F]*")


def _unhex(text) -> str:
    if not isinstance(text, str) or not _HEX.fullmatch(text):
        raise ValueError(f"{str(text)[:80]!r} is not 0x-prefixed hex")
    return text[2:]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # the 30x is then raised as an HTTPError


# Plain handlers without redirects; the User-Agent names the verifier (some providers refuse urllib's).
_OPENER = urllib.request.build_opener(_NoRedirect)
_OPENER.addheaders = [("User-Agent", "evledger-verify")]


def _short(value, limit: int = 200) -> str:
    """A value from the endpoint as a message may show it: repr, cut to `limit` characters."""
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit - 3] + "..."


class RpcError(OSError):
    """The endpoint could not be reached, or answered with an error or with nonsense."""


class JsonRpc:
    """Ethereum JSON-RPC over HTTP(S) with the standard library: the few reads a verifier makes."""

    def __init__(self, url: str, timeout: float = 10.0):
        # Leading and trailing C0 controls and spaces are no part of a URL (WHATWG URL; the JS
        # verifier's fetch drops them too).
        self.url, self.timeout = url.strip("".join(map(chr, range(0x21)))), timeout
        self._id = 0

    def request(self, method: str, params: list):
        if urllib.parse.urlsplit(self.url).scheme not in ("http", "https"):  # urllib would open file:// too
            raise RpcError(f"{self.url!r} is not an http:// or https:// URL")
        self._id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params}).encode()
        req = urllib.request.Request(self.url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
        raw = self._exchange(req)
        try:
            reply = loads_strict(raw, max_bytes=MAX_RPC_RESPONSE_BYTES, max_depth=MAX_RPC_DEPTH)
        except StrictJSONError as exc:
            raise RpcError(f"the answer to {method} is not JSON-RPC: {exc}") from None
        if not isinstance(reply, dict) or ("result" not in reply and "error" not in reply):
            raise RpcError(f"the answer to {method} is not JSON-RPC")
        if reply.get("error") is not None:
            error = reply["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise RpcError(f"{method} failed: {_short(message)}")
        return reply["result"]

    def _exchange(self, req) -> bytes:
        """The answer's body, within `timeout` per read and TOTAL_TIMEOUT_READS times that in all:
        an endpoint that drips bytes, or sends header lines (or "100 Continue") without end, is
        given up on. The exchange runs in a daemon thread so that the deadline holds even where
        http.client would loop on."""
        outcome: list = []

        def exchange() -> None:
            try:
                with _OPENER.open(req, timeout=self.timeout) as answer:
                    outcome.append(answer.read(MAX_RPC_RESPONSE_BYTES + 1))
            except urllib.error.HTTPError as exc:  # a redirect too: a JSON-RPC POST has no reason to move
                outcome.append(RpcError(f"HTTP {exc.code} {_short(exc.reason)}"))
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
                # HTTPException: an endpoint that does not speak HTTP; ValueError: a URL urllib cannot use
                outcome.append(RpcError(f"{type(exc).__name__}: {_short(getattr(exc, 'reason', exc))}"))

        worker = threading.Thread(target=exchange, name="evledger-json-rpc", daemon=True)
        worker.start()
        worker.join(self.timeout * TOTAL_TIMEOUT_READS)
        if not outcome:
            raise RpcError(f"no complete answer within {self.timeout * TOTAL_TIMEOUT_READS:g} s")
        if isinstance(outcome[0], RpcError):
            raise outcome[0]
        return outcome[0]

    def _quantity(self, method: str, value) -> int:
        try:
            digits = _unhex(value)
        except (TypeError, ValueError):
            raise RpcError(f"{method} answered {_short(value)}, not a hex quantity") from None
        if not 0 < len(digits) <= 16:  # every quantity read here is a uint64
            raise RpcError(f"{method} answered {_short(value)}, not a hex uint64")
        return int(digits, 16)

    def chain_id(self) -> int:
        return self._quantity("eth_chainId", self.request("eth_chainId", []))

    def eth_call(self, to: str, data: bytes) -> bytes:
        result = self.request("eth_call", [{"to": to, "data": "0x" + data.hex()}, "latest"])
        try:
            return bytes.fromhex(_unhex(result))
        except (TypeError, ValueError):
            raise RpcError(f"eth_call answered {str(result)[:80]!r}, not hex data") from None

    def block(self, number: int) -> dict:
        found = self.request("eth_getBlockByNumber", [hex(number), False])
        if not isinstance(found, dict):
            raise RpcError(f"the node has no block {number}")
        return found

    def receipt(self, tx_hash: str) -> dict:
        found = self.request("eth_getTransactionReceipt", [tx_hash])
        if not isinstance(found, dict):
            raise RpcError(f"the node knows no transaction {tx_hash} (or it is not mined)")
        return found

    def quantity(self, record: dict, key: str) -> int:
        """A hex quantity field of a block or receipt, as an int."""
        return self._quantity(key, record.get(key))
