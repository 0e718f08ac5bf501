"""The monitor's Prometheus metrics, in a registry of its own (served on --metrics-port)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from .checks import ALARM_KINDS


class MonitorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.alert = Gauge("evledger_monitor_alert", "1 while an alarm of this kind stands (sticky)", ["kind"],
                           registry=r)
        self.verified = Counter("evledger_monitor_checkpoints_verified", "checkpoints verified (signature and "
                                "consistency)", registry=r)
        self.anchors = Counter("evledger_monitor_anchors_checked", "Anchored events checked against checkpoints",
                               registry=r)
        self.last_size = Gauge("evledger_monitor_last_verified_size", "size of the last checkpoint verified",
                               registry=r)
        self.up = Gauge("evledger_monitor_up", "1 when the last pass read the API (and chain), 0 when it could not",
                        registry=r)
        self.errors = Counter("evledger_monitor_errors", "passes that could not read the API or the chain",
                              registry=r)
        for kind in ALARM_KINDS:
            self.alert.labels(kind).set(0)

    def restore(self, state) -> None:
        """Start from the state: standing alarms, the last verified size."""
        for kind, _line in state.alarms():
            self.alert.labels(kind).set(1)
        last = state.last_verified()
        if last is not None:
            self.last_size.set(last[0])
