"""CLI commands for auditors and analysts: export, outcomes, person. Registered on `pipelines.cli.app`."""

from __future__ import annotations

from pipelines.cli import app  # noqa: F401
