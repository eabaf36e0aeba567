"""The Dagster web UI as a first-time user sees it, rendered by a real headless Chromium.

Why: the other tests check the ``Definitions`` object in Python, but people meet the pipeline
through ``make ui``. These tests start ``dagster-webserver`` on the project's workspace with a
fresh ``DAGSTER_HOME`` holding ``config/dagster.yaml`` (as ``make ui`` does), load the asset
catalog, the global asset lineage, one group's lineage and one asset's page in Chromium, and
assert on the rendered DOM: every asset group and some known assets are shown, and the
onboarding pop-up that ``nux: enabled: false`` turns off does not appear. Screenshots of each
page are kept under the pytest tmp dir and copied to ``var/ui/`` for a human to look at.

Skipped when Chromium is not installed (``apt-get install chromium``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pipeline.paths import PROJECT_ROOT

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install -y chromium)")

WEBSERVER = PROJECT_ROOT / ".venv" / "bin" / "dagster-webserver"
SCREENSHOT_COPIES = PROJECT_ROOT / "var" / "ui"
STARTUP_TIMEOUT_S = 240
CHROMIUM_TIMEOUT_S = 120

# The code location of workspace.yaml holds one ``Definitions``: Dagster's ``__repository__``.
REPOSITORY = "__repository__@science_exam"
GROUPS = ("corpus", "questions", "retrieval", "rankings", "answering")
# Text of Dagster's onboarding dialog ("CommunityNux" in dagster-webserver's bundle), which it
# shows on localhost one second after the first page loads unless the instance says `nux:
# enabled: false` (or the browser has dismissed it before; each render here has a new profile).
ONBOARDING_TEXT = ("Join the Dagster community", "Notify me about Dagster security updates",
                   "Sign up for the Dagster newsletter")

Render = Callable[[str, str], str]  # (route, name) -> the page's visible text

LOCATIONS_QUERY = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
    name loadStatus locationOrLoadError { __typename ... on PythonError { message } }
} } } }"""


class _VisibleText(HTMLParser):
    """The text of a DOM dump a user could see: everything but scripts, styles and the like."""

    HIDDEN = frozenset({"script", "style", "noscript", "template", "head"})

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN:
            self._hidden_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN and self._hidden_depth:
            self._hidden_depth -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth and data.strip():
            self.parts.append(data.strip())


def visible_text(dom: str) -> str:
    """The visible text of ``dom``, one text node a line."""
    parser = _VisibleText()
    parser.feed(dom)
    return "\n".join(parser.parts)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, data: bytes | None = None) -> bytes:
    headers = {"Content-Type": "application/json"} if data else {}
    with urllib.request.urlopen(urllib.request.Request(url, data, headers), timeout=10) as r:
        return r.read()


def _log_tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-40:])


def _wait_until_loaded(base_url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    """Wait for ``/server_info`` to answer and the code location to load; fail with the
    location's Python error (a broken ``definitions.py``) or the server's log otherwise."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if server.poll() is not None:
            pytest.fail(f"dagster-webserver exited with {server.returncode}:\n{_log_tail(log)}")
        if time.monotonic() > deadline:
            pytest.fail(f"dagster-webserver not ready in {STARTUP_TIMEOUT_S} s:\n{_log_tail(log)}")
        try:
            _get(f"{base_url}/server_info")
            answer = json.loads(_get(f"{base_url}/graphql",
                                     json.dumps({"query": LOCATIONS_QUERY}).encode()))
        except (urllib.error.URLError, OSError):
            time.sleep(1)
            continue
        entries = answer["data"]["workspaceOrError"].get("locationEntries", [])
        if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
            for entry in entries:
                error = entry["locationOrLoadError"]
                if error and error["__typename"] == "PythonError":
                    pytest.fail(f"code location {entry['name']} failed to load: {error['message']}")
            return
        time.sleep(1)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``dagster-webserver`` on the project's workspace and a fresh ``DAGSTER_HOME``."""
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(PROJECT_ROOT / "config" / "dagster.yaml", home / "dagster.yaml")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = os.environ | {"DAGSTER_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    log = home / "webserver.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(WEBSERVER), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)  # its own process group: its code server goes with it
    try:
        _wait_until_loaded(base, server, log)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.fixture(scope="module")
def render(base_url: str, tmp_path_factory: pytest.TempPathFactory) -> Render:
    """``render(route, name)``: load ``route`` in headless Chromium, save ``<name>.png`` (also to
    ``var/ui/``) and ``<name>.html``, and return the page's visible text."""
    out = tmp_path_factory.mktemp("ui")
    SCREENSHOT_COPIES.mkdir(parents=True, exist_ok=True)
    pages: dict[str, str] = {}

    def chromium(*args: str) -> str:
        # A new profile each time: no pop-up dismissed in an earlier load is remembered. The
        # virtual time budget lets the page run its queries and timers (the pop-up waits 1 s).
        profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=out)
        try:
            done = subprocess.run(
                [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-dev-shm-usage", "--no-first-run", f"--user-data-dir={profile}",
                 "--virtual-time-budget=15000", *args],
                capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S)
        finally:
            shutil.rmtree(profile, ignore_errors=True)
        if done.returncode:
            pytest.fail(f"chromium {' '.join(args)} exited with {done.returncode}:\n"
                        f"{done.stderr[-3000:]}")
        return done.stdout

    def load(route: str, name: str) -> str:
        if route not in pages:
            url = base_url + route
            # A tall window: the catalog renders only the table rows inside the window.
            dom = chromium("--window-size=1600,4000", "--dump-dom", url)
            (out / f"{name}.html").write_text(dom)
            png = out / f"{name}.png"
            chromium(f"--screenshot={png}", "--window-size=1600,1000",
                     "--hide-scrollbars", url)
            assert png.stat().st_size > 0, f"no screenshot of {url}"
            shutil.copy(png, SCREENSHOT_COPIES / png.name)
            pages[route] = visible_text(dom)
        return pages[route]

    return load


def assert_no_onboarding(text: str) -> None:
    shown = [line for line in ONBOARDING_TEXT if line in text]
    assert not shown, f"the onboarding pop-up is shown: {shown}"


def assert_shown(text: str, names: tuple[str, ...], what: str, where: str) -> None:
    """Each of ``names`` is a line of the page's visible text."""
    lines = set(text.splitlines())
    missing = [name for name in names if name not in lines]
    assert not missing, f"{what} not shown in {where}: {missing}\n{text[:2000]}"


def test_asset_catalog_lists_every_group_and_the_assets(render: Render) -> None:
    text = render("/assets", "asset_catalog")
    assert_shown(text, GROUPS, "groups", "the asset catalog")
    assert_shown(text, ("wiki_chunks", "submission", "score"), "assets", "the asset catalog")
    assert_no_onboarding(text)


def test_global_lineage_shows_every_group(render: Render) -> None:
    # Dagster draws each group collapsed here (a box with asset counts): no asset names.
    text = render("/asset-groups", "global_lineage")
    assert_shown(text, GROUPS, "groups", "the global lineage")
    assert_no_onboarding(text)


def test_group_lineage_shows_its_assets(render: Render) -> None:
    text = render(f"/locations/{REPOSITORY}/asset-groups/corpus", "group_corpus_lineage")
    assert_shown(text, ("dump_files", "wiki_articles", "wiki_chunks"), "assets",
                 "the corpus group's lineage")
    assert_no_onboarding(text)


def test_asset_page_shows_the_score(render: Render) -> None:
    text = render("/assets/score", "asset_score")
    lines = set(text.splitlines())
    assert "score" in lines, "the asset page does not name the score asset"
    assert "answering" in lines, "the asset page does not show the score's group"
    assert "No description found" not in text, "the score asset has no description"
    assert "MAP@3" in text, "the asset page does not show the score's description"
    assert_no_onboarding(text)
