"""The ledger monitor: follows one ledger from the outside (its API's checkpoints or its static
tiles, and the chain's Anchored events, no data directory) and raises an alarm when the operator shows two
histories, breaks consistency, anchors a root it never published, or anchors late.
`evledger monitor` (proof_api/cli/monitor.py) runs it; docs/monitor.md describes it."""
from .checks import Alarm, Monitor, MonitorSettings
from .sources import ChainAnchors, LedgerApi, LedgerTiles, SourceError
from .state import MonitorState

__all__ = ["Alarm", "ChainAnchors", "LedgerApi", "LedgerTiles", "Monitor", "MonitorSettings", "MonitorState", "SourceError"]
