"""Evidence records, the event log and its backends, the sequencer, projections."""
