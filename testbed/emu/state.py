"""Where running testbeds are recorded, so that `status`, `logs` and `down` know exactly what `up` started.

One directory per testbed: `$QKDBED_STATE_DIR/<name>/` (default `/tmp/qkdbed/<name>/`) holding `state.json`
(backend, node table, process ids, container ids, namespace and interface names), `config/` (agent and injector
configurations, mode 0600) and `logs/` (one file per agent and the injector). `down` removes the directory last.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from ..errors import QkdbedError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


def root() -> Path:
    return Path(os.environ.get("QKDBED_STATE_DIR", "/tmp/qkdbed"))


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise QkdbedError(f"testbed name {name!r}: expected 1-40 letters, digits, '_', '.' or '-'")
    return name


class State:
    """The record of one testbed (read and written as JSON; every write is atomic)."""

    def __init__(self, name: str):
        self.name = check_name(name)
        self.dir = root() / name
        self.data: dict[str, Any] = {}
        if (self.dir / "state.json").is_file():
            self.data = json.loads((self.dir / "state.json").read_text())

    @property
    def exists(self) -> bool:
        return (self.dir / "state.json").is_file()

    @property
    def config_dir(self) -> Path:
        return self.dir / "config"

    @property
    def log_dir(self) -> Path:
        return self.dir / "logs"

    def create(self, backend: str) -> None:
        if self.exists:
            raise QkdbedError(f"testbed {self.name!r} is already up ({self.dir}); `qkdbed down {self.name}` first")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        self.data = {"name": self.name, "backend": backend, "phase": "creating"}
        self.save()

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps(self.data, indent=2) + "\n")
        tmp.replace(self.dir / "state.json")

    def update(self, **kw) -> None:
        self.data.update(kw)
        self.save()

    def remove(self) -> None:
        if self.dir.is_dir():
            shutil.rmtree(self.dir, ignore_errors=True)


def list_testbeds() -> list[str]:
    r = root()
    if not r.is_dir():
        return []
    return sorted(p.name for p in r.iterdir() if (p / "state.json").is_file())
