"""A local anvil chain for tests, benchmarks and trying things out: started on 127.0.0.1 on a
free port from the pinned npm package (`make npm-tools`), with a fresh state or a state file,
and stopped with the object. Not used by the service itself."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import anchor
from evledger_common.stopping import terminate

from .devbroker import free_port, wait_listening

# The npm tools sit beside the contract they build and test, in the anchor package's folder.
NODE_BIN = Path(anchor.__file__).resolve().parent / "contracts" / "node_modules" / ".bin"
ANVIL = NODE_BIN / "anvil"
CAST = NODE_BIN / "cast"

# anvil's default mnemonic ("test test ... junk"): account 0 deploys and anchors, account 1 is
# an outsider. Well-known test keys; never use them anywhere real.
DEV_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
)


class Anvil:
    """`with Anvil() as chain: chain.url ...`. `block_time` None mines a block per
    transaction; a number mines every that many seconds. `state` (a path) loads the chain
    from that file if it exists and dumps it there on exit, so a chain survives a restart."""

    def __init__(self, port: int | None = None, block_time: float | None = None, state: str | os.PathLike | None = None,
                 chain_id: int = 31337, extra_args: tuple[str, ...] = ()):
        if not ANVIL.exists():
            raise FileNotFoundError(f"{ANVIL} is missing: run `make npm-tools`")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.chain_id = chain_id
        args = [str(ANVIL), "--host", "127.0.0.1", "--port", str(self.port), "--chain-id", str(chain_id),
                "--silent", *extra_args]
        if block_time is not None:
            args += ["--block-time", str(block_time)]
        if state is not None:
            args += ["--state", str(state)]
        self._args = args
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Anvil":
        self.proc = subprocess.Popen(self._args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            if wait_listening(self.proc, self.port):
                return self
        except ChildProcessError:
            raise RuntimeError(f"anvil exited: {self.proc.stderr.read().decode()[-2000:]}") from None
        self.stop()
        raise RuntimeError("anvil did not start listening within 30 s")

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), so a --state file is written."""
        if self.proc is not None:
            terminate(self.proc, 15)
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def rpc(self, method: str, *params):
        """A raw JSON-RPC call (anvil_* and evm_* methods)."""
        import requests

        reply = requests.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
                              timeout=10).json()
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result")

    def __enter__(self) -> "Anvil":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
