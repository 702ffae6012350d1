"""Session stores filled by real ingests of the fixtures (see monitoring_stores)."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitoring_stores import build_dmarc_db, build_logs_db


@pytest.fixture(scope="session")
def dmarc_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_dmarc_db(tmp_path_factory.mktemp("dmarc"))


@pytest.fixture(scope="session")
def logs_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_logs_db(tmp_path_factory.mktemp("logs"))
