"""ETSI GS QKD 014 key delivery: each user node's agent is a KME serving its SAEs over a REST API.

- `keystore`: end-to-end key units shared with peer KMEs, cut into keys; the handout hook that keeps both KMEs'
  key_IDs and bytes identical (read its docstring first).
- `api`: the aiohttp REST server (`make_app`, `start_kme_server`), statistics and event rows.
- `pki`: the testbed CA, KME and SAE certificates, TLS contexts, the testbed folder layout.
- `client`: a thin standard-library client; `cli`: the `qkdbed keys` commands.

Names are imported lazily so that `qkdbed --help` works without the `emu` extra (aiohttp, cryptography).
"""

from __future__ import annotations

_EXPORTS = {
    "KeyStore": "keystore", "Handout": "keystore", "KeyStoreError": "keystore", "unit_key": "keystore",
    "make_app": "api", "start_kme_server": "api", "bound_port": "api", "stats": "api",
    "KEYSERVICE_SCHEMA": "api",
    "ensure_testbed_pki": "pki", "server_ssl_context": "pki", "client_ssl_context": "pki",
    "write_kme_json": "pki",
    "Etsi014Client": "client", "Etsi014Error": "client",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
