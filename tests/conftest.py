"""Shared test fixtures and the backend-skip policy.

Backend tests (root, mininet, docker) may skip locally with a clear reason; under QKDBED_REQUIRE_BACKENDS=1
(set by .ci/run) any such skip is turned into a failure, so CI can never pass by skipping them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
KEYTRACE_DIR = SHARED / "data" / "keytrace"
REQUIRE_BACKENDS = os.environ.get("QKDBED_REQUIRE_BACKENDS") == "1"


def require_backend(ok: bool, reason: str) -> None:
    """Skip (locally) or fail (in CI) when a backend prerequisite is missing."""
    if ok:
        return
    if REQUIRE_BACKENDS:
        pytest.fail(f"backend required (QKDBED_REQUIRE_BACKENDS=1) but unavailable: {reason}")
    pytest.skip(reason)


@pytest.fixture
def keytrace_dir() -> Path:
    if not (KEYTRACE_DIR / "PC1_PC2.txt").is_file():
        pytest.skip(f"real key traces not found at {KEYTRACE_DIR} (they live in ../shared/data/keytrace/)")
    return KEYTRACE_DIR
