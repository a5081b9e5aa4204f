"""Fixtures for the browser tests: a cluster the tests start, a real `jupyter lab` whose
kernels and server extension use it (NBFAN_SCHEDULER), and headless Chromium on the page."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbfan.cluster.local import start_local_cluster

from .lab import Lab, isolated_env, launch_chromium, start_lab, stop_lab

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="module")
def ui_cluster() -> Iterator[Any]:
    """A fresh two-worker cluster, so the panel shows only this module's calls."""
    cluster = start_local_cluster(2, gpus=[])
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def lab(ui_cluster: Any) -> Iterator[Lab]:
    base = Path(tempfile.mkdtemp(prefix="nbfan-ui-"))
    env = isolated_env(base, {"NBFAN_SCHEDULER": ui_cluster.scheduler_address})
    server = start_lab(base, env)
    yield server
    stop_lab(server)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def page(lab: Lab) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        profile = Path(tempfile.mkdtemp(prefix="nbfan-chromium-"))
        context = launch_chromium(playwright, profile)
        context.set_default_timeout(30_000)
        page = context.pages[0] if context.pages else context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.nbfan_errors = errors  # type: ignore[attr-defined]
        try:
            yield page
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> Iterator[None]:
    """Shadow pytest-jupyter's autouse loop fixture (its plugin is loaded for tests/test_server.py
    and then applies session-wide): Playwright's sync API runs its own loop in this thread, and
    closing a running loop at teardown fails."""
    yield None


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> Iterator[None]:
    """Shadowed with jp_asyncio_loop above: these tests run no in-process jupyter server."""
    yield None
