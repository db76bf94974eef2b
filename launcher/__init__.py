"""Starting the fleet's processes: Redis for a bare machine, the provider emulator and the workers, each
as `python -m llm_fleet ...`, and `llm-fleet demo`, which runs them and calls all three providers.

It imports the caller's library (`producer`) and the contract (`schemas`), never `workers` nor `emulator`:
those it starts as processes. Nothing of ours imports it (import-linter checks both); the tests and the
benchmarks start their fleets with it.
"""
