"""`ondemand`: the naive key supply the paper argues against (seed 000 §II-B).

Any flow may drain the pool; the port is limited only by the classical channel; queues are unbounded; sources
send every offered message at once. This is the base `Scheme` with no overrides, registered by name.
"""

from .base import Scheme, register


class OnDemand(Scheme):
    name = "ondemand"
    display_name = "On-demand"


register("ondemand", OnDemand, "On-demand", colour="#7f7f7f", marker="x")
