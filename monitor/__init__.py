"""Watching the fleet: `llm-fleet exporter` (the fleet's state for Prometheus, read from Redis at each scrape)
and `llm-fleet top` (a live terminal view, from Redis alone). Both read `jobstore.fleet`; this package imports
jobstore and schemas, never the workers, the emulator, a provider SDK or arq."""
