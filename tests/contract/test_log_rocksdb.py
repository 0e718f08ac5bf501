"""The log backend contract against the embedded RocksDB backend."""
from ingest.log_rocksdb import RocksDBLog

from .log_contract import LogBackendContract


class TestRocksDBLog(LogBackendContract):
    def create_log(self, tmp_path):
        self.path = tmp_path / "log"
        return RocksDBLog(self.path)

    def reopen_log(self):
        return RocksDBLog(self.path)
