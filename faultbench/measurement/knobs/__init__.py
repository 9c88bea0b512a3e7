"""Kernel knobs: the catalog (names, paths, validation), the journal written before any
change, the session that restores on every exit path, the machine-wide lock, the
pseudo-filesystems (debugfs, securityfs, the mount table) and faultbench's own tmpfs.
Standard library only."""
