"""Addresses and wiring for backends that give each node its own network namespace (Mininet hosts, containers).

Data plane: one veth pair per topology link, a /30 per link out of 10.X.0.0/16. Agents only ever talk to their
direct neighbours (end-to-end frames are relayed by the agents themselves), so nodes need no routes and no IP
forwarding, and no node can reach a non-neighbour: the topology is enforced by the kernel.

Management plane: one veth pair per node between the root namespace and the node, a /30 per node out of
100.M.0.0/16 (M in 64..127, carrier-grade NAT space, which nothing else on a test machine uses). The controller
reaches each agent's control endpoint and the injector (in the root namespace) reaches... rather, is reached by
each agent over it. The root namespace does not forward between management links (we never enable forwarding),
so it is not a back door between nodes.

Every interface name starts with the testbed's short tag (`tag_for`), so `down` can find exactly ours.
"""

from __future__ import annotations

import zlib

from ..lab import AddressPlan, Lab, name_octet

IFNAMSIZ = 15


def tag_for(name: str) -> str:
    """A 5-character interface-name prefix unique to the testbed name ('q' + 4 base-36 digits)."""
    n = zlib.crc32(name.encode()) % (36 ** 4)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    s = ""
    for _ in range(4):
        n, r = divmod(n, 36)
        s = digits[r] + s
    return "q" + s


def _addr(prefix: str, k: int, host: int) -> str:
    base = 4 * k
    return f"{prefix}.{base // 256}.{base % 256 + host}"


def mgmt_octet(name: str, taken: set[int] = frozenset()) -> int:
    m = name_octet(name, 64, 127)
    while m in taken:
        m = 64 + (m - 63) % 64
    return m


def plan_netns(lab: Lab, shaped: bool = False, taken_mgmt: set[int] = frozenset()) -> tuple[AddressPlan, dict]:
    """The address plan and a wiring description (`links`, `mgmt`) a backend carries out."""
    x = name_octet(lab.name, 0, 255)
    m = mgmt_octet(lab.name, taken_mgmt)
    data, mgmt = f"10.{x}", f"100.{m}"
    tag = tag_for(lab.name)
    link_addr, links = {}, []
    for l in lab.links:
        aa, ab = _addr(data, l.index, 1), _addr(data, l.index, 2)
        link_addr[(l.a, l.b)], link_addr[(l.b, l.a)] = aa, ab
        links.append({"index": l.index, "a": l.a, "b": l.b, "addr_a": aa, "addr_b": ab,
                      "if_a": f"{tag}l{l.index}a", "if_b": f"{tag}l{l.index}b", "bandwidth_bps": l.bandwidth_bps})
    ctl, root_side, wiring_mgmt = {}, [], {}
    for i, n in enumerate(lab.node_names):
        r, h = _addr(mgmt, i, 1), _addr(mgmt, i, 2)
        ctl[n] = h
        root_side.append(r)
        wiring_mgmt[n] = {"index": i, "root_addr": r, "node_addr": h, "if_root": f"{tag}m{i}", "if_node": f"{tag}m{i}n"}
    plan = AddressPlan(link_addr=link_addr, control_host=ctl, injector_listen=root_side,
                       injector_for={n: wiring_mgmt[n]["root_addr"] for n in lab.node_names},
                       injector_control=root_side[0], shaped_links=shaped)
    for w in list(wiring_mgmt.values()) + links:
        for k in ("if_a", "if_b", "if_root", "if_node"):
            if k in w:
                assert len(w[k]) <= IFNAMSIZ, w[k]
    return plan, {"tag": tag, "mgmt_octet": m, "links": links, "mgmt": wiring_mgmt}


def taken_mgmt_octets() -> set[int]:
    """Management /16s already in use in the root namespace (another testbed's), to avoid them."""
    try:
        from pyroute2 import IPRoute
    except ImportError:
        return set()
    out = set()
    with IPRoute() as ipr:
        for a in ipr.get_addr(family=2):
            ip = a.get_attr("IFA_ADDRESS") or ""
            parts = ip.split(".")
            if len(parts) == 4 and parts[0] == "100" and 64 <= int(parts[1]) <= 127:
                out.add(int(parts[1]))
    return out


def wire_namespaces(wiring: dict, ns_of: dict[str, str]) -> None:
    """Create and address every veth of `wiring`; `ns_of[node]` is a netns path such as /proc/PID/ns/net.

    Used by the Docker backend (Mininet makes its own links through its API)."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        for l in wiring["links"]:
            ipr.link("add", ifname=l["if_a"], kind="veth", peer={"ifname": l["if_b"]})
            for end, ifn in (("a", l["if_a"]), ("b", l["if_b"])):
                idx = ipr.link_lookup(ifname=ifn)[0]
                ipr.link("set", index=idx, net_ns_fd=ns_of[l[end]])
        for n, m in wiring["mgmt"].items():
            ipr.link("add", ifname=m["if_root"], kind="veth", peer={"ifname": m["if_node"]})
            ridx = ipr.link_lookup(ifname=m["if_root"])[0]
            ipr.addr("add", index=ridx, address=m["root_addr"], prefixlen=30)
            ipr.link("set", index=ridx, state="up")
            ipr.link("set", index=ipr.link_lookup(ifname=m["if_node"])[0], net_ns_fd=ns_of[n])
    per_node: dict[str, list[tuple[str, str]]] = {n: [] for n in ns_of}
    for l in wiring["links"]:
        per_node[l["a"]].append((l["if_a"], l["addr_a"]))
        per_node[l["b"]].append((l["if_b"], l["addr_b"]))
    for n, m in wiring["mgmt"].items():
        per_node[n].append((m["if_node"], m["node_addr"]))
    for n, ifs in per_node.items():
        with IPRoute(netns=ns_of[n]) as ns:
            lo = ns.link_lookup(ifname="lo")
            if lo:
                ns.link("set", index=lo[0], state="up")
            for ifn, addr in ifs:
                idx = ns.link_lookup(ifname=ifn)[0]
                ns.addr("add", index=idx, address=addr, prefixlen=30)
                ns.link("set", index=idx, state="up")


def delete_root_interfaces(names: list[str]) -> None:
    """Delete those of `names` that still exist in the root namespace (a veth's peer goes with it)."""
    try:
        from pyroute2 import IPRoute
    except ImportError:
        return
    with IPRoute() as ipr:
        for n in names:
            idx = ipr.link_lookup(ifname=n)
            if idx:
                try:
                    ipr.link("del", index=idx[0])
                except Exception:  # gone meanwhile (its namespace died)
                    pass


def root_interfaces_with_prefix(tag: str) -> list[str]:
    try:
        from pyroute2 import IPRoute
    except ImportError:
        return []
    with IPRoute() as ipr:
        return [l.get_attr("IFLA_IFNAME") for l in ipr.get_links()
                if (l.get_attr("IFLA_IFNAME") or "").startswith(tag)]
