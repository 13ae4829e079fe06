"""What every `fraudwatch` command shares: the consoles and the one place errors become messages.

`FraudwatchGroup` is the click group of the whole command line: a :class:`FraudwatchError` raised by
any command (or sub-command) is printed once, as ``error: …`` naming file/line/rule, with exit code 2.
Commands therefore just raise; they never format errors themselves.
"""

from __future__ import annotations

from typing import Any

import typer
import typer.core
from rich.console import Console

from pipelines.errors import FraudwatchError
from pipelines.textsafe import literal

console = Console()
err = Console(stderr=True)
ERROR_EXIT = 2


def print_error(exc: BaseException) -> None:
    """The message of an error, literally: text from data is never read as markup or emoji, and control
    characters are shown visibly. A full disk or a read-only folder is said as such, whoever met it."""
    from pipelines.guards.oserrors import os_failure_in_chain

    shown = os_failure_in_chain(exc) or exc
    err.print(literal("error: ", "bold red") + literal(shown), highlight=False, soft_wrap=True)


def fail(exc: FraudwatchError) -> None:
    """Print ``exc`` as a message and leave with the error exit code (for the rare command that
    must stop outside a raised error)."""
    print_error(exc)
    raise typer.Exit(ERROR_EXIT)


class FraudwatchGroup(typer.core.TyperGroup):
    """The top-level command group: converts fraudwatch errors, and operating-system failures (disk full,
    read-only folder, permission denied, a vanished file) that escape a command, to messages, once, for
    every command (exit code 2). Anything else is a bug and keeps its traceback."""

    def invoke(self, ctx: Any) -> Any:
        from pipelines.guards.oserrors import os_failure_in_chain

        try:
            return super().invoke(ctx)
        except FraudwatchError as exc:
            print_error(exc)
            raise typer.Exit(ERROR_EXIT) from None
        except Exception as exc:  # noqa: BLE001 - only OS failures are converted; the rest is re-raised
            if isinstance(exc, (typer.Exit, typer.Abort)) or os_failure_in_chain(exc) is None:
                raise
            print_error(exc)
            raise typer.Exit(ERROR_EXIT) from None
