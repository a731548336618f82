"""`qkdtl-ecn`: baseline 1 of seed 000 §VI-A, the SECOQC QKD transport layer's reaction to key-store shortage.

A relay that is short of key tells the flow's source, ECN-style, and the source (a Reno sender, `reno.py`) slows
down before the key store is exhausted. Key supply itself is on demand: any flow may drain the pool.

When is a port short of key?
- profile `paper` (`shortage: doe`): DoE <= 1 (`doe_threshold`), DoE being Definition 1 of seed 000,
  DoE(t) = (L(t) - Lambda(t_i)) / mean Lambda, with L the master pool after the message took its key, Lambda(t_i)
  the amount of the port's last key-generation event and the mean over all its events so far (the same
  definition `metrics.doe_at` evaluates from the log). The history is kept per port: the node's cumulative
  `supplied` and `supply_events` give the mean, `on_supply` stores the last amount.
- profile `original` (`shortage: keys`): fewer than `ecn_threshold_keys` = 200 keys (`ECN_THRESHOLD` of
  `main_ECN.cpp`: 200 x 4096 bit = 819 kbit, the paper's "ECN threshold 800 kbit").

Reaction: the check runs after every message a port sends (as RFC 3168 marks every packet while the queue is
above threshold, and as the original code does); each message sent in shortage produces one ECN to its flow's
source. The source halves at most once per round trip (window controller) or once per batch (batch controller),
so the flood of marks costs one reduction per RTT. Nothing is ever dropped: queues are unbounded.

Port rate: `port_rate_bps` None (paper: on-demand supply, only the classical channel limits) or 1 Mbps (original:
the code's fixed 4096 us per message). Note: the original adds keys without the x10 scaling; that is a
key-supply setting (`key_supply.scale: 1`), not a scheme parameter (reference §9.9 recommends x10 everywhere).
"""

from __future__ import annotations

from typing import Any

from ..errors import QkdbedError
from .base import Scheme, register
from .reno import MARK, RENO_DEFAULTS, RenoSources, check_reno, resolve_params

DEFAULTS = {
    "paper": dict(RENO_DEFAULTS["paper"], shortage="doe", doe_threshold=1.0, ecn_threshold_keys=200,
                  port_rate_bps=None),
    "original": dict(RENO_DEFAULTS["original"], shortage="keys", doe_threshold=1.0, ecn_threshold_keys=200,
                     port_rate_bps=1e6),
}


class ShortagePort:
    """Per-port history for Definition 1 and counters of the shortage marks sent."""

    __slots__ = ("last_units", "marks")

    def __init__(self) -> None:
        self.last_units = 0
        self.marks = 0


class QkdTl(RenoSources, Scheme):
    name = "qkdtl-ecn"
    display_name = "QKD-TL (ECN)"
    has_queue_policy = True  # on_dequeue: the shortage check after each send

    def __init__(self, params: dict[str, Any] | None = None, profile: str = "paper"):
        super().__init__(params, profile)
        p = self.p = resolve_params(self.name, profile, self.params, DEFAULTS)
        check_reno(self.name, p)
        if p["shortage"] not in ("doe", "keys"):
            raise QkdbedError(f"scheme {self.name}: parameter 'shortage' must be 'doe' or 'keys', "
                              f"got {p['shortage']!r}")
        if p["port_rate_bps"] is not None and not (isinstance(p["port_rate_bps"], (int, float))
                                                   and p["port_rate_bps"] > 0):
            raise QkdbedError(f"scheme {self.name}: parameter 'port_rate_bps' must be a positive number or null, "
                              f"got {p['port_rate_bps']!r}")
        self._doe = p["shortage"] == "doe"
        self._doe_max = float(p["doe_threshold"])
        self._keys_min = int(p["ecn_threshold_keys"])

    def port_init(self, node, port) -> None:
        port.state = ShortagePort()
        port.rate_bps = None if self.p["port_rate_bps"] is None else float(self.p["port_rate_bps"])

    def on_supply(self, node, port, now: float, units: int) -> None:
        port.state.last_units = units

    def on_enqueue(self, node, port, frame: tuple, upstream, now: float) -> bool:
        src_of = node.state["src_of"]
        if frame[1] not in src_of:  # remember each flow's end nodes once, for the ECNs sent at dequeue
            src_of[frame[1]] = (frame[3], frame[4])
        return True

    def shortage(self, port) -> tuple[bool, float]:
        """(in shortage, DoE or key count) of `port` now."""
        keys = port.keys
        if self._doe:
            n = port.supply_events
            if not n:
                return False, float("nan")
            doe = (keys - port.state.last_units) / (port.supplied / n)
            return doe <= self._doe_max, doe
        return keys < self._keys_min, float(keys)

    def on_dequeue(self, node, port, flow: int, now: float) -> None:
        short, value = self.shortage(port)
        if short:
            port.state.marks += 1
            src, dst = node.state["src_of"][flow]
            self.notify(node, flow, src, MARK, value, dst, now)

    def port_stats(self, node, port) -> dict[str, float]:
        return {"ecn_marks": port.state.marks}


register("qkdtl-ecn", QkdTl, "QKD-TL (ECN)", colour="#1f77b4", marker="s")
