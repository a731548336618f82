"""`qkdbed keys …`: get keys and key status from a running testbed's KMEs, as an SAE would.

A thin client over the ETSI GS QKD 014 API; it reads the testbed folder written by `qkdbed up` (see pki.py for the
layout). SAE IDs are node names: `--from U1` is SAE U1 at KME U1.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import click

from ...errors import QkdbedError

#: Where `qkdbed up` leaves the running testbed's credentials unless told otherwise.
DEFAULT_TESTBED_DIR = Path(".qkdbed") / "testbed"
TESTBED_DIR_ENV = "QKDBED_TESTBED_DIR"


def default_testbed_dir() -> Path:
    return Path(os.environ.get(TESTBED_DIR_ENV) or DEFAULT_TESTBED_DIR)


def resolve_testbed_dir(testbed_dir: Path | None, name: str | None) -> Path:
    """Where the credentials and kme.json are: `--testbed-dir`; else the running testbed `--name` (its state
    folder, written by `qkdbed up`); else $QKDBED_TESTBED_DIR; else the one running testbed that has KMEs; else
    .qkdbed/testbed."""
    from ..state import State, list_testbeds

    if testbed_dir is not None:
        return testbed_dir
    if name:
        st = State(name)
        if not st.exists:
            raise QkdbedError(f"testbed {name!r} is not up")
        if not st.data.get("kme_dir"):
            raise QkdbedError(f"testbed {name!r} has no ETSI 014 KMEs")
        return Path(st.data["kme_dir"])
    if os.environ.get(TESTBED_DIR_ENV):
        return Path(os.environ[TESTBED_DIR_ENV])
    running = [d for d in (State(n).data.get("kme_dir") for n in list_testbeds()) if d]
    if len(running) == 1:
        return Path(running[0])
    if len(running) > 1:
        raise QkdbedError(f"{len(running)} running testbeds have KMEs: name one with --name")
    return DEFAULT_TESTBED_DIR


def _client(testbed_dir: Path, sae: str, insecure_http: bool):
    from .client import Etsi014Client
    from .pki import read_kme_json

    if not (testbed_dir / "kme.json").is_file():
        raise QkdbedError(f"{testbed_dir / 'kme.json'}: no running testbed here (start one with `qkdbed up`, "
                          f"or pass --testbed-dir / set {TESTBED_DIR_ENV})")
    url = read_kme_json(testbed_dir).get(sae)
    if url is None:
        raise QkdbedError(f"{testbed_dir / 'kme.json'}: node {sae!r} has no KME")
    if url.startswith("http://") and not insecure_http:
        raise QkdbedError(f"KME of {sae} is plain HTTP ({url}); pass --insecure-http to use it anyway")
    try:
        return Etsi014Client.from_testbed(testbed_dir, sae, insecure_http=insecure_http)
    except (OSError, ValueError) as e:
        raise QkdbedError(f"credentials of SAE {sae} in {testbed_dir / 'pki'}: {e}") from None


def _call(fn, *args, **kwargs):
    from .client import Etsi014Error

    try:
        return fn(*args, **kwargs)
    except Etsi014Error as e:
        details = f" {json.dumps(e.body['details'])}" if e.body.get("details") else ""
        raise QkdbedError(f"KME refused ({e.status}): {e.body.get('message')}{details}") from None
    except OSError as e:
        raise QkdbedError(f"cannot reach the KME: {e}") from None


_testbed_opt = click.option("--testbed-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                            help=f"testbed folder with pki/ and kme.json (default: the running testbed --name, "
                                 f"${TESTBED_DIR_ENV}, the only running testbed, or {DEFAULT_TESTBED_DIR})")
_name_opt = click.option("--name", default=None, help="a running testbed (`qkdbed up --name`), by name")
_insecure_opt = click.option("--insecure-http", is_flag=True,
                             help="allow a KME that serves plain HTTP (experiments only)")


@click.group()
def keys() -> None:
    """Get end-to-end keys from the testbed's KMEs over ETSI GS QKD 014 (as an application would)."""


@keys.command("get")
@click.option("--from", "src", required=True, help="master SAE / node (asks its own KME)")
@click.option("--to", "dst", required=True, help="slave SAE / node (the keys are shared with it)")
@click.option("--number", type=click.IntRange(min=1), default=None, help="number of keys (KME default: 1)")
@click.option("--size", "size_bits", type=click.IntRange(min=8), default=None,
              help="key size in bits, a multiple of 8 (KME default: its key_size)")
@click.option("--check/--no-check", default=True,
              help="also fetch the same key IDs from the slave's KME (dec_keys) and compare the bytes")
@click.option("--json", "as_json", is_flag=True, help="print the Key container as JSON")
@click.option("--hex", "as_hex", is_flag=True, help="print keys in hex instead of base64")
@_testbed_opt
@_name_opt
@_insecure_opt
def get_cmd(src, dst, number, size_bits, check, as_json, as_hex, testbed_dir, name, insecure_http) -> None:
    """enc_keys at FROM's KME for keys shared with TO; with --check (default) TO's KME returns the same keys."""
    testbed_dir = resolve_testbed_dir(testbed_dir, name)
    master = _client(testbed_dir, src, insecure_http)
    container = _call(master.enc_keys, dst, number=number, size_bits=size_bits)
    if check:
        slave = _client(testbed_dir, dst, insecure_http)
        ids = [k["key_ID"] for k in container["keys"]]
        other = {k["key_ID"]: k["key"] for k in _call(slave.dec_keys, src, ids)["keys"]}
        bad = [k["key_ID"] for k in container["keys"] if other.get(k["key_ID"]) != k["key"]]
        if bad:
            raise QkdbedError(f"{dst}'s KME returned different bytes for key IDs {bad}")
    if as_json:
        click.echo(json.dumps(container, indent=2))
        return
    for k in container["keys"]:
        shown = base64.b64decode(k["key"]).hex() if as_hex else k["key"]
        click.echo(f"{k['key_ID']}  {shown}")
    if check:
        click.echo(f"# {len(container['keys'])} key(s): {dst}'s KME returned identical bytes (dec_keys)", err=True)


@keys.command("status")
@click.option("--from", "src", required=True, help="master SAE / node (asks its own KME)")
@click.option("--to", "dst", required=True, help="slave SAE / node")
@click.option("--json", "as_json", is_flag=True, help="print the Status object as JSON")
@_testbed_opt
@_name_opt
@_insecure_opt
def status_cmd(src, dst, as_json, testbed_dir, name, insecure_http) -> None:
    """Status of the key supply from FROM to TO (stored keys, sizes, limits)."""
    testbed_dir = resolve_testbed_dir(testbed_dir, name)
    st = _call(_client(testbed_dir, src, insecure_http).status, dst)
    if as_json:
        click.echo(json.dumps(st, indent=2))
        return
    width = max(len(k) for k in st)
    for k, v in st.items():
        click.echo(f"{k:<{width}}  {v}")
