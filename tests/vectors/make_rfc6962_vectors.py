"""Write tests/vectors/rfc6962/: the RFC 6962 (SHA-256) test data of transparency-dev/merkle.

Every hash below is transcribed from that repository, not computed here:
  testonly/constants.go  (LeafInputs, NodeHashes, RootHashes)      commit 582a6ad190b6848f
  proof/verify_test.go   (inclusionProofs, consistencyProofs)      commit 02194e9afb6c1d95
Only the corrupted cases are derived (by `corruptions.py`, which follows the same file's
corruptInclusionProof / corruptConsistencyProof), so these files check our tree and verifier
against an independent implementation. Run from the repository root:

    .venv/bin/python tests/vectors/make_rfc6962_vectors.py
"""
from __future__ import annotations

from pathlib import Path

from casefiles import case_files, write_folder
from corruptions import corrupt_consistency, corrupt_inclusion

FOLDER = Path(__file__).resolve().parent / "rfc6962"
SOURCE = "github.com/transparency-dev/merkle testonly/constants.go, proof/verify_test.go"

LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
          "606162636465666768696a6b6c6d6e6f"]

NODE_HASHES = [  # [level][index] for every complete subtree of the 8 leaves
    ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
     "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
     "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
     "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
     "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
     "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
     "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
     "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"],
    ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
     "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
     "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
     "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"],
    ["d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
     "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]

ROOTS = [  # by tree size 0..8
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]

# inclusionProofs of verify_test.go, whose leaf numbers are 1-based; here (0-based index, size).
INCLUSION = [
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]

CONSISTENCY = [  # consistencyProofs of verify_test.go: (size1, size2, proof)
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]


def build() -> dict[str, dict]:
    """{path relative to rfc6962/: case} for every file of the folder."""
    files = {"tree.json": {
        "desc": "RFC 6962 test leaves, every complete subtree and the root at every size",
        "source": SOURCE, "alg": "sha256", "leaves": LEAVES, "node_hashes": NODE_HASHES,
        "roots": ROOTS,
    }}
    for index, size, proof in INCLUSION:
        happy = {"desc": "happy path", "source": SOURCE, "alg": "sha256", "index": index,
                 "size": size, "leaf_hash": NODE_HASHES[0][index], "root": ROOTS[size],
                 "proof": proof, "want_error": False}
        files.update(case_files("inclusion", f"index{index}-size{size}", happy,
                                corrupt_inclusion(happy, ROOTS[0])))
    for size1, size2, proof in CONSISTENCY:
        happy = {"desc": "happy path", "source": SOURCE, "alg": "sha256", "size1": size1,
                 "size2": size2, "root1": ROOTS[size1], "root2": ROOTS[size2], "proof": proof,
                 "want_error": False}
        files.update(case_files("consistency", f"size{size1}-size{size2}", happy,
                                corrupt_consistency(happy)))
    return files


if __name__ == "__main__":
    built = build()
    write_folder(FOLDER, built)
    print(f"wrote {len(built)} files under {FOLDER}")
