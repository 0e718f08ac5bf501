"""The AnchorRegistry contract, run on a real EVM (py-evm through web3's EthereumTesterProvider).

The tests load the committed artifact (anchor/contracts/AnchorRegistry.json), so they check the
bytecode that ships, not a fresh compile. `test_artifact_is_reproducible` recompiles with the
pinned solc-js when `make contract` has installed it.

Reverts: over JSON-RPC (anvil, Besu, FISCO BCOS) web3 raises ContractLogicError; the in-process
EthereumTesterProvider raises eth_tester's TransactionFailed instead. Both carry
"execution reverted: <reason>", and the tests accept either.
"""
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from eth_tester.exceptions import TransactionFailed
from web3 import EthereumTesterProvider, Web3
from web3.exceptions import ContractLogicError

CONTRACTS_DIR = Path(__file__).resolve().parent.parent / "anchor" / "contracts"
ARTIFACT_PATH = CONTRACTS_DIR / "AnchorRegistry.json"
SOURCE_PATH = CONTRACTS_DIR / "AnchorRegistry.sol"

REVERTS = (ContractLogicError, TransactionFailed)
ANCHOR_GAS_BOUND = 150_000


def ledger_id(name: str) -> bytes:
    return Web3.keccak(text=name)


def root_of(n: int) -> bytes:
    return hashlib.sha256(n.to_bytes(8, "big")).digest()


@pytest.fixture(scope="module")
def artifact():
    with ARTIFACT_PATH.open() as f:
        return json.load(f)


@pytest.fixture
def chain(artifact):
    """A fresh in-process chain with the registry deployed by accounts[0]."""
    w3 = Web3(EthereumTesterProvider())
    deployer = w3.eth.accounts[0]
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = w3.eth.wait_for_transaction_receipt(factory.constructor().transact({"from": deployer}))
    assert receipt.status == 1
    registry = w3.eth.contract(address=receipt.contractAddress, abi=artifact["abi"])
    return w3, registry


def anchor(w3, registry, ledger, size, root, sender=None):
    sender = sender or w3.eth.accounts[0]
    tx = registry.functions.anchor(ledger, size, root).transact({"from": sender})
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    assert receipt.status == 1
    return receipt


def assert_reverts(reason, fn, *args, sender):
    """The call reverts with `reason`, both simulated (eth_call) and sent as a transaction."""
    with pytest.raises(REVERTS) as simulated:
        fn(*args).call({"from": sender})
    assert reason in str(simulated.value)
    with pytest.raises(REVERTS) as sent:
        fn(*args).transact({"from": sender})
    assert reason in str(sent.value)


# --- the artifact --------------------------------------------------------------------------


def test_artifact_matches_source_and_settings(artifact):
    assert artifact["contractName"] == "AnchorRegistry"
    assert artifact["sourceSha256"] == hashlib.sha256(SOURCE_PATH.read_bytes()).hexdigest(), (
        "AnchorRegistry.sol changed since AnchorRegistry.json was built; run make contract"
    )
    settings = artifact["compiler"]["settings"]
    assert settings["evmVersion"] == "paris"
    assert settings["optimizer"] == {"enabled": True, "runs": 200}
    assert settings["metadata"] == {"bytecodeHash": "none"}
    assert artifact["compiler"]["version"].startswith("0.8.")
    assert artifact["bytecode"].startswith("0x") and artifact["deployedBytecode"].startswith("0x")


def _opcodes(code: bytes):
    i = 0
    while i < len(code):
        op = code[i]
        yield op
        i += 1 + (op - 0x5F if 0x60 <= op <= 0x7F else 0)


def test_deployed_bytecode_has_no_push0(artifact):
    """evmVersion paris: no PUSH0 (0x5f), so pre-Shanghai chains (FISCO BCOS, older Besu) run it."""
    code = bytes.fromhex(artifact["deployedBytecode"][2:])
    metadata_len = int.from_bytes(code[-2:], "big")  # CBOR metadata trailer, not code
    code = code[: -2 - metadata_len]
    assert 0x5F not in set(_opcodes(code))


def test_artifact_is_reproducible():
    if not (CONTRACTS_DIR / "node_modules" / "solc").is_dir():
        pytest.skip("solc-js is not installed in anchor/contracts/node_modules; run make contract")
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH; run make contract on a machine with Node.js")
    proc = subprocess.run(
        [node, "build.mjs", "--check"], cwd=CONTRACTS_DIR, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- the contract --------------------------------------------------------------------------


def test_deployer_is_admin_and_anchorer(chain):
    w3, registry = chain
    deployer, other = w3.eth.accounts[0], w3.eth.accounts[1]
    assert registry.functions.admin().call() == deployer
    assert registry.functions.isAnchorer(deployer).call() is True
    assert registry.functions.isAnchorer(other).call() is False


def test_empty_ledger_reads_zeros(chain):
    _, registry = chain
    ledger = ledger_id("nobody")
    assert registry.functions.latest(ledger).call() == [0, b"\0" * 32, 0, 0]
    assert registry.functions.getAnchor(ledger, 1).call() == [b"\0" * 32, 0, 0]


def test_anchor_and_read_back(chain):
    w3, registry = chain
    ledger, root = ledger_id("broker-a"), root_of(1)
    receipt = anchor(w3, registry, ledger, 1000, root)
    block = w3.eth.get_block(receipt.blockNumber)

    assert registry.functions.getAnchor(ledger, 1000).call() == [root, block.number, block.timestamp]
    assert registry.functions.latest(ledger).call() == [1000, root, block.number, block.timestamp]
    # Sizes never anchored read as zeros, even below the latest.
    assert registry.functions.getAnchor(ledger, 999).call() == [b"\0" * 32, 0, 0]


def test_anchored_event(chain):
    w3, registry = chain
    ledger, root, sender = ledger_id("broker-a"), root_of(7), w3.eth.accounts[0]
    receipt = anchor(w3, registry, ledger, 7, root, sender)

    (event,) = registry.events.Anchored().process_receipt(receipt)
    assert event.event == "Anchored"
    assert event.address == registry.address
    assert dict(event.args) == {"ledger": ledger, "size": 7, "root": root, "anchorer": sender}
    # ledger, size and anchorer are indexed: a reader can filter on them.
    (found,) = registry.events.Anchored.get_logs(argument_filters={"ledger": ledger}, from_block=0)
    assert found.transactionHash == receipt.transactionHash
    assert registry.events.Anchored.get_logs(argument_filters={"ledger": ledger_id("x")}, from_block=0) == []


def test_sizes_strictly_increase(chain):
    w3, registry = chain
    ledger, sender = ledger_id("broker-a"), w3.eth.accounts[0]
    first = anchor(w3, registry, ledger, 10, root_of(10))
    later = anchor(w3, registry, ledger, 20, root_of(20))

    fn = registry.functions.anchor
    assert_reverts("tree size must increase", fn, ledger, 20, root_of(20), sender=sender)  # replay
    assert_reverts("tree size must increase", fn, ledger, 20, root_of(99), sender=sender)  # same size, new root
    assert_reverts("tree size must increase", fn, ledger, 15, root_of(15), sender=sender)  # stale
    assert_reverts("tree size must increase", fn, ledger, 10, root_of(10), sender=sender)

    latest_block = w3.eth.get_block(later.blockNumber)
    assert registry.functions.latest(ledger).call() == [20, root_of(20), later.blockNumber, latest_block.timestamp]
    assert registry.functions.getAnchor(ledger, 10).call()[0] == root_of(10)
    assert registry.functions.getAnchor(ledger, 15).call() == [b"\0" * 32, 0, 0]
    assert first.blockNumber < later.blockNumber


def test_zero_size_and_zero_root_revert(chain):
    w3, registry = chain
    ledger, sender = ledger_id("broker-a"), w3.eth.accounts[0]
    fn = registry.functions.anchor
    assert_reverts("tree size must be positive", fn, ledger, 0, root_of(0), sender=sender)
    assert_reverts("root must be non-zero", fn, ledger, 5, b"\0" * 32, sender=sender)
    assert registry.functions.latest(ledger).call()[0] == 0


def test_unauthorized_account_cannot_anchor(chain):
    w3, registry = chain
    ledger, stranger = ledger_id("broker-a"), w3.eth.accounts[3]
    assert_reverts("not an authorized anchorer", registry.functions.anchor, ledger, 1, root_of(1), sender=stranger)
    assert registry.functions.latest(ledger).call()[0] == 0


def test_admin_grants_then_revokes(chain):
    w3, registry = chain
    admin, member = w3.eth.accounts[0], w3.eth.accounts[1]
    ledger = ledger_id("broker-b")

    receipt = w3.eth.wait_for_transaction_receipt(
        registry.functions.setAnchorer(member, True).transact({"from": admin})
    )
    (event,) = registry.events.AnchorerSet().process_receipt(receipt)
    assert dict(event.args) == {"account": member, "allowed": True}
    assert registry.functions.isAnchorer(member).call() is True

    receipt = anchor(w3, registry, ledger, 1, root_of(1), sender=member)
    (anchored,) = registry.events.Anchored().process_receipt(receipt)
    assert anchored.args.anchorer == member

    receipt = w3.eth.wait_for_transaction_receipt(
        registry.functions.setAnchorer(member, False).transact({"from": admin})
    )
    (event,) = registry.events.AnchorerSet().process_receipt(receipt)
    assert dict(event.args) == {"account": member, "allowed": False}
    assert registry.functions.isAnchorer(member).call() is False
    assert_reverts("not an authorized anchorer", registry.functions.anchor, ledger, 2, root_of(2), sender=member)


def test_only_admin_manages_anchorers(chain):
    w3, registry = chain
    member, stranger = w3.eth.accounts[1], w3.eth.accounts[2]
    w3.eth.wait_for_transaction_receipt(
        registry.functions.setAnchorer(member, True).transact({"from": w3.eth.accounts[0]})
    )
    # Being an anchorer gives no admin rights.
    assert_reverts("only the admin", registry.functions.setAnchorer, stranger, True, sender=member)
    assert_reverts("only the admin", registry.functions.setAnchorer, member, False, sender=stranger)
    assert_reverts("only the admin", registry.functions.transferAdmin, stranger, sender=stranger)
    assert registry.functions.isAnchorer(stranger).call() is False
    assert registry.functions.isAnchorer(member).call() is True


def test_transfer_admin(chain):
    w3, registry = chain
    old, new, member = w3.eth.accounts[0], w3.eth.accounts[4], w3.eth.accounts[5]

    receipt = w3.eth.wait_for_transaction_receipt(registry.functions.transferAdmin(new).transact({"from": old}))
    (event,) = registry.events.AdminTransferred().process_receipt(receipt)
    assert dict(event.args) == {"previous": old, "next": new}
    assert registry.functions.admin().call() == new

    assert_reverts("only the admin", registry.functions.setAnchorer, member, True, sender=old)
    assert_reverts("admin must be non-zero", registry.functions.transferAdmin,
                   "0x" + "00" * 20, sender=new)
    w3.eth.wait_for_transaction_receipt(registry.functions.setAnchorer(member, True).transact({"from": new}))
    assert registry.functions.isAnchorer(member).call() is True
    # The transfer moves the admin role only: the old admin keeps its right to anchor until revoked.
    assert registry.functions.isAnchorer(old).call() is True
    assert registry.functions.isAnchorer(new).call() is False


def test_ledgers_are_independent(chain):
    w3, registry = chain
    a, b = ledger_id("broker-a"), ledger_id("fund-b")
    anchor(w3, registry, a, 100, root_of(100))
    # A smaller size is fine on another ledger.
    receipt_b = anchor(w3, registry, b, 5, root_of(5))
    anchor(w3, registry, a, 200, root_of(200))

    assert registry.functions.latest(a).call()[:2] == [200, root_of(200)]
    assert registry.functions.latest(b).call()[:2] == [5, root_of(5)]
    assert registry.functions.getAnchor(b, 100).call() == [b"\0" * 32, 0, 0]
    assert registry.functions.getAnchor(a, 5).call() == [b"\0" * 32, 0, 0]
    assert registry.functions.getAnchor(b, 5).call()[1] == receipt_b.blockNumber
    assert_reverts("tree size must increase", registry.functions.anchor, b, 5, root_of(6),
                   sender=w3.eth.accounts[0])


def test_gas_per_anchor(chain):
    w3, registry = chain
    ledger = ledger_id("broker-a")
    first = anchor(w3, registry, ledger, 1_000, root_of(1)).gasUsed
    later = anchor(w3, registry, ledger, 2_000, root_of(2)).gasUsed
    other_ledger_first = anchor(w3, registry, ledger_id("fund-b"), 1_000, root_of(3)).gasUsed
    print(f"\ngas per anchor: first for a ledger {first}, later {later}, "
          f"first for a second ledger {other_ledger_first}")
    for gas in (first, later, other_ledger_first):
        assert 21_000 < gas < ANCHOR_GAS_BOUND
    assert later < first  # the latest-size slot is already non-zero
