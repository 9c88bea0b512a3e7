"""The run directory (docs/results.md): its files and their checks, the one writer that
follows no link, the lock, provenance, pyperf.json, and merging runs. Standard library
only."""
