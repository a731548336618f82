"""The key injector: one process per testbed that plays every link's pair of QKD devices.

For each link it replays the key-supply schedule the simulator would use (same model, same seed stream
`link:<name>`, computed by `lab.py` and written into this process's configuration) and, at each event's time on the
shared testbed clock, hands both ends the same bytes (`keysupply.key_bytes`, 2 x units x unit_bytes: one half per
direction, see `keystore.py`) in the same order, so the two ends' key indices agree without talking to each other.

Agents connect to us (they learn our address from their configuration) and send `INJ_HELLO` with their node
index; the channel stands for the QKD device's local key-delivery interface inside a trusted node, and is not
authenticated here (see docs/emulator.md, "security choices").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time

from .. import keysupply
from ..node import wire
from . import httpd
from .agent import INJ_EVENT, INJ_HELLO


class Injector:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.names: list[str] = cfg["node_names"]
        self.writers: dict[str, asyncio.StreamWriter] = {}
        self.mono0: float | None = None
        self.duration_s = 0.0
        self.sent_events = 0
        self.sent_bytes = 0
        self.stop = asyncio.Event()
        self.needed = sorted({l["a"] for l in cfg["links"]} | {l["b"] for l in cfg["links"]})

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        ctl = self.cfg["control"]
        servers = [await httpd.serve(self._http, [ctl["host"]], ctl["port"]),
                   await asyncio.start_server(self._accept, host=self.cfg["listen"], port=self.cfg["port"],
                                              reuse_address=True)]
        print(f"injector {self.cfg['testbed']}: {len(self.cfg['links'])} links, listening on "
              f"{self.cfg['listen']}:{self.cfg['port']}", flush=True)
        await self.stop.wait()
        for s in servers:
            s.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            magic, idx = INJ_HELLO.unpack(await asyncio.wait_for(reader.readexactly(INJ_HELLO.size), 10))
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            writer.close()
            return
        if magic != b"QKINJ1" or idx >= len(self.names):
            writer.close()
            return
        self.writers[self.names[idx]] = writer
        try:
            await reader.read()  # agents never send more; EOF means the agent went away
        except ConnectionError:
            pass
        if self.writers.get(self.names[idx]) is writer:
            del self.writers[self.names[idx]]

    def start(self, req: dict) -> None:
        self.mono0 = time.monotonic() + (float(req["start_unix"]) - time.time())
        self.duration_s = float(req.get("duration_s", float("inf")))
        for link in self.cfg["links"]:
            asyncio.get_running_loop().create_task(self._replay(link))

    async def _replay(self, link: dict) -> None:
        """Deliver one link's events at their times to both ends (a late agent misses what it was not there for)."""
        seed, name, ub = self.cfg["seed"], link["name"], int(link["unit_bytes"])
        ia, ib = self.names.index(link["a"]), self.names.index(link["b"])
        for i, (t, units) in enumerate(zip(link["times_s"], link["units"])):
            if t >= self.duration_s:
                break
            delay = self.mono0 + t - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            material = keysupply.key_bytes(seed, name, i, 2 * units, ub)
            for end, peer in ((link["a"], ib), (link["b"], ia)):
                w = self.writers.get(end)
                if w is None or w.is_closing():
                    continue
                body = INJ_EVENT.pack(peer, i, units, float(t), ub) + material
                w.write(wire.LENGTH.pack(len(body)) + body)
                self.sent_bytes += len(body)
            self.sent_events += 1

    def health(self) -> dict:
        return {"testbed": self.cfg["testbed"], "ready": all(n in self.writers for n in self.needed),
                "connected": sorted(self.writers), "needed": len(self.needed), "started": self.mono0 is not None}

    async def _http(self, method: str, path: str, query: dict, body: bytes):
        if path == "/health" and method == "GET":
            return httpd.json_response(self.health())
        if path == "/stats" and method == "GET":
            return httpd.json_response({"events_sent": self.sent_events, "bytes_sent": self.sent_bytes,
                                        "agents_connected": len(self.writers)})
        if path == "/start" and method == "POST":
            if self.mono0 is not None:
                return httpd.json_response({"error": "already started"}, 409)
            self.start(json.loads(body or b"{}"))
            return httpd.json_response({"ok": True})
        if path == "/shutdown" and method == "POST":
            asyncio.get_running_loop().call_later(0.05, self.stop.set)
            return httpd.json_response({"ok": True})
        return httpd.json_response({"error": f"no route {method} {path}"}, 404)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="qkdbed inject", description="Run a testbed's key injector.")
    ap.add_argument("--config", required=True)
    a = ap.parse_args(argv)
    with open(a.config) as fh:
        cfg = json.load(fh)
    asyncio.run(Injector(cfg).main())


if __name__ == "__main__":
    main(sys.argv[1:])
