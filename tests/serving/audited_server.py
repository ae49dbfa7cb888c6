"""Run `python -m serving` with import and unpickling auditing, for test_process.py.

Records every module imported and every attempt to unpickle (pickle.load/loads/Unpickler and the
`pickle.find_class` audit event); at exit writes them as JSON to $SERVING_AUDIT_FILE.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from typing import Any

unpickles: list[str] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "pickle.find_class":
        unpickles.append(f"find_class {args!r}")


def _tripwire(name: str) -> Any:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        unpickles.append(name)
        raise RuntimeError(f"the server called {name}")

    return refuse


def _report() -> None:
    with open(os.environ["SERVING_AUDIT_FILE"], "w", encoding="utf-8") as out:
        json.dump({"modules": sorted(sys.modules), "unpickles": unpickles}, out)


def main() -> int:
    sys.addaudithook(_audit)
    import pickle  # imported anyway (numpy, uvicorn); replaced here so any use is caught

    for name in ("load", "loads", "Unpickler"):
        setattr(pickle, name, _tripwire(f"pickle.{name}"))
    atexit.register(_report)
    from serving.server import main as serve

    return serve(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
