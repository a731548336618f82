"""`qkdbed topo render`: the Compose file, Mininet script and Kubernetes manifests describe the topology and come
with agent configurations whose addresses agree with them."""

from __future__ import annotations

import json

import yaml
from click.testing import CliRunner

from testbed.cli import cli
from testbed.network import load_topology


def test_compose_has_one_service_per_node_and_one_network_per_link(tmp_path):
    res = CliRunner().invoke(cli, ["topo", "render", "china-metro-12", "--format", "compose", "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    doc = yaml.safe_load((tmp_path / "compose.yaml").read_text())
    topo = load_topology("china-metro-12")
    assert len(doc["services"]) == 12 + 1  # + the injector
    assert len(doc["networks"]) == len(topo.links) + 1  # + management
    r1 = json.loads((tmp_path / "config" / "R1.json").read_text())
    svc = doc["services"]["qkdbed-china-metro-12-r1"]
    # R1 dials R2 at the address the compose file gives R2 on their link's network
    r2 = doc["services"]["qkdbed-china-metro-12-r2"]["networks"]
    assert r1["neighbours"]["R2"]["host"] in {v["ipv4_address"] for v in r2.values()}
    assert r1["control"]["host"] == svc["networks"]["mgmt"]["ipv4_address"]


def test_k8s_manifests_and_mininet_script(tmp_path):
    res = CliRunner().invoke(cli, ["topo", "render", "barbell-7", "--format", "k8s"])
    assert res.exit_code == 0, res.output
    docs = [d for d in yaml.safe_load_all(res.output) if d]
    kinds = [d["kind"] for d in docs]
    assert kinds.count("Pod") == 7 and kinds.count("Service") == 7 and kinds.count("ConfigMap") == 1
    cfg = json.loads(docs[0]["data"]["PC1.json"])
    assert cfg["neighbours"]["PC2"]["host"] == "qkdbed-barbell-7-pc2" and cfg["listen"] == ["0.0.0.0"]
    res = CliRunner().invoke(cli, ["topo", "render", "barbell-7", "--format", "mininet", "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    script = (tmp_path / "testbed.py").read_text()
    compile(script, "testbed.py", "exec")
    assert script.count("net.addLink(") == 5 + 6 and "controller=None" in script and "cleanup()" not in script.split("\"\"\"")[2]
    assert (tmp_path / "config" / "injector.json").is_file()
