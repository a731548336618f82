"""The emulated runtime: node agents on real sockets, a key injector, and backends that place them.

`lab.py` (what to run) -> a backend (`backends/`: where and how: local processes, Mininet hosts, containers)
-> `control.py` (health gate, start, watch, collect over the agents' HTTP endpoints) -> one event log in the
simulator's format (`run.py`). `agent.py` and `injector.py` are the processes themselves.
"""
