"""A thin ETSI GS QKD 014 client (standard library only) used by `qkdbed keys` and usable from scripts.

    c = Etsi014Client.from_testbed(testbed_dir, sae_id="U1", node="U1")
    container = c.enc_keys("U7", number=2, size_bits=256)     # as master SAE U1, keys shared with SAE U7
    keys = Etsi014Client.from_testbed(testbed_dir, "U7", "U7").dec_keys("U1", [k["key_ID"] for k in container["keys"]])

It speaks exactly what the server does: JSON bodies in the standard's formats, mutual TLS with the SAE's
certificate (or, in the explicit insecure-HTTP mode, the `X-SAE-ID` header). A non-200 answer raises
`Etsi014Error` carrying the status and the standard's Error body.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from .api import API_PREFIX, INSECURE_SAE_HEADER
from .pki import client_ssl_context, read_kme_json

#: Seconds to wait for a KME: it answers in milliseconds when healthy; dec_keys may wait up to a second for a
#: handout still on its way.
DEFAULT_TIMEOUT_S = 10.0


class Etsi014Error(Exception):
    """A KME refused the request: `status` (400/401/503/…) and the Error body (`message`, optional `details`)."""

    def __init__(self, status: int, body: dict[str, Any]):
        self.status = status
        self.body = body
        super().__init__(f"KME answered {status}: {body.get('message', body)}")


class Etsi014Client:
    """One SAE talking to one KME."""

    def __init__(self, base_url: str, sae_id: str, ssl_context: ssl.SSLContext | None = None, *,
                 insecure_http: bool = False, timeout_s: float = DEFAULT_TIMEOUT_S):
        scheme = urllib.parse.urlsplit(base_url).scheme
        if scheme == "http" and not insecure_http:
            raise ValueError(f"{base_url} is plain HTTP: pass insecure_http=True to use it deliberately")
        if scheme == "https" and ssl_context is None:
            raise ValueError("an https KME needs the SAE's ssl_context (client certificate and testbed CA)")
        self.base_url = base_url.rstrip("/")
        self.sae_id = sae_id
        self.ssl_context = ssl_context
        self.insecure_http = insecure_http
        self.timeout_s = timeout_s

    @classmethod
    def from_testbed(cls, testbed_dir: Path | str, sae_id: str, node: str | None = None, *,
                     insecure_http: bool = False) -> "Etsi014Client":
        """A client for SAE `sae_id` at the KME of `node` (default: the node named like the SAE), using the
        testbed folder's kme.json and pki/ credentials."""
        node = node or sae_id
        urls = read_kme_json(testbed_dir)
        if node not in urls:
            raise KeyError(f"node {node!r} has no KME in {Path(testbed_dir) / 'kme.json'} (known: {sorted(urls)})")
        url = urls[node]
        ctx = None if url.startswith("http://") else client_ssl_context(testbed_dir, sae_id)
        return cls(url, sae_id, ctx, insecure_http=insecure_http)

    def _call(self, method: str, sae_id: str, op: str, query: dict[str, Any] | None = None,
              body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.base_url}{API_PREFIX}/{urllib.parse.quote(sae_id, safe='')}/{op}"
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.insecure_http:
            req.add_header(INSECURE_SAE_HEADER, self.sae_id)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s, context=self.ssl_context) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                err = json.loads(raw)
            except ValueError:
                err = {"message": raw.decode(errors="replace")}
            raise Etsi014Error(e.code, err) from None

    def status(self, slave_sae_id: str) -> dict[str, Any]:
        """Status of the key supply between this (master) SAE and `slave_sae_id`."""
        return self._call("GET", slave_sae_id, "status")

    def enc_keys(self, slave_sae_id: str, number: int | None = None, size_bits: int | None = None,
                 additional_slave_sae_ids: list[str] | None = None) -> dict[str, Any]:
        """Get keys as master SAE (a Key container). Uses GET when only number/size are given, as the standard's
        simple form; POST with a Key request body otherwise."""
        if additional_slave_sae_ids:
            body: dict[str, Any] = {"additional_slave_SAE_IDs": list(additional_slave_sae_ids)}
            if number is not None:
                body["number"] = number
            if size_bits is not None:
                body["size"] = size_bits
            return self._call("POST", slave_sae_id, "enc_keys", body=body)
        query = {k: v for k, v in (("number", number), ("size", size_bits)) if v is not None}
        return self._call("GET", slave_sae_id, "enc_keys", query=query)

    def dec_keys(self, master_sae_id: str, key_ids: list[str]) -> dict[str, Any]:
        """Get keys by key_ID as slave SAE (a Key container)."""
        return self._call("POST", master_sae_id, "dec_keys", body={"key_IDs": [{"key_ID": k} for k in key_ids]})
