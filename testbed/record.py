"""The event log: what happened in a run, as columnar tables both runtimes write in the same format.

Tables (one row per event; times in seconds since the run's start; nodes and ports as indices into `node_names`):

| table      | columns                                              | written when                                   |
|------------|------------------------------------------------------|------------------------------------------------|
| sends      | t_s node peer flow seq key_index                     | a DATA frame leaves a node (one key unit used)  |
| deliveries | t_s flow seq t0_s                                    | a DATA frame reaches its destination           |
| acks       | t_s flow seq                                         | the source got the end-to-end ACK (key released)|
| drops      | t_s node flow seq reason                             | a message was dropped                          |
| control    | t_s node peer flow kind value                        | a control frame was sent (peer -1: end to end)  |
| pool       | t_s node peer keys rate_bps queued paused            | periodic sample of each egress port            |
| supply     | t_s link units                                       | a key-generation event delivered to a link      |
| keyservice | t_s kme master slave method status keys_requested keys_served size_bits latency_s | an ETSI 014 request was answered (emulator KMEs; docs/etsi014.md) |

Plus per-flow metadata (`flows`: id, name, src, dst, offered times) and the link list. Rows are appended as tuples
(cheap on the hot path) and turned into numpy arrays once at the end.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA: dict[str, list[tuple[str, str]]] = {
    "sends": [("t_s", "f8"), ("node", "i4"), ("peer", "i4"), ("flow", "i4"), ("seq", "i8"), ("key_index", "i8")],
    "deliveries": [("t_s", "f8"), ("flow", "i4"), ("seq", "i8"), ("t0_s", "f8")],
    "acks": [("t_s", "f8"), ("flow", "i4"), ("seq", "i8")],
    "drops": [("t_s", "f8"), ("node", "i4"), ("flow", "i4"), ("seq", "i8"), ("reason", "i4")],
    "control": [("t_s", "f8"), ("node", "i4"), ("peer", "i4"), ("flow", "i4"), ("kind", "i4"), ("value", "f8")],
    "pool": [("t_s", "f8"), ("node", "i4"), ("peer", "i4"), ("keys", "i8"), ("rate_bps", "f8"), ("queued", "i8"),
             ("paused", "i4")],
    "supply": [("t_s", "f8"), ("link", "i4"), ("units", "i8")],
    # One row per ETSI GS QKD 014 request at an emulated KME (same columns as etsi014.api.KEYSERVICE_SCHEMA):
    # method 0 status / 1 enc_keys / 2 dec_keys / 3 other; status the HTTP code; latency the KME's service time.
    "keyservice": [("t_s", "f8"), ("kme", "i4"), ("master", "i4"), ("slave", "i4"), ("method", "i4"),
                   ("status", "i4"), ("keys_requested", "i4"), ("keys_served", "i4"), ("size_bits", "i4"),
                   ("latency_s", "f8")],
}
#: Tables added after logs were first saved: a log without them loads with them empty, and an empty one does not
#: enter the digest, so digests of logs that never had them stay as they were.
OPTIONAL_TABLES = ("keyservice",)


@dataclass
class FlowInfo:
    fid: int
    name: str
    src: str
    dst: str
    offer_t: np.ndarray  # offered times (s), sorted
    weight: float = 1.0
    group: str = ""  # e.g. "aggressive" / "normal" for figures

    def meta(self) -> dict[str, Any]:
        return {"id": self.fid, "name": self.name, "src": self.src, "dst": self.dst, "weight": self.weight,
                "group": self.group, "offered": int(len(self.offer_t))}


@dataclass
class EventLog:
    node_names: list[str]
    links: list[tuple[str, str]]
    flows: list[FlowInfo] = field(default_factory=list)
    duration_s: float = 0.0
    rows: dict[str, list] = field(default_factory=lambda: {k: [] for k in SCHEMA})
    tables: dict[str, np.ndarray] = field(default_factory=dict)
    _chunks: dict[str, list[np.ndarray]] = field(default_factory=dict, repr=False)

    def compact(self, min_rows: int = 100_000) -> None:
        """Move appended rows into numpy chunks (about 40 bytes a row instead of ~150 as tuples).

        The simulator calls this now and then so that a long run's memory stays bounded by its numpy size."""
        for name, cols in SCHEMA.items():
            rows = self.rows[name]
            if len(rows) >= min_rows:
                self._chunks.setdefault(name, []).append(np.array(rows, dtype=np.dtype(cols)))
                self.rows[name] = []

    def finish(self) -> "EventLog":
        """Convert appended rows into structured numpy arrays (idempotent)."""
        for name, cols in SCHEMA.items():
            dtype = np.dtype(cols)
            parts = []
            if name in self.tables and len(self.tables[name]):
                parts.append(self.tables[name])
            parts.extend(self._chunks.pop(name, []))
            rows = self.rows.get(name)
            if rows:
                parts.append(np.array(rows, dtype=dtype))
                self.rows[name] = []
            if len(parts) == 1:
                self.tables[name] = parts[0]
            elif parts:
                self.tables[name] = np.concatenate(parts)
            elif name not in self.tables:
                self.tables[name] = np.zeros(0, dtype=dtype)
        return self

    def __getitem__(self, name: str) -> np.ndarray:
        if self.rows.get(name) or self._chunks.get(name):
            self.finish()
        return self.tables[name]

    def node_index(self, name: str) -> int:
        return self.node_names.index(name)

    def flow(self, fid: int) -> FlowInfo:
        for f in self.flows:
            if f.fid == fid:
                return f
        raise KeyError(fid)

    # -- persistence -------------------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Write `events.npz` (all tables + offered times) and `events.json` (names, links, flows)."""
        self.finish()
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {f"table_{k}": v for k, v in self.tables.items()}
        for f in self.flows:
            arrays[f"offers_{f.fid}"] = np.asarray(f.offer_t, dtype="f8")
        tmp = directory / "events.npz.tmp"
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        tmp.replace(directory / "events.npz")
        meta = {"node_names": self.node_names, "links": [list(l) for l in self.links], "duration_s": self.duration_s,
                "flows": [f.meta() for f in self.flows]}
        write_json_atomic(directory / "events.json", meta)

    @classmethod
    def load(cls, directory: Path) -> "EventLog":
        meta = json.loads((directory / "events.json").read_text())
        data = np.load(directory / "events.npz")
        flows = [FlowInfo(m["id"], m["name"], m["src"], m["dst"], data[f"offers_{m['id']}"], m.get("weight", 1.0),
                          m.get("group", "")) for m in meta["flows"]]
        log = cls(meta["node_names"], [tuple(l) for l in meta["links"]], flows, meta["duration_s"])
        for k, cols in SCHEMA.items():
            if k in OPTIONAL_TABLES and f"table_{k}" not in data:
                log.tables[k] = np.zeros(0, dtype=np.dtype(cols))
            else:
                log.tables[k] = data[f"table_{k}"]
        return log

    def digest(self) -> str:
        """SHA-256 over every table and the offered times: equal digests mean identical event logs."""
        self.finish()
        h = hashlib.sha256()
        for k in sorted(self.tables):
            if k in OPTIONAL_TABLES and not len(self.tables[k]):
                continue
            h.update(k.encode())
            h.update(np.ascontiguousarray(self.tables[k]).tobytes())
        for f in self.flows:
            h.update(np.asarray(f.offer_t, dtype="f8").tobytes())
        return h.hexdigest()


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON via a temporary file and rename, so a crash never leaves a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")
    tmp.replace(path)


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
