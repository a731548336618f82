"""The ETSI GS QKD 014 REST API over mutual TLS: two KMEs on loopback (U1 owns the units, U7 holds them),
driven by a third-party client from PyPI (`etsi-qkd-014-client`) and by `requests` with client certificates."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import threading
import uuid
from pathlib import Path

import pytest

pytest.importorskip("aiohttp")
requests = pytest.importorskip("requests")

from testbed.emu.etsi014 import api, pki  # noqa: E402
from testbed.emu.etsi014.keystore import UNIT_BYTES, KeyStore  # noqa: E402

SAES = {"alice": "U1", "mallory": "U1", "U1": "U1",
        "bob": "U7", "carol": "U7", "eve": "U7", "U7": "U7",
        "dave": "U4"}


class LoopThread:
    """An asyncio loop in a thread, so synchronous clients (requests, the PyPI client) can call the servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class LoopbackKmes:
    """Two KMEs with mTLS on loopback, their key stores, PKI folder and recorded event rows."""

    def __init__(self, root: Path):
        self.dir = root
        pki.ensure_testbed_pki(root, {"U1": ["localhost", "127.0.0.1"], "U7": ["localhost", "127.0.0.1"]},
                               list(SAES))
        self.a, self.b = KeyStore("U1", SAES), KeyStore("U7", SAES)
        self.handout_delay_s = 0.0
        self.handout_fail = False
        self.a.on_handout = self._relay
        self.rows: list[tuple] = []
        self.lt = LoopThread()
        self.seq = 0
        self.app_a = api.make_app(self.a, "U1", SAES, dec_wait_s=0.5, event_sink=self.rows.append)
        self.app_b = api.make_app(self.b, "U7", SAES, dec_wait_s=0.5, event_sink=self.rows.append)
        self.runners = []
        for app, node in ((self.app_a, "U1"), (self.app_b, "U7")):
            self.runners.append(self.lt.run(api.start_kme_server(app, "127.0.0.1", 0,
                                                                 pki.server_ssl_context(root, node))))
        self.port = {"U1": api.bound_port(self.runners[0]), "U7": api.bound_port(self.runners[1])}
        pki.write_kme_json(root, {n: f"https://127.0.0.1:{p}" for n, p in self.port.items()})

    async def _relay(self, handout) -> None:
        """The relay network carrying the handout control message from U1 to U7 (as JSON)."""
        if self.handout_fail:
            raise ConnectionError("relay path down")
        msg = json.loads(json.dumps(handout.to_message()))
        if self.handout_delay_s:
            asyncio.get_running_loop().call_later(self.handout_delay_s, self.b.register_remote_handout, msg)
        else:
            self.b.register_remote_handout(msg)

    def feed(self, units: int) -> None:
        for _ in range(units):
            u = os.urandom(UNIT_BYTES)
            self.b.add_unit("U1", (1, self.seq), u, "slave")
            self.a.add_unit("U7", (1, self.seq), u, "master")
            self.seq += 1

    def drain(self) -> None:
        """Empty U1's pool toward U7 (so a test controls exactly what is available)."""
        while avail := self.a.snapshot()["owned"].get("U7", (0,))[0]:
            if avail < 8:  # smaller than the smallest key: top up, then take it all
                self.feed(1)
                continue
            _, h = self.a.take_enc_keys("alice", "bob", 1, min(avail, 1024) * 8)
            self.b.register_remote_handout(h)

    def url(self, node: str, sae_path: str, op: str) -> str:
        return f"https://127.0.0.1:{self.port[node]}/api/v1/keys/{sae_path}/{op}"

    def creds(self, sae: str) -> tuple[str, str]:
        p = pki.sae_paths(self.dir, sae)
        return str(p.cert), str(p.key)

    def http(self, method: str, sae: str, node: str, sae_path: str, op: str, **kw) -> requests.Response:
        return requests.request(method, self.url(node, sae_path, op), cert=self.creds(sae),
                                verify=str(pki.ca_paths(self.dir).cert), timeout=5, **kw)

    def snapshot(self):
        return self.a.snapshot(), self.b.snapshot()

    def close(self) -> None:
        for r in self.runners:
            self.lt.run(r.cleanup())
        self.lt.close()


@pytest.fixture(scope="module")
def tb(tmp_path_factory):
    t = LoopbackKmes(tmp_path_factory.mktemp("etsi014"))
    yield t
    t.close()


@pytest.fixture
def fresh(tb):
    """A known pool: 8 units (4096 bytes) from U1 to U7, handouts delivered at once."""
    tb.handout_delay_s, tb.handout_fail = 0.0, False
    tb.drain()
    tb.feed(8)
    return tb


def assert_error_body(resp, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert isinstance(body.get("message"), str) and body["message"]
    assert set(body) <= {"message", "details"}
    if "details" in body:
        assert isinstance(body["details"], list) and all(isinstance(d, dict) for d in body["details"])
    return body


# --- the third-party client ------------------------------------------------------------------------------------
def third_party(tb: LoopbackKmes, sae: str, node: str):
    etsi = pytest.importorskip("etsi_qkd_014_client")
    cert, key = tb.creds(sae)
    return etsi.QKD014Client(f"127.0.0.1:{tb.port[node]}", cert, key, str(pki.ca_paths(tb.dir).cert))


def test_third_party_client_enc_at_alice_dec_at_bob_identical(fresh):
    tb = fresh
    alice, bob = third_party(tb, "alice", "U1"), third_party(tb, "bob", "U7")
    code, status = alice.get_status("bob")  # raises on any missing Status field: a strict format check
    assert code == 200 and status.stored_key_count == 8 * 512 * 8 // 256
    assert (status.source_kme_id, status.target_kme_id, status.master_sae_id, status.slave_sae_id) == \
        ("U1", "U7", "alice", "bob")
    code, simple = alice.get_key("bob")  # GET with server defaults: one key of key_size bits
    assert code == 200 and len(simple.keys) == 1
    assert len(base64.b64decode(simple.keys[0].key)) * 8 == status.key_size
    code, many = alice.get_key("bob", number=5, size=1024)  # POST with a Key request
    assert code == 200 and len(many.keys) == 5
    sent = {k.key_id: k.key for k in simple.keys + many.keys}
    code, got = bob.get_key_with_key_IDs("alice", list(sent))
    assert code == 200
    assert {k.key_id: k.key for k in got.keys} == sent
    code, again = bob.get_key_with_key_IDs("alice", list(sent)[:1])  # served once only
    assert code == 400 and again.message
    code, st2 = alice.get_status("bob")
    assert st2.stored_key_count == status.stored_key_count - 1 - 5 * 1024 // 256


def test_third_party_client_extensions(fresh):
    alice = third_party(fresh, "alice", "U1")
    code, res = alice.get_key("bob", number=1, extension_optional=[{"qkdbed_ignored": 1}])
    assert code == 200 and len(res.keys) == 1
    before = fresh.snapshot()
    code, err = alice.get_key("bob", number=1, extension_mandatory=[{"route_type": "direct"}])
    assert code == 400 and "extension" in err.message
    assert fresh.snapshot() == before


def test_third_party_client_refusals(fresh):
    tb = fresh
    bob_at_u1 = third_party(tb, "bob", "U1")
    assert bob_at_u1.get_status("alice")[0] == 401
    eve = third_party(tb, "eve", "U7")
    code, res = third_party(tb, "alice", "U1").get_key("bob", number=2)
    assert code == 200
    before = tb.snapshot()
    code, err = eve.get_key_with_key_IDs("alice", [k.key_id for k in res.keys])
    assert code == 401 and err.message
    assert tb.snapshot() == before


# --- the same flow with requests: GET/POST forms, multicast, late handouts -------------------------------------
def test_get_and_post_forms(fresh):
    tb = fresh
    r = tb.http("GET", "alice", "U1", "bob", "enc_keys", params={"number": 2, "size": 128})
    assert r.status_code == 200, r.text
    keys = r.json()["keys"]
    assert [set(k) for k in keys] == [{"key_ID", "key"}] * 2
    assert all(len(base64.b64decode(k["key"])) == 16 for k in keys)
    r = tb.http("GET", "bob", "U7", "alice", "dec_keys", params={"key_ID": keys[0]["key_ID"]})
    assert r.status_code == 200 and r.json()["keys"] == keys[:1]
    r = tb.http("POST", "bob", "U7", "alice", "dec_keys", json={"key_IDs": [{"key_ID": keys[1]["key_ID"]}]})
    assert r.status_code == 200 and r.json()["keys"] == keys[1:]
    r = tb.http("POST", "alice", "U1", "bob", "status")
    assert r.status_code == 200 and r.json()["slave_SAE_ID"] == "bob"
    r = tb.http("POST", "alice", "U1", "bob", "enc_keys", data=b"")  # empty body: all defaults
    assert r.status_code == 200 and len(r.json()["keys"]) == 1


def test_multicast_additional_slave(fresh):
    tb = fresh
    r = tb.http("POST", "alice", "U1", "bob", "enc_keys",
                json={"number": 1, "size": 256, "additional_slave_SAE_IDs": ["carol"]})
    assert r.status_code == 200, r.text
    keys = r.json()["keys"]
    ids = {"key_IDs": [{"key_ID": keys[0]["key_ID"]}]}
    assert tb.http("POST", "carol", "U7", "alice", "dec_keys", json=ids).json()["keys"] == keys
    assert tb.http("POST", "bob", "U7", "alice", "dec_keys", json=ids).json()["keys"] == keys
    assert_error_body(tb.http("POST", "eve", "U7", "alice", "dec_keys", json=ids), 400)  # all fetched: gone


def test_dec_keys_waits_for_a_handout_still_on_its_way(fresh):
    tb = fresh
    tb.handout_delay_s = 0.15
    r = tb.http("GET", "alice", "U1", "bob", "enc_keys", params={"number": 3})
    assert r.status_code == 200
    keys = r.json()["keys"]
    r = tb.http("POST", "bob", "U7", "alice", "dec_keys", json={"key_IDs": [{"key_ID": k["key_ID"]} for k in keys]})
    assert r.status_code == 200 and r.json()["keys"] == keys


def test_unreachable_slave_kme_burns_the_keys(fresh):
    tb = fresh
    tb.handout_fail = True
    avail = tb.a.status("alice", "bob")["stored_key_count"]
    slave_before = tb.b.snapshot()
    body = assert_error_body(tb.http("GET", "alice", "U1", "bob", "enc_keys", params={"number": 2}), 503)
    assert "informed" in body["message"]
    # The cut keys were neither given to Alice nor kept: safe, and visible in the count.
    assert tb.a.status("alice", "bob")["stored_key_count"] == avail - 2
    assert tb.b.snapshot() == slave_before


# --- negative tests: standard Error body and an unchanged store --------------------------------------------------
def _issued_ids(tb: LoopbackKmes, n: int = 2) -> list[str]:
    r = tb.http("GET", "alice", "U1", "bob", "enc_keys", params={"number": n})
    assert r.status_code == 200
    return [k["key_ID"] for k in r.json()["keys"]]


NEGATIVE = [
    # (id, status, caller, node, path SAE, op, method, request kwargs)
    ("wrong SAE: bob at alice's KME", 401, "bob", "U1", "alice", "enc_keys", "GET", {}),
    ("wrong SAE: bob asks U1 status", 401, "bob", "U1", "alice", "status", "GET", {}),
    ("SAE of another KME calls dec_keys", 401, "alice", "U7", "alice", "dec_keys", "POST", {"ids": True}),
    ("third SAE asks for alice+bob keys", 401, "eve", "U7", "alice", "dec_keys", "POST", {"ids": True}),
    ("bob names the wrong master", 401, "bob", "U7", "mallory", "dec_keys", "POST", {"ids": True}),
    ("SAE of a KME that is not this one", 401, "dave", "U1", "bob", "enc_keys", "GET", {}),
    ("unknown key ID", 400, "bob", "U7", "alice", "dec_keys", "POST",
     {"json": {"key_IDs": [{"key_ID": "6f3d1b8e-0000-4000-8000-000000000000"}]}}),
    ("unknown key ID (GET)", 400, "bob", "U7", "alice", "dec_keys", "GET",
     {"params": {"key_ID": "6f3d1b8e-0000-4000-8000-000000000000"}}),
    ("key ID not a UUID", 400, "bob", "U7", "alice", "dec_keys", "GET", {"params": {"key_ID": "xyz"}}),
    ("dec_keys without key_ID", 400, "bob", "U7", "alice", "dec_keys", "GET", {}),
    ("dec_keys empty key_IDs", 400, "bob", "U7", "alice", "dec_keys", "POST", {"json": {"key_IDs": []}}),
    ("dec_keys key_IDs wrong type", 400, "bob", "U7", "alice", "dec_keys", "POST", {"json": {"key_IDs": ["a"]}}),
    ("size too large", 400, "alice", "U1", "bob", "enc_keys", "GET", {"params": {"size": 8200}}),
    ("size too small", 400, "alice", "U1", "bob", "enc_keys", "POST", {"json": {"size": 8}}),
    ("size not a multiple of 8", 400, "alice", "U1", "bob", "enc_keys", "GET", {"params": {"size": 257}}),
    ("size not a multiple of 8 (POST)", 400, "alice", "U1", "bob", "enc_keys", "POST", {"json": {"size": 100}}),
    ("size negative", 400, "alice", "U1", "bob", "enc_keys", "GET", {"params": {"size": "-256"}}),
    ("size not a number", 400, "alice", "U1", "bob", "enc_keys", "POST", {"json": {"size": "256"}}),
    ("number zero", 400, "alice", "U1", "bob", "enc_keys", "GET", {"params": {"number": 0}}),
    ("number above max_key_per_request", 400, "alice", "U1", "bob", "enc_keys", "POST", {"json": {"number": 129}}),
    ("number a float", 400, "alice", "U1", "bob", "enc_keys", "POST", {"json": {"number": 1.5}}),
    ("no keys available", 503, "alice", "U1", "bob", "enc_keys", "POST", {"json": {"number": 128, "size": 8192}}),
    ("malformed JSON", 400, "alice", "U1", "bob", "enc_keys", "POST",
     {"data": b'{"number": 1,', "headers": {"Content-Type": "application/json"}}),
    ("JSON not an object", 400, "alice", "U1", "bob", "enc_keys", "POST", {"json": [1, 2]}),
    ("malformed JSON at dec_keys", 400, "bob", "U7", "alice", "dec_keys", "POST", {"data": b"key_IDs=1"}),
    ("unknown slave SAE", 400, "alice", "U1", "nobody", "enc_keys", "GET", {}),
    ("slave SAE at the same KME", 400, "alice", "U1", "mallory", "enc_keys", "GET", {}),
    ("multicast to another KME's SAE", 400, "alice", "U1", "bob", "enc_keys", "POST",
     {"json": {"additional_slave_SAE_IDs": ["dave"]}}),
    ("too many additional slaves", 400, "alice", "U1", "bob", "enc_keys", "POST",
     {"json": {"additional_slave_SAE_IDs": ["carol", "eve", "U7", "x", "y"]}}),
    ("additional_slave_SAE_IDs not an array", 400, "alice", "U1", "bob", "enc_keys", "POST",
     {"json": {"additional_slave_SAE_IDs": "carol"}}),
    ("unsupported mandatory extension", 400, "alice", "U1", "bob", "enc_keys", "POST",
     {"json": {"extension_mandatory": [{"abc_route_type": "direct"}]}}),
    ("unknown method path", 404, "alice", "U1", "bob", "keys", "GET", {}),
    ("wrong HTTP method", 405, "alice", "U1", "bob", "enc_keys", "PUT", {}),
]


@pytest.mark.parametrize("case", NEGATIVE, ids=[c[0] for c in NEGATIVE])
def test_refusals_have_error_body_and_change_nothing(fresh, case):
    tb = fresh
    _, status, caller, node, path_sae, op, method, kw = case
    kw = dict(kw)
    if kw.pop("ids", False):
        kw["json"] = {"key_IDs": [{"key_ID": k} for k in _issued_ids(tb)]}
    before = tb.snapshot()
    resp = tb.http(method, caller, node, path_sae, op, **kw)
    assert_error_body(resp, status)
    assert tb.snapshot() == before


def test_tls_refuses_clients_without_a_testbed_client_certificate(fresh, tmp_path):
    """Refused during the TLS handshake (no HTTP answer at all): no certificate, a certificate from another CA,
    or a KME's server certificate used as a client (no clientAuth usage)."""
    tb = fresh
    ca = str(pki.ca_paths(tb.dir).cert)
    url = tb.url("U1", "bob", "status")
    refused = requests.exceptions.ConnectionError  # SSLError or a reset, depending on the TLS version
    with pytest.raises(refused):
        requests.get(url, verify=ca, timeout=5)
    other = tmp_path / "other"
    pki.ensure_testbed_pki(other, {}, ["alice"])  # same CN, different CA
    p = pki.sae_paths(other, "alice")
    with pytest.raises(refused):
        requests.get(url, cert=(str(p.cert), str(p.key)), verify=ca, timeout=5)
    k = pki.kme_paths(tb.dir, "U7")
    with pytest.raises(refused):
        requests.get(url, cert=(str(k.cert), str(k.key)), verify=ca, timeout=5)
    # ... and the SAE checks the KME: a client trusting another CA refuses this KME.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url, cert=tb.creds("alice"), verify=str(pki.ca_paths(other).cert), timeout=5)
    assert requests.get(url, cert=tb.creds("alice"), verify=ca, timeout=5).status_code == 200


# --- statistics and event rows --------------------------------------------------------------------------------
def test_stats_and_event_rows(fresh):
    tb = fresh
    tb.rows.clear()
    ids = _issued_ids(tb, 3)
    assert tb.http("POST", "bob", "U7", "alice", "dec_keys", json={"key_IDs": [{"key_ID": k} for k in ids]}).ok
    assert tb.http("GET", "alice", "U1", "bob", "enc_keys", params={"size": 7}).status_code == 400
    assert len(tb.rows) == 3 and all(len(r) == len(api.KEYSERVICE_SCHEMA) for r in tb.rows)
    cols = [c for c, _ in api.KEYSERVICE_SCHEMA]
    enc, dec, bad = (dict(zip(cols, r)) for r in tb.rows)
    assert (enc["method"], enc["status"], enc["keys_requested"], enc["keys_served"], enc["size_bits"]) == \
        (api.METHOD_ENC_KEYS, 200, 3, 3, 256)
    assert (dec["method"], dec["status"], dec["keys_served"]) == (api.METHOD_DEC_KEYS, 200, 3)
    assert dec["master"] == enc["master"] >= 0 and dec["slave"] == enc["slave"] >= 0 and dec["kme"] != enc["kme"]
    assert (bad["status"], bad["keys_served"]) == (400, 0)
    assert all(r[-1] >= 0 and r[0] >= 0 for r in tb.rows)
    s = api.stats(tb.app_a)
    assert s["etsi014.alice.bob.enc_keys_served"] >= 3 and s["etsi014.alice.bob.refused_400"] >= 1
    assert s["etsi014.alice.bob.latency_p99_s"] >= s["etsi014.alice.bob.latency_p50_s"] > 0
    assert all(isinstance(v, (int, float)) for v in s.values())
    assert api.stats(tb.app_b)["etsi014.alice.bob.dec_keys_served"] >= 3


# --- the thin client and `qkdbed keys` --------------------------------------------------------------------------
def test_thin_client_and_cli(fresh):
    from click.testing import CliRunner

    from testbed.cli import cli as qkdbed_cli
    from testbed.cli import Group
    from testbed.emu.etsi014.cli import keys
    from testbed.emu.etsi014.client import Etsi014Client, Etsi014Error

    tb = fresh
    c1 = Etsi014Client.from_testbed(tb.dir, "U1")
    c7 = Etsi014Client.from_testbed(tb.dir, "U7")
    cont = c1.enc_keys("U7", number=2, size_bits=512)
    assert c7.dec_keys("U1", [k["key_ID"] for k in cont["keys"]]) == cont
    with pytest.raises(Etsi014Error) as e:
        c1.enc_keys("U7", size_bits=12)
    assert e.value.status == 400 and e.value.body["message"]

    root = qkdbed_cli if "keys" in getattr(qkdbed_cli, "commands", {}) else Group("qkdbed", commands=[keys])
    runner = CliRunner()
    r = runner.invoke(root, ["keys", "status", "--from", "U1", "--to", "U7", "--testbed-dir", str(tb.dir)])
    assert r.exit_code == 0, r.output
    assert "stored_key_count" in r.output
    r = runner.invoke(root, ["keys", "get", "--from", "U1", "--to", "U7", "--number", "2", "--size", "512",
                             "--json", "--testbed-dir", str(tb.dir)])
    assert r.exit_code == 0, r.output
    container = json.loads(r.stdout)
    assert len(container["keys"]) == 2 and all(uuid.UUID(k["key_ID"]) for k in container["keys"])
    r = runner.invoke(root, ["keys", "get", "--from", "U1", "--to", "U7", "--size", "12",
                             "--testbed-dir", str(tb.dir)])
    assert r.exit_code == 2 and "KME refused (400)" in r.output
    r = runner.invoke(root, ["keys", "status", "--from", "U1", "--to", "U7", "--testbed-dir", str(tb.dir / "x")])
    assert r.exit_code == 2 and "no running testbed" in r.output


# --- insecure HTTP: explicit only -------------------------------------------------------------------------------
def test_insecure_http_mode_is_explicit(tb):
    with pytest.raises(ValueError):
        tb.lt.run(api.start_kme_server(api.make_app(KeyStore("U1", SAES)), "127.0.0.1", 0, None))
    ks = KeyStore("U1", SAES)
    ks.add_unit("U7", "u", os.urandom(UNIT_BYTES), "master")
    app = api.make_app(ks, insecure_http=True)
    with pytest.raises(ValueError):
        tb.lt.run(api.start_kme_server(app, "127.0.0.1", 0, pki.server_ssl_context(tb.dir, "U1")))
    runner = tb.lt.run(api.start_kme_server(app, "127.0.0.1", 0, None))
    try:
        url = f"http://127.0.0.1:{api.bound_port(runner)}/api/v1/keys/bob/enc_keys"
        assert_error_body(requests.get(url, timeout=5), 401)
        r = requests.get(url, headers={api.INSECURE_SAE_HEADER: "alice"}, timeout=5)
        assert r.status_code == 200 and len(r.json()["keys"]) == 1
        from testbed.emu.etsi014.client import Etsi014Client

        with pytest.raises(ValueError):
            Etsi014Client(f"http://127.0.0.1:{api.bound_port(runner)}", "alice")
    finally:
        tb.lt.run(runner.cleanup())


def test_server_context_must_require_client_certificates(tb):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with pytest.raises(ValueError):
        tb.lt.run(api.start_kme_server(api.make_app(KeyStore("U1", SAES)), "127.0.0.1", 0, ctx))


def test_pki_layout_and_permissions(tb):
    d = tb.dir / "pki"
    for name in ("ca.key", "kme-U1.key", "sae-alice.key"):
        assert (d / name).stat().st_mode & 0o777 == 0o600
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((d / "kme-U1.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    sae = x509.load_pem_x509_certificate((d / "sae-alice.pem").read_bytes())
    assert sae.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value == "alice"
    assert json.loads((tb.dir / "kme.json").read_text())["U1"].startswith("https://127.0.0.1:")
