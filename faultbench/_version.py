"""faultbench's version, below both planes: the measurement plane records it in meta.json
without importing the package root (which imports the planes)."""

__version__ = "0.5.0"
