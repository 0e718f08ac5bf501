"""The chain seam: write a checkpoint's (size, root) to the anchor contract, read it back, and
follow the transaction until it is buried deep enough.

`ChainBackend` is all the anchor worker uses, so a native FISCO BCOS or Fabric client can be a
new subclass without touching the worker. `Web3Chain` speaks Ethereum JSON-RPC through
web3.py: either the in-process EthereumTesterProvider (py-evm; its chain lives only as long as
the process) or any EVM endpoint (anvil, Hyperledger Besu, FISCO BCOS 3.x with [web3_rpc]).

On chain a ledger is keccak256 of its checkpoint origin (`ledger_key`), so two ledgers that
share a contract never collide and anyone holding a checkpoint can find its anchor. The key and
the getAnchor reader are evledger_verify/chain.py's, the ones the offline verifier uses.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from evledger_verify.chain import OnChainAnchor, get_anchor, ledger_key

log = logging.getLogger("evledger.chain")

ARTIFACT = Path(__file__).resolve().parent / "contracts" / "AnchorRegistry.json"


class ChainError(Exception):
    """Anything that went wrong talking to the chain."""


class ChainUnavailable(ChainError):
    """The endpoint is down, timing out or answering nonsense: try again later."""


class AnchorRejected(ChainError):
    """The contract refuses the anchor; `reason` is its revert reason."""

    def __init__(self, reason: str):
        super().__init__(f"anchor rejected by the contract: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class AnchorTx:
    tx_hash: str  # 0x-prefixed hex
    nonce: int
    sender: str


@dataclass(frozen=True)
class TxStatus:
    """`state` is "pending" (known, not mined), "mined", "reverted" or "missing" (the node
    knows nothing of it: dropped, or its block was reorganised away)."""

    state: str
    block_number: int | None = None
    block_hash: str | None = None
    gas_used: int | None = None
    reason: str | None = None


def load_artifact() -> dict:
    return json.loads(ARTIFACT.read_text())


class ChainBackend:
    chain_id: int
    contract_address: str
    description: str  # for logs: which chain this is, never a secret

    def submit_anchor(self, origin: str, size: int, root: bytes, before_send=None) -> AnchorTx:
        """Send anchor(origin, size, root). `before_send(tx)` is called with the transaction's
        hash before it leaves where the backend can know it (a locally signed transaction),
        else right after sending. Raises AnchorRejected when the contract would revert."""
        raise NotImplementedError

    def tx_status(self, tx_hash: str) -> TxStatus:
        raise NotImplementedError

    def head(self) -> int:
        raise NotImplementedError

    def block(self, number: int) -> tuple[str, int] | None:
        """(hash, timestamp) of the canonical block at `number`, None past the head."""
        raise NotImplementedError

    def read_anchor(self, origin: str, size: int) -> OnChainAnchor | None:
        raise NotImplementedError

    def latest_anchor(self, origin: str) -> OnChainAnchor | None:
        raise NotImplementedError

    def find_anchor_tx(self, origin: str, size: int) -> str | None:
        """The hash of the transaction that anchored (origin, size), from the contract's
        Anchored events: how a restarted worker finds a transaction it sent but never logged."""
        raise NotImplementedError


def _hex(value) -> str:
    text = value.hex() if isinstance(value, (bytes, bytearray)) else str(value)
    return text if text.startswith("0x") else "0x" + text


class Web3Chain(ChainBackend):
    def __init__(self, w3, contract_address: str, account=None, sender: str | None = None,
                 description: str = "", gas_limit: int | None = None):
        """`account`: an eth_account LocalAccount that signs (JSON-RPC endpoints); or `sender`:
        an address the node signs for (the in-process tester's unlocked accounts)."""
        from web3 import Web3

        self.w3 = w3
        self.contract_address = Web3.to_checksum_address(contract_address)
        self.contract = w3.eth.contract(address=self.contract_address, abi=load_artifact()["abi"])
        self.account = account
        self.sender = account.address if account is not None else Web3.to_checksum_address(sender)
        self.gas_limit = gas_limit  # a fixed limit (tests force out-of-gas with it); else estimated
        self.description = description
        self.expected_chain_id: int | None = None
        self._chain_id: int | None = None

    @property
    def chain_id(self) -> int:
        """Asked of the node on first use, so a worker can be built while its node is down."""
        if self._chain_id is None:
            chain_id = self._call(lambda: self.w3.eth.chain_id)
            if self.expected_chain_id is not None and chain_id != self.expected_chain_id:
                raise ChainError(f"{self.description} serves chain id {chain_id}, not the configured "
                                 f"{self.expected_chain_id}")
            self._chain_id = chain_id
        return self._chain_id

    # -- construction -------------------------------------------------------------------

    @classmethod
    def in_process(cls) -> "Web3Chain":
        """A fresh py-evm chain inside this process with the contract deployed on it."""
        from web3 import EthereumTesterProvider, Web3

        w3 = Web3(EthereumTesterProvider())
        sender = w3.eth.accounts[0]
        address = deploy_registry(w3, sender=sender)
        log.warning("anchoring to the in-process EthereumTesterProvider chain: it lives only as long as "
                    "this process, and its anchors prove nothing to anyone else")
        return cls(w3, address, sender=sender, description="in-process EthereumTesterProvider (py-evm, ephemeral)")

    @classmethod
    def from_rpc(cls, url: str, contract_address: str, private_key: str, chain_id: int | None = None,
                 timeout: float = 10.0) -> "Web3Chain":
        from eth_account import Account
        from web3 import HTTPProvider, Web3

        # No retries inside web3: the worker has its own backoff, and web3's (5 retries with
        # growing sleeps) turned one call to a hung node into a minute with the worker blocked.
        w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None))
        account = Account.from_key(private_key)
        chain = cls(w3, contract_address, account=account, description=f"JSON-RPC {url}")
        chain.expected_chain_id = chain_id
        return chain

    # -- plumbing -----------------------------------------------------------------------

    def _call(self, fn):
        """Run one JSON-RPC interaction, turning transport failures into ChainUnavailable."""
        from requests.exceptions import RequestException
        from web3.exceptions import TransactionNotFound, Web3Exception

        try:
            return fn()
        except (TransactionNotFound, *_revert_errors()):
            raise
        except (RequestException, ConnectionError, TimeoutError, OSError) as exc:
            raise ChainUnavailable(f"{self.description or 'chain'}: {type(exc).__name__}: {exc}") from None
        except Web3Exception as exc:
            raise ChainUnavailable(f"{self.description or 'chain'}: {exc}") from None

    # -- writing ------------------------------------------------------------------------

    def submit_anchor(self, origin: str, size: int, root: bytes, before_send=None) -> AnchorTx:
        fn = self.contract.functions.anchor(ledger_key(origin), size, root)
        try:
            # Simulating runs the call: a revert surfaces here, with its reason, before any gas is
            # spent (estimate_gas is skipped when a fixed limit is set, so the call is made anyway).
            self._call(lambda: fn.call({"from": self.sender}))
            gas = self.gas_limit or int(self._call(lambda: fn.estimate_gas({"from": self.sender})) * 1.25) + 10_000
        except _revert_errors() as exc:
            raise AnchorRejected(_reason(exc)) from None
        nonce = self._call(lambda: self.w3.eth.get_transaction_count(self.sender, "pending"))
        tx = {"from": self.sender, "nonce": nonce, "gas": gas, "chainId": self.chain_id}
        tx.update(self._fees())
        if self.account is None:
            sent = AnchorTx(_hex(self._call(lambda: fn.transact(tx))), nonce, self.sender)
            if before_send is not None:
                before_send(sent)
            return sent
        signed = self.account.sign_transaction(fn.build_transaction(tx))
        sent = AnchorTx(_hex(signed.hash), nonce, self.sender)
        if before_send is not None:
            before_send(sent)
        self._call(lambda: self.w3.eth.send_raw_transaction(signed.raw_transaction))
        return sent

    def _fees(self) -> dict:
        """EIP-1559 fees where the chain has a base fee, a legacy gas price elsewhere (FISCO
        BCOS and many consortium chains)."""
        base = self._call(lambda: self.w3.eth.get_block("latest")).get("baseFeePerGas")
        if base is None:
            return {"gasPrice": self._call(lambda: self.w3.eth.gas_price)}
        tip = 10**9
        return {"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip}

    # -- following ------------------------------------------------------------------------

    def tx_status(self, tx_hash: str) -> TxStatus:
        from web3.exceptions import TransactionNotFound

        try:
            receipt = self._call(lambda: self.w3.eth.get_transaction_receipt(tx_hash))
        except TransactionNotFound:
            receipt = None
        if receipt is None:
            try:
                self._call(lambda: self.w3.eth.get_transaction(tx_hash))
                return TxStatus("pending")
            except TransactionNotFound:
                return TxStatus("missing")
        number, block_hash = receipt["blockNumber"], _hex(receipt["blockHash"])
        if receipt["status"] == 1:
            return TxStatus("mined", number, block_hash, receipt["gasUsed"])
        return TxStatus("reverted", number, block_hash, receipt["gasUsed"], self._revert_reason(tx_hash, receipt))

    def _revert_reason(self, tx_hash: str, receipt) -> str:
        """Replay the reverted call at its block for the reason; out of gas has none."""
        tx = self._call(lambda: self.w3.eth.get_transaction(tx_hash))
        if receipt["gasUsed"] >= tx["gas"]:
            return f"out of gas (used all {tx['gas']:,} gas)"
        try:
            self._call(lambda: self.w3.eth.call({"from": tx["from"], "to": tx["to"], "data": tx["input"]},
                                                receipt["blockNumber"] - 1))
        except _revert_errors() as exc:
            return _reason(exc)
        except ChainError:
            pass
        return "reverted without a reason"

    def head(self) -> int:
        return self._call(lambda: self.w3.eth.block_number)

    def block(self, number: int) -> tuple[str, int] | None:
        from web3.exceptions import BlockNotFound

        try:
            blk = self._call(lambda: self.w3.eth.get_block(number))
        except BlockNotFound:
            return None
        return _hex(blk["hash"]), blk["timestamp"]

    # -- reading anchors ------------------------------------------------------------------

    def read_anchor(self, origin: str, size: int) -> OnChainAnchor | None:
        try:
            return self._call(lambda: get_anchor(self._eth_call, self.contract_address, ledger_key(origin), size))
        except ValueError as exc:  # an answer that is not getAnchor's (no contract at the address)
            raise ChainUnavailable(f"{self.description or 'chain'}: {exc}") from None

    def _eth_call(self, to: str, data: bytes) -> bytes:
        return bytes(self.w3.eth.call({"to": to, "data": "0x" + data.hex()}))

    def latest_anchor(self, origin: str) -> OnChainAnchor | None:
        size, root, number, timestamp = self._call(lambda: self.contract.functions.latest(ledger_key(origin)).call())
        if size == 0:
            return None
        return OnChainAnchor(size, bytes(root), number, timestamp)

    def find_anchor_tx(self, origin: str, size: int) -> str | None:
        event = self.contract.events.Anchored
        logs = self._call(lambda: event.get_logs(from_block=0,
                                                  argument_filters={"ledger": ledger_key(origin), "size": size}))
        return _hex(logs[-1]["transactionHash"]) if logs else None


def _revert_errors() -> tuple:
    """What a revert raises: web3's ContractLogicError over JSON-RPC; eth-tester's
    TransactionFailed with the in-process provider (same "execution reverted: ..." text)."""
    from web3.exceptions import ContractLogicError

    try:
        from eth_tester.exceptions import TransactionFailed
    except ImportError:
        return (ContractLogicError,)
    return (ContractLogicError, TransactionFailed)


def _reason(exc) -> str:
    """The revert reason text of a web3 ContractLogicError."""
    text = str(exc.args[0] if exc.args else exc)
    for prefix in ("execution reverted: ", "execution reverted:"):
        if text.startswith(prefix):
            return text[len(prefix):].strip()
    return text


def deploy_registry(w3, sender: str | None = None, account=None) -> str:
    """Deploy the AnchorRegistry from the committed artifact; its address."""
    artifact = load_artifact()
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    if account is None:
        tx_hash = factory.constructor().transact({"from": sender})
    else:
        tx = factory.constructor().build_transaction({
            "from": account.address, "nonce": w3.eth.get_transaction_count(account.address, "pending"),
            "chainId": w3.eth.chain_id})
        tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
    if receipt["status"] != 1:
        raise ChainError("deploying the AnchorRegistry contract failed")
    return receipt["contractAddress"]


def anchoring_key_from_env() -> str | None:
    """The anchoring account's private key: EVLEDGER_ANCHOR_KEY_FILE (a file holding the hex
    key, mode 0600) or EVLEDGER_ANCHOR_KEY. Never logged."""
    path = os.environ.get("EVLEDGER_ANCHOR_KEY_FILE")
    if path:
        st = os.stat(path)
        if st.st_mode & 0o077:
            raise ChainError(f"anchor key file {path} must be readable by its owner only (chmod 600)")
        return Path(path).read_text().strip()
    return os.environ.get("EVLEDGER_ANCHOR_KEY") or None
