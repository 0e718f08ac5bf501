"""The offline verifier of proof bundles: what a court runs to reach verdict ① (in the
anchored tree, unaltered) or ② without trusting this service (docs/proof-bundle.md).

It depends on the standard library, `merkle.proof` and `merkle.checkpoint` (with gmssl for SM2)
and pycryptodome for keccak; importing it loads none of numpy, numba, rocksdict, web3 or
fastapi, so it can ship on its own. The ledger uses its leaf decoder, ledger key and getAnchor
reader too: one definition of each.

    verify.py       the checks, the report, reading a bundle's text
    leaf.py         the version-1 leaf decoder (canonical form checked)
    chain.py        the ledger key, getAnchor, the Anchored event, a JSON-RPC client
    strict_json.py  one strict reading of a JSON text
"""
