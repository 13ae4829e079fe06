"""Deploy-time check run by `prefect deploy` (a build step in prefect.yaml): refuse empty paths.

`prefect deploy --all` fills the deployments' `input`/`output` from FRAUDWATCH_LANDING and
FRAUDWATCH_OUTPUT; unset, it would deploy empty paths silently. Exit code 1 stops the deploy.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

VARIABLES = {"FRAUDWATCH_LANDING": "the landing folder the worker reads extracts from",
             "FRAUDWATCH_OUTPUT": "the output folder the worker writes runs to"}


def problems(env: dict[str, str]) -> list[str]:
    found = []
    for name, what in VARIABLES.items():
        value = env.get(name, "").strip()
        if not value:
            found.append(f"{name} is not set: set it to {what} (an absolute path on the worker's machine)")
        elif not Path(value).is_absolute():
            found.append(f"{name}={value!r} is not an absolute path: the worker runs in another folder")
    return found


def main() -> int:
    found = problems(dict(os.environ))
    if found:
        print("fraudwatch: deployment refused:\n  - " + "\n  - ".join(found), file=sys.stderr)
        print("  e.g. FRAUDWATCH_LANDING=/data/landing FRAUDWATCH_OUTPUT=/data/fraudwatch prefect deploy --all",
              file=sys.stderr)
        return 1
    for name in VARIABLES:
        if not Path(os.environ[name]).is_dir():
            print(f"fraudwatch: note: {name}={os.environ[name]} does not exist on this machine "
                  "(fine if the worker runs elsewhere)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
