"""fraudwatch: cross-checks government registries to find benefit fraud."""

__version__ = "0.1.0"
