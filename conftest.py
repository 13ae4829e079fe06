"""Session-wide test setup that must run before any test module is imported.

pytest-xdist workers run with a ``__main__`` that has neither ``__file__`` nor ``__spec__``. pyspark 4
takes that for "running doctests" and calls ``sys.exit(0)`` when ``pyspark.sql.connect`` is imported
without grpc, and great-expectations imports it at import time -- so every test touching GE died in a
worker. Import GE's pyspark shim once with a placeholder ``__main__.__file__``: the connect import then
fails as an ordinary ImportError, GE records "not available" and the placeholder is removed.
"""

from __future__ import annotations

import importlib.util
import sys

_main = sys.modules.get("__main__")
if (_main is not None and getattr(_main, "__spec__", None) is None and not hasattr(_main, "__file__")
        and importlib.util.find_spec("pyspark") is not None):
    _main.__file__ = "<pytest-xdist worker>"
    try:
        import great_expectations.compatibility.pyspark  # noqa: F401
    finally:
        del _main.__file__
