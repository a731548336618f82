"""qkdbed: a testbed for key management and service in trusted-relay QKD networks.

One sans-I/O node model (`testbed.node`) driven by two runtimes: a discrete-event simulator (`testbed.sim`)
and an emulated testbed of real processes (`testbed.emu`).
"""

__version__ = "0.1.0"
