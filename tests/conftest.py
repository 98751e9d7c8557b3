"""Shared fixtures. Tests that need ../shared/data skip with a reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TOKMIX_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (corpora and released tokenizers), or skip."""
    if os.environ.get("CI") and not SHARED_DATA.is_dir():
        pytest.fail(f"CI must have the shared data at {SHARED_DATA}")
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"needs the shared corpora and tokenizers at {SHARED_DATA} (not in a user clone)"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def tokenizers_dir(shared_data: Path) -> Path:
    return shared_data / "tokenizers"


@pytest.fixture(scope="session")
def corpora_dir(shared_data: Path) -> Path:
    return shared_data / "corpora"
