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
from rich.markup import escape

from pipelines.errors import FraudwatchError

console = Console()
err = Console(stderr=True)
ERROR_EXIT = 2


def print_error(exc: FraudwatchError) -> None:
    """The message of a fraudwatch error, literally (text from data is never read as markup)."""
    err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True, emoji=False)


class FraudwatchGroup(typer.core.TyperGroup):
    """The top-level command group: converts fraudwatch errors to messages, once, for every command."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except FraudwatchError as exc:
            print_error(exc)
            raise typer.Exit(ERROR_EXIT) from None
