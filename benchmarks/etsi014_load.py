"""ETSI GS QKD 014 load: many applications fetching keys at once from two KMEs over mutual TLS on loopback.

A server process hosts two KMEs (U1 and U7) in one event loop, as two agents would, fed with the same 512-byte
units the relay network would deliver (a feeder keeps the pool topped up). The client process runs N concurrent
loops; each loop is one application pair: the master SAE asks KME U1 for keys (enc_keys), the slave SAE asks
KME U7 for the same key_IDs (dec_keys). A probe loop reads status every 100 ms to show the server stays
responsive. At the end it checks that no key_ID was served twice and that every dec_keys matched its enc_keys,
and prints keys/s, requests/s and p50/p99 request latency (measured by the clients, TLS included).

Targets: >= 500 requests/s and p99 <= 50 ms with 50 concurrent clients on a 2-core machine.

    python benchmarks/etsi014_load.py [--clients 50] [--duration 20] [--number 4] [--size 256]

Loops are closed (a loop sends its next request as soon as the previous answer arrives) unless --rate-per-client
paces them; in a closed loop latency ≈ clients / throughput (Little's law), so p99 measures the server's speed.
"""

from __future__ import annotations

import os as _os
import sys as _sys

# benchmarks/testbed.py shares its name with the package: keep this folder off the import path.
_sys.path[:] = [p for p in _sys.path if _os.path.abspath(p or ".") != _os.path.dirname(_os.path.abspath(__file__))]

import argparse
import asyncio
import base64
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

#: SAEs: each client loop i uses master SAE "m<i % SAE_PAIRS>" at U1 and slave "s<…>" at U7; a few pairs
#: exercise the per-pair bookkeeping while all pairs draw on the one U1↔U7 unit pool.
SAE_PAIRS = 5
UNIT_BYTES = 512
#: Units kept in the owner's pool (the feeder refills below this); 4096 units = 2 MiB, minutes of load.
POOL_UNITS = 4096


def sae_map() -> dict[str, str]:
    m = {"U1": "U1", "U7": "U7"}
    for i in range(SAE_PAIRS):
        m[f"m{i}"] = "U1"
        m[f"s{i}"] = "U7"
    return m


# --- server side -----------------------------------------------------------------------------------------------
async def serve(testbed_dir: Path, ready_fd) -> None:
    """Two KMEs on loopback with mTLS; prints {"U1": port, "U7": port} on `ready_fd` and serves until stdin
    closes (the client process owns our lifetime: when it exits, we exit)."""
    from testbed.emu.etsi014.api import bound_port, make_app, start_kme_server
    from testbed.emu.etsi014.keystore import KeyStore
    from testbed.emu.etsi014.pki import server_ssl_context

    sm = sae_map()
    a, b = KeyStore("U1", sm), KeyStore("U7", sm)
    a.on_handout = lambda h: b.register_remote_handout(h.to_message())  # in-process "relay network"
    seq = 0

    def feed(n: int) -> None:
        nonlocal seq
        for _ in range(n):
            unit = os.urandom(UNIT_BYTES)
            b.add_unit("U1", (1, seq), unit, "slave")  # destination: on receipt
            a.add_unit("U7", (1, seq), unit, "master")  # source: on the ACK
            seq += 1

    feed(POOL_UNITS)
    runners = [await start_kme_server(make_app(ks), "127.0.0.1", 0, server_ssl_context(testbed_dir, ks.kme_id))
               for ks in (a, b)]
    ready_fd.write(json.dumps({"U1": bound_port(runners[0]), "U7": bound_port(runners[1])}) + "\n")
    ready_fd.flush()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_reader(sys.stdin.fileno(), lambda: (sys.stdin.read(), stop.set()))
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    while not stop.is_set():
        have = a.counters()["owned_bytes"] // UNIT_BYTES
        if have < POOL_UNITS:
            feed(min(POOL_UNITS - have, 512))
        try:
            await asyncio.wait_for(stop.wait(), 0.05)
        except asyncio.TimeoutError:
            pass
    counters = a.counters()
    for r in runners:
        await r.cleanup()
    ready_fd.write(json.dumps({"handed_out": counters["keys_handed_out_master"],
                               "served_slave": b.counters()["keys_served_slave"]}) + "\n")
    ready_fd.flush()


# --- client side -----------------------------------------------------------------------------------------------
@dataclass
class Result:
    requests: int = 0
    keys: int = 0
    errors: list = field(default_factory=list)
    mismatches: int = 0
    latencies_s: list = field(default_factory=list)
    probe_latencies_s: list = field(default_factory=list)
    key_ids: set = field(default_factory=set)
    duplicates: int = 0


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * q))]


async def run_clients(testbed_dir: Path, ports: dict[str, int], clients: int, duration_s: float, number: int,
                      size_bits: int, rate_per_client: float) -> tuple[Result, float]:
    import aiohttp

    from testbed.emu.etsi014.pki import client_ssl_context

    res = Result()
    contexts = {sae: client_ssl_context(testbed_dir, sae) for sae in sae_map()}
    url_a = f"https://127.0.0.1:{ports['U1']}/api/v1/keys"
    url_b = f"https://127.0.0.1:{ports['U7']}/api/v1/keys"
    t_end = 0.0

    async def one_loop(i: int) -> None:
        m, s = f"m{i % SAE_PAIRS}", f"s{i % SAE_PAIRS}"
        period = 1.0 / rate_per_client if rate_per_client > 0 else 0.0
        conn_a = aiohttp.TCPConnector(ssl=contexts[m], limit=1)
        conn_b = aiohttp.TCPConnector(ssl=contexts[s], limit=1)
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(connector=conn_a, timeout=timeout) as sa, \
                aiohttp.ClientSession(connector=conn_b, timeout=timeout) as sb:
            next_t = time.perf_counter()
            while time.perf_counter() < t_end:
                t0 = time.perf_counter()
                async with sa.get(f"{url_a}/{s}/enc_keys", params={"number": number, "size": size_bits}) as r:
                    body = await r.json()
                    status = r.status
                t1 = time.perf_counter()
                res.requests += 1
                res.latencies_s.append(t1 - t0)
                if status != 200:
                    res.errors.append(("enc_keys", status, body))
                    await asyncio.sleep(0.01)
                    continue
                sent = {k["key_ID"]: k["key"] for k in body["keys"]}
                for kid in sent:
                    if kid in res.key_ids:
                        res.duplicates += 1
                    res.key_ids.add(kid)
                req = {"key_IDs": [{"key_ID": k} for k in sent]}
                async with sb.post(f"{url_b}/{m}/dec_keys", json=req) as r:
                    body = await r.json()
                    status = r.status
                t2 = time.perf_counter()
                res.requests += 1
                res.latencies_s.append(t2 - t1)
                if status != 200:
                    res.errors.append(("dec_keys", status, body))
                    continue
                got = {k["key_ID"]: k["key"] for k in body["keys"]}
                if got != sent or any(len(base64.b64decode(v)) * 8 != size_bits for v in got.values()):
                    res.mismatches += 1
                res.keys += len(sent)
                if period:
                    next_t += period
                    await asyncio.sleep(max(0.0, next_t - time.perf_counter()))

    async def probe() -> None:
        conn = aiohttp.TCPConnector(ssl=contexts["m0"], limit=1)
        async with aiohttp.ClientSession(connector=conn) as sess:
            while time.perf_counter() < t_end:
                t0 = time.perf_counter()
                async with sess.get(f"{url_a}/s0/status") as r:
                    await r.read()
                res.probe_latencies_s.append(time.perf_counter() - t0)
                await asyncio.sleep(0.1)

    t_start = time.perf_counter()
    t_end = t_start + duration_s
    await asyncio.gather(probe(), *(one_loop(i) for i in range(clients)))
    return res, time.perf_counter() - t_start


def run_load(clients: int = 50, duration_s: float = 20.0, number: int = 4, size_bits: int = 256,
             rate_per_client: float = 0.0, testbed_dir: Path | None = None) -> dict:
    """Start the KME server process, run the client loops, stop the server; return the measurements."""
    from testbed.emu.etsi014.pki import ensure_testbed_pki

    with tempfile.TemporaryDirectory(prefix="etsi014-load-") as tmp:
        tb = Path(testbed_dir or tmp)
        ensure_testbed_pki(tb, {"U1": ["127.0.0.1"], "U7": ["127.0.0.1"]}, sae_map())
        proc = subprocess.Popen([sys.executable, __file__, "--serve", str(tb)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("KME server process did not start")
            ports = json.loads(line)
            res, wall_s = asyncio.run(run_clients(tb, ports, clients, duration_s, number, size_bits,
                                                  rate_per_client))
            proc.stdin.close()
            tail = proc.stdout.readline()
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    server = json.loads(tail) if tail else {}
    return {
        "clients": clients, "duration_s": wall_s, "requests": res.requests, "keys": res.keys,
        "requests_per_s": res.requests / wall_s, "keys_per_s": res.keys / wall_s,
        "p50_ms": _pct(res.latencies_s, 0.50) * 1e3, "p99_ms": _pct(res.latencies_s, 0.99) * 1e3,
        "max_ms": max(res.latencies_s, default=float("nan")) * 1e3,
        "probe_max_ms": max(res.probe_latencies_s, default=float("nan")) * 1e3,
        "probes": len(res.probe_latencies_s),
        "errors": len(res.errors), "first_errors": res.errors[:3], "mismatches": res.mismatches,
        "duplicate_key_ids": res.duplicates, "unique_key_ids": len(res.key_ids),
        "server_handed_out": server.get("handed_out"), "server_served_slave": server.get("served_slave"),
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        asyncio.run(serve(Path(sys.argv[2]), sys.stdout))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--duration", type=float, default=20.0, help="seconds")
    ap.add_argument("--number", type=int, default=4, help="keys per enc_keys request")
    ap.add_argument("--size", type=int, default=256, help="key size in bits")
    ap.add_argument("--rate-per-client", type=float, default=0.0,
                    help="key-request rounds per second per client (0: closed loop, as fast as answered)")
    args = ap.parse_args()
    r = run_load(args.clients, args.duration, args.number, args.size, args.rate_per_client)
    print(f"machine: {platform.machine()} {os.cpu_count()} cpu(s), python {platform.python_version()}")
    print(f"{r['clients']} clients, {r['duration_s']:.1f} s, mTLS on loopback, {args.number} x {args.size}-bit keys"
          f" per enc_keys")
    print(f"requests/s {r['requests_per_s']:.0f}   keys/s {r['keys_per_s']:.0f}   "
          f"latency p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms  max {r['max_ms']:.1f} ms")
    print(f"status probe: {r['probes']} probes, max {r['probe_max_ms']:.1f} ms")
    print(f"checks: errors {r['errors']}, dec≠enc {r['mismatches']}, key_IDs served twice "
          f"{r['duplicate_key_ids']}, unique key_IDs {r['unique_key_ids']}, server handed out "
          f"{r['server_handed_out']}, slave served {r['server_served_slave']}")
    ok = (r["errors"] == 0 and r["mismatches"] == 0 and r["duplicate_key_ids"] == 0)
    targets = r["requests_per_s"] >= 500 and r["p99_ms"] <= 50
    print(f"result: {'OK' if ok else 'FAILED'}; targets (>=500 req/s, p99<=50 ms) {'met' if targets else 'NOT met'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
