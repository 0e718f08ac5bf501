"""Tools for development, tests, benchmarks and the demo, kept out of the service's packages:
a local Kafka-protocol broker (devbroker), a local anvil chain (devchain) and the main job
(`evledger demo`). They import the service's packages, never the other way round; the one
exception is the `evledger demo` subcommand, which imports demo lazily."""
