"""The hooks a key-management scheme fills, and the registry that names schemes.

Like Linux's `tcp_congestion_ops`, a scheme is a small table of callbacks. The node calls them at fixed points of
its pipeline (seed 000 Fig. 5: authenticate -> congestion control -> route -> per-flow queue -> schedule):

- key-supply rate control, per egress port: `on_supply`, `on_tick` set `port.rate_bps` (None = no limit beyond
  the classical channel);
- queue policy, per egress port: `on_enqueue` accepts or refuses (drops) a message, `on_dequeue` observes a send;
- congestion control, per flow at the source: `release` says how many offered messages may enter the network now
  and when to ask again; `on_ack` and `on_control` feed it signals;
- scheduler: round-robin or weighted round-robin between the per-flow queues of a port (in the node);
- router: `route` picks the next hop of a relayed message (default: the shortest-path table);
- control frames the scheme defines (PAUSE, ECN, PROBE, ...) reach `on_control`.

The default implementation of every hook is the naive behaviour the paper calls on-demand key supply: any flow may
drain the pool, the port is limited only by the classical channel, queues are unbounded.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

from ..errors import QkdbedError

if TYPE_CHECKING:  # pragma: no cover
    from ..node.node import Node, Port, SourceFlow

INF = math.inf


class Scheme:
    """Base scheme = on-demand key supply. Subclasses override only the hooks they need."""

    name = "ondemand"
    display_name = "On-demand"
    #: period of `on_tick` in seconds (None: no periodic tick)
    tick_s: float | None = None
    #: whether `on_enqueue`/`on_dequeue` must be called (skipped on the hot path when False)
    has_queue_policy = False
    #: whether the source needs end-to-end ACKs fed to congestion control
    wants_acks = True

    def __init__(self, params: dict[str, Any] | None = None, profile: str = "paper"):
        self.params = dict(params or {})
        self.profile = profile

    # -- node lifecycle ----------------------------------------------------------------------------------------
    def attach(self, node: "Node") -> None:
        """Called once when the node is built; create per-node state here."""

    def port_init(self, node: "Node", port: "Port") -> None:
        """Create per-port state (`port.state`)."""

    def flow_init(self, node: "Node", flow: "SourceFlow") -> None:
        """Create per-flow congestion-control state at the source (`flow.cc`)."""

    # -- key-supply rate control ---------------------------------------------------------------------------------
    def on_supply(self, node: "Node", port: "Port", now: float, units: int) -> None:
        """Keys were added to the port's pools."""

    def on_tick(self, node: "Node", now: float) -> None:
        """Periodic update every `tick_s` (e.g. AUTO's T)."""

    # -- queue policy --------------------------------------------------------------------------------------------
    def on_enqueue(self, node: "Node", port: "Port", frame: tuple, upstream: str | None, now: float) -> bool:
        """Return False to refuse (drop) the message. Called only when `has_queue_policy`."""
        return True

    def on_dequeue(self, node: "Node", port: "Port", flow: int, now: float) -> None:
        """A message of `flow` was sent on `port`. Called only when `has_queue_policy`."""

    def route(self, node: "Node", frame: tuple, came_from: str | None, now: float) -> str | None:
        """Router hook: the neighbour a relayed DATA frame goes to next (None: no route, the frame is dropped).

        Default: the node's shortest-path table (hops or km, from the recipe). A key-aware router overrides this,
        e.g. to prefer the neighbour whose master pool holds more keys; the simulator skips the call when the
        scheme does not override it."""
        return node.next_hop.get(frame[4])

    def may_send(self, node: "Node", port: "Port", flow: int, now: float) -> bool:
        """Per-flow eligibility at send time beyond pause state (e.g. RSVP tokens). Default: yes."""
        return True

    # -- congestion control at the source ----------------------------------------------------------------------
    def release(self, node: "Node", flow: "SourceFlow", now: float, backlog: int) -> tuple[int, float]:
        """How many of `backlog` offered messages may enter the source's egress queue now, and the next time to
        ask again when some remain (INF: wait for an event such as an ACK). On-demand: all, at once."""
        return backlog, INF

    def on_ack(self, node: "Node", flow: "SourceFlow", frame: tuple, now: float) -> None:
        """An end-to-end ACK for one of `flow`'s messages reached the source."""

    def on_control(self, node: "Node", peer: str | None, frame: tuple, now: float) -> None:
        """A control frame of this scheme arrived (peer None: it came end to end)."""

    def on_deliver(self, node: "Node", frame: tuple, now: float) -> None:
        """A DATA frame reached its destination (before the ACK is sent)."""

    def on_timer(self, node: "Node", now: float, key: tuple) -> None:
        """A timer the scheme armed with `node.set_timer(when, key)` fired (key[0] >= TIMER_SCHEME)."""

    def on_flow_end(self, node: "Node", flow: "SourceFlow", now: float) -> None:
        """The source has sent the last message of a finite flow and it was acknowledged."""

    # -- introspection ------------------------------------------------------------------------------------------
    def port_stats(self, node: "Node", port: "Port") -> dict[str, float]:
        """Extra per-port numbers for samples and the control endpoint."""
        return {}


_REGISTRY: dict[str, Callable[..., Scheme]] = {}
_INFO: dict[str, dict[str, str]] = {}


def register(name: str, factory: Callable[..., Scheme], display_name: str, colour: str, marker: str) -> None:
    """Register a scheme under `name`, with how every figure shows it (Pantheon-style: one registry, reused)."""
    _REGISTRY[name] = factory
    _INFO[name] = {"display_name": display_name, "colour": colour, "marker": marker}


def create(name: str, params: dict[str, Any] | None = None, profile: str = "paper") -> Scheme:
    _ensure_loaded()
    if name not in _REGISTRY:
        raise QkdbedError(f"unknown scheme {name!r} (known: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name](params, profile)


def names() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def info(name: str) -> dict[str, str]:
    _ensure_loaded()
    return _INFO.get(name, {"display_name": name, "colour": "grey", "marker": "o"})


_LOADED = False


def _ensure_loaded() -> None:
    """Import every module of the schemes package once; each registers its schemes."""
    global _LOADED
    if _LOADED:
        return
    import importlib
    import pkgutil

    from .. import schemes

    for m in pkgutil.iter_modules(schemes.__path__):
        if m.name != "base" and not m.name.startswith("_"):
            importlib.import_module(f"{schemes.__name__}.{m.name}")
    _LOADED = True
