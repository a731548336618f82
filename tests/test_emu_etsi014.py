"""ETSI GS QKD 014 on the emulated testbed: every user node's agent is a KME fed by the relay network.

A testbed comes up with a multi-hop flow (china-metro-12 U1 -> R1 -> R3 -> U7), the real third-party client
`etsi-qkd-014-client` asks Alice's KME (U1) for keys and Bob's KME (U7) for the same key IDs, and the bytes must be
identical; the key handouts travel as KEY_HANDOUT frames over the relays. On the local backend and on Mininet
(isolated network namespaces: the KME handout can only have gone hop by hop through the relays). Negative tests run
against the live agents, and a recipe run records the `keyservice` table in its event log.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("cryptography")
requests = pytest.importorskip("requests")

from conftest import require_backend  # noqa: E402
from test_emu_backends import leftovers  # noqa: E402
from testbed.emu import httpd  # noqa: E402
from testbed.emu.cli import bring_up, parse_flow, tear_down  # noqa: E402
from testbed.emu.etsi014 import api  # noqa: E402
from testbed.record import SCHEMA  # noqa: E402

TOPO = "topologies/china-metro-12.yaml"
ENOUGH_KEYS = 64  # 256-bit keys Alice's KME must hold before we ask (2 s of a 400 kbit/s flow is ~390)


@pytest.fixture(autouse=True)
def _state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("QKDBED_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("QKDBED_TESTBED_DIR", raising=False)


def _require(backend: str) -> None:
    if backend == "mininet":
        from testbed.emu.backends.mininet import available

        ok, why = available()
        require_backend(ok, f"mininet backend unavailable: {why}")


def _creds(d: Path, sae: str) -> tuple[str, str]:
    return str(d / "pki" / f"sae-{sae}.pem"), str(d / "pki" / f"sae-{sae}.key")


def _third_party(d: Path, sae: str, node: str):
    etsi = pytest.importorskip("etsi_qkd_014_client")
    url = json.loads((d / "kme.json").read_text())[node]
    assert url.startswith("https://")
    cert, key = _creds(d, sae)
    return etsi.QKD014Client(url[len("https://"):], cert, key, str(d / "pki" / "ca.pem"))


def _wait_keys(client, slave: str, n: int, timeout_s: float = 20.0) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        code, st = client.get_status(slave)
        assert code == 200
        if st.stored_key_count >= n or time.monotonic() > deadline:
            return st.stored_key_count
        time.sleep(0.1)


def _error_body(resp, status: int) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert isinstance(body.get("message"), str) and body["message"] and set(body) <= {"message", "details"}
    return body


@pytest.fixture
def running(request, tmp_path):
    """A china-metro-12 testbed on the parametrised backend with a 400 kbit/s flow U1 -> U7 (three hops)."""
    backend = request.param
    _require(backend)
    name = f"etsi-{backend}"
    t0 = time.monotonic()
    state, t = bring_up(TOPO, backend, name, duration_s=120, flows=[parse_flow("U1:U7:400k")])
    try:
        yield backend, state, Path(state.data["kme_dir"]), t["up_s"]
    finally:
        dt = tear_down(name)
        print(f"\n{backend}: up {t['up_s']:.2f} s, down {dt:.2f} s, total {time.monotonic() - t0:.2f} s")
        assert leftovers(name, tmp_path / "state") == []


@pytest.mark.backend
@pytest.mark.parametrize("running", ["local", "mininet"], indirect=True)
def test_enc_at_alice_dec_at_bob_identical_over_relays(running):
    backend, state, d, _ = running
    alice, bob = _third_party(d, "U1", "U1"), _third_party(d, "U7", "U7")
    assert _wait_keys(alice, "U7", ENOUGH_KEYS) >= ENOUGH_KEYS
    code, st = alice.get_status("U7")  # the client raises on a missing Status field: a strict format check
    assert code == 200 and (st.source_kme_id, st.target_kme_id, st.master_sae_id, st.slave_sae_id) == \
        ("U1", "U7", "U1", "U7")
    code, simple = alice.get_key("U7")  # GET, server defaults: one 256-bit key
    assert code == 200 and len(simple.keys) == 1 and len(base64.b64decode(simple.keys[0].key)) == 32
    code, many = alice.get_key("U7", number=40, size=512)  # POST; a handout of 40 keys spans several frames
    assert code == 200 and len(many.keys) == 40
    sent = {k.key_id: k.key for k in simple.keys + many.keys}
    assert len(sent) == 41
    code, got = bob.get_key_with_key_IDs("U1", list(sent))
    assert code == 200
    assert {k.key_id: k.key for k in got.keys} == sent  # identical bytes under identical IDs
    # The handouts went hop by hop over the relays as KEY_HANDOUT frames, and nothing was refused.
    nodes = state.data["nodes"]
    s1 = httpd.get_json(nodes["U1"]["control_url"] + "/stats")
    s7 = httpd.get_json(nodes["U7"]["control_url"] + "/stats")
    r3 = httpd.get_json(nodes["R3"]["control_url"] + "/stats")
    assert s1["etsi014.agent.handout_frames_tx"] >= 2 and s1["etsi014.agent.handouts_failed"] == 0
    assert s7["etsi014.agent.handout_frames_rx"] == s1["etsi014.agent.handout_frames_tx"]
    assert s7["etsi014.agent.handout_frames_bad"] == 0 and s7["etsi014.store.handouts_rejected"] == 0
    assert r3["e2e_forwarded"] >= s1["etsi014.agent.handout_frames_tx"]
    assert s1["etsi014.U1.U7.enc_keys_served"] == 41 and s7["etsi014.U1.U7.dec_keys_served"] == 41
    assert s1["etsi014.U1.U7.latency_p99_s"] > 0
    # Prometheus form carries the same counters.
    prom = httpd.request(nodes["U1"]["control_url"] + "/stats?format=prometheus").decode()
    assert "qkdbed_etsi014_U1_U7_enc_keys_served" in prom


@pytest.mark.backend
@pytest.mark.parametrize("running", ["local"], indirect=True)
def test_refusals_on_the_running_agent(running):
    backend, state, d, _ = running
    urls = json.loads((d / "kme.json").read_text())
    ca = str(d / "pki" / "ca.pem")
    alice_kme, bob_kme = urls["U1"], urls["U7"]
    _wait_keys(_third_party(d, "U1", "U1"), "U7", ENOUGH_KEYS)
    s = requests.Session()

    def store(url):
        return requests.get(f"{url}/api/v1/keys/U7/status", cert=_creds(d, "U1"), verify=ca, timeout=5)

    before = store(alice_kme).json()["stored_key_count"]
    # Wrong SAE certificate: U2 is a valid SAE of the testbed, but not one U1's KME serves.
    r = s.get(f"{alice_kme}/api/v1/keys/U7/enc_keys", cert=_creds(d, "U2"), verify=ca, timeout=5)
    _error_body(r, 401)
    # A third SAE asking Bob's KME for keys of the pair U1/U7: U8 is not served by U7's KME -> 401.
    r = s.post(f"{bob_kme}/api/v1/keys/U1/dec_keys", json={"key_IDs": [{"key_ID": str(uuid.uuid4())}]},
               cert=_creds(d, "U8"), verify=ca, timeout=5)
    _error_body(r, 401)
    # Unknown key ID at Bob's KME -> 400 (after waiting the 1 s grace for a handout in flight).
    unknown = str(uuid.uuid4())
    r = s.post(f"{bob_kme}/api/v1/keys/U1/dec_keys", json={"key_IDs": [{"key_ID": unknown}]},
               cert=_creds(d, "U7"), verify=ca, timeout=5)
    assert _error_body(r, 400)["details"] == [{"key_ID": unknown}]
    # Size out of range and malformed JSON -> 400.
    _error_body(s.get(f"{alice_kme}/api/v1/keys/U7/enc_keys?size=12", cert=_creds(d, "U1"), verify=ca,
                      timeout=5), 400)
    _error_body(s.post(f"{alice_kme}/api/v1/keys/U7/enc_keys", data=b"{not json", cert=_creds(d, "U1"),
                       verify=ca, timeout=5, headers={"Content-Type": "application/json"}), 400)
    # No keys available: nothing flows U7 -> U1, so Bob as master has none -> 503; nor U1 -> U2.
    _error_body(s.get(f"{bob_kme}/api/v1/keys/U1/enc_keys", cert=_creds(d, "U7"), verify=ca, timeout=5), 503)
    _error_body(s.get(f"{alice_kme}/api/v1/keys/U2/enc_keys", cert=_creds(d, "U1"), verify=ca, timeout=5), 503)
    # More keys than stored -> 503, and nothing was taken by any refusal (keys only arrive meanwhile).
    _error_body(s.post(f"{alice_kme}/api/v1/keys/U7/enc_keys", json={"number": 128, "size": 8192},
                       cert=_creds(d, "U1"), verify=ca, timeout=5), 503)
    st = httpd.get_json(state.data["nodes"]["U1"]["control_url"] + "/stats")
    assert st["etsi014.store.keys_handed_out_master"] == 0
    assert store(alice_kme).json()["stored_key_count"] >= before
    assert st["etsi014.U1.U7.refused_503"] == 1 and st["etsi014.U1.U2.refused_503"] == 1
    # `qkdbed keys` finds the running testbed by name and checks Bob's copy.
    from click.testing import CliRunner

    from testbed.cli import cli

    res = CliRunner().invoke(cli, ["keys", "get", "--name", state.name, "--from", "U1", "--to", "U7",
                                   "--number", "3"])
    assert res.exit_code == 0, res.output
    assert "identical bytes" in res.output


@pytest.mark.backend
def test_recipe_run_records_keyservice_table(tmp_path):
    """`qkdbed run` on the emulator: the smoke recipe's flow PC4 -> PC6 (PC2 -> PC1 bottleneck) feeds the KMEs,
    an application gets keys during the run, and the merged event log has the per-request `keyservice` rows."""
    from testbed.emu.etsi014.client import Etsi014Client
    from testbed.emu.run import run_emulated
    from testbed.recipe import load_recipe

    assert SCHEMA["keyservice"] == api.KEYSERVICE_SCHEMA
    recipe = load_recipe("experiments/smoke.yaml", ["duration_s=8"])
    got = {}

    def on_started(state, start_unix):
        d = state.data["kme_dir"]
        time.sleep(max(0.0, start_unix + 6.5 - time.time()))  # the flows start at 5 s
        a, b = Etsi014Client.from_testbed(d, "PC4"), Etsi014Client.from_testbed(d, "PC6")
        c = a.enc_keys("PC6", number=4, size_bits=256)
        got["same"] = b.dec_keys("PC4", [k["key_ID"] for k in c["keys"]])["keys"] == c["keys"]
        try:
            a.enc_keys("PC3")  # nothing flows PC4 -> PC3
        except Exception as e:  # noqa: BLE001
            got["refused"] = getattr(e, "status", None)

    log = run_emulated(recipe, "local", tmp_path / "run", name="etsi-run", on_started=on_started)
    assert got == {"same": True, "refused": 503}
    ks = log["keyservice"]
    names = log.node_names
    enc = ks[(ks["method"] == api.METHOD_ENC_KEYS) & (ks["status"] == 200)]
    dec = ks[(ks["method"] == api.METHOD_DEC_KEYS) & (ks["status"] == 200)]
    assert len(enc) == 1 and enc["keys_served"][0] == 4 and names[enc["kme"][0]] == "PC4"
    assert names[enc["master"][0]] == "PC4" and names[enc["slave"][0]] == "PC6"
    assert len(dec) == 1 and dec["keys_served"][0] == 4 and names[dec["kme"][0]] == "PC6"
    refused = ks[ks["status"] == 503]
    assert len(refused) == 1 and names[refused["slave"][0]] == "PC3"
    assert (ks["latency_s"] > 0).all() and (ks["t_s"] > 5).all()
    log.save(tmp_path / "saved")  # the table survives a save/load round trip
    from testbed.record import EventLog

    assert len(EventLog.load(tmp_path / "saved")["keyservice"]) == len(ks)
    assert leftovers("etsi-run", tmp_path / "state") == []
