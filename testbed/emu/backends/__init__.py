"""Backends by name. Each module is imported only when chosen (Mininet and Docker are optional)."""

from __future__ import annotations

from ...errors import QkdbedError
from ..state import State
from .base import Backend

NAMES = ("local", "mininet", "docker")


def get(name: str, state: State) -> Backend:
    if name == "local":
        from .local import LocalBackend as cls
    elif name == "mininet":
        from .mininet import MininetBackend as cls
    elif name == "docker":
        from .docker import DockerBackend as cls
    else:
        raise QkdbedError(f"unknown backend {name!r} (known: {', '.join(NAMES)})")
    return cls(state)
