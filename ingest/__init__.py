"""Evidence records, the event log and its backends, the sequencer, projections (issue 3)."""
