"""The nbfan sidebar in a real JupyterLab, driven in headless Chromium: it shows the cluster,
follows a map from a notebook live to 300/300, cancels a long map on the cluster, shows a clicked
call's failed inputs and output lines live, and comes back by itself after a server restart.
Screenshots (light and dark: the dark ones checked to be in JupyterLab Dark) go to test-artifacts/."""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from distributed import Client

from tests.waiting import no_input_running_on_workers, stays

from .lab import Lab, kernel_name, notebook, restart_lab
from .notebook_ui import run_cell, wait_cell_done, wait_kernel_idle

pytestmark = [pytest.mark.ui, pytest.mark.timeout(600)]

MARKS = Path(tempfile.mkdtemp(prefix="nbfan-ui-marks-"))

MAP_CELL = """import time, nbfan
print("START", time.time())
app = nbfan.App("ui-test")

@app.function()
def slow_square(x):
    time.sleep(0.05)
    return time.time()

ends = list(slow_square.map(range(300)))
print("LAST_END", max(ends))"""

LONG_CELL = f"""import os

@app.function()
def long_job(x):
    time.sleep(0.2)
    open(os.path.join({str(MARKS)!r}, str(x)), "w").close()
    return x

try:
    list(long_job.map(range(2000)))
except BaseException as exc:
    print("MAP ENDED:", type(exc).__name__, exc)"""

RELEASE = MARKS / "release-detail"

DETAIL_CELL = f"""import os, sys

@app.function()
def flaky(x):
    time.sleep(0.1)
    print(f"DETAIL out {{x}}")
    if x % 2:
        print(f"DETAIL err {{x}}", file=sys.stderr)
    if x in (2, 5):
        raise ValueError(f"bad input {{x}}")
    if x == 7:  # runs on until the test has seen the call's detail while it runs
        print("DETAIL waiting 7")
        deadline = time.time() + 120
        while not os.path.exists(release) and time.time() < deadline:
            time.sleep(0.05)
        print("DETAIL released 7")
    return x

release = {str(RELEASE)!r}
res = list(flaky.map(range(8), return_exceptions=True))
print("DETAIL RESULTS", [type(r).__name__ if isinstance(r, Exception) else r for r in res])"""

RELEASE_POLLED = MARKS / "release-polled"

POLLED_CELL = f"""release = {str(RELEASE_POLLED)!r}
print("POLLED", len(list(flaky.map(range(8), return_exceptions=True))))"""

# A page whose panel cannot open its stream socket (as behind a proxy that drops websockets):
# the socket to /nbfan/api/stream goes to a closed port instead, so the panel polls REST.
NO_STREAM = """(() => {
  const Real = window.WebSocket;
  window.WebSocket = class extends Real {
    constructor(url, protocols) {
      if (String(url).includes('/nbfan/api/stream')) super('ws://127.0.0.1:9/');
      else super(url, protocols);
    }
  };
})();"""

NESTED_CELL = """@app.function()
def leaf(x):
    time.sleep(0.05)
    return x

@app.function()
def branch(n):
    return sum(leaf.map(range(n)))

print("NESTED", list(branch.map([20, 20])))"""

# Records, in the page, when each call's row first appears and first shows 100%, and every
# done count seen while it runs (a MutationObserver: no polling delay in the measurement).
OBSERVER = """() => {
  const seen = (window.__nbfan = {appeared: {}, full: {}, progress: {}, links: []});
  const check = () => {
    const link = document.querySelector('.jp-nbfan-view')?.dataset.link;
    if (link && seen.links[seen.links.length - 1] !== link) seen.links.push(link);
    for (const li of document.querySelectorAll('li.jp-nbfan-call')) {
      const fn = li.dataset.function;
      const now = Date.now();
      if (!(fn in seen.appeared)) seen.appeared[fn] = now;
      if (li.dataset.state === 'running') {
        (seen.progress[fn] = seen.progress[fn] || []).push(Number(li.dataset.done));
      }
      if (li.dataset.total !== '' && Number(li.dataset.done) === Number(li.dataset.total)
          && !(fn in seen.full)) seen.full[fn] = now;
    }
  };
  new MutationObserver(check).observe(document.body, {
    subtree: true, childList: true, attributes: true,
    attributeFilter: ['data-done', 'data-total', 'data-state', 'data-link']
  });
  check();
}"""

PANEL_TAB = 'li.lm-TabBar-tab[data-id="nbfan-panel"]'


def row(page: Any, function: str) -> Any:
    return page.locator(f'li.jp-nbfan-call[data-function="{function}"]')


def open_panel(page: Any) -> None:
    tab = page.locator(PANEL_TAB)
    tab.wait_for()
    if "lm-mod-current" not in (tab.get_attribute("class") or ""):
        tab.click()
    page.locator(".jp-nbfan-view").wait_for()


def set_theme(page: Any, theme: str) -> None:
    """Switch JupyterLab's theme and wait until it really applies: the body says which theme is
    on and whether it is light, and its background colour resolves dark (or light)."""
    light = theme == "JupyterLab Light"
    page.evaluate(f"window.jupyterapp.commands.execute('apputils:change-theme', {{theme: '{theme}'}})")
    page.wait_for_function(
        """([name, light]) => {
          const body = document.body;
          if (body.dataset.jpThemeName !== name || body.dataset.jpThemeLight !== String(light)) return false;
          const probe = document.createElement('div');
          probe.style.background = 'var(--jp-layout-color0)';
          body.appendChild(probe);
          const rgb = getComputedStyle(probe).backgroundColor.match(/[0-9.]+/g).map(Number);
          probe.remove();
          const luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
          return light ? luma > 160 : luma < 100;
        }""",
        arg=[theme, light],
    )
    assert page.evaluate("document.body.dataset.jpThemeLight") == ("true" if light else "false")
    # the splash JupyterLab shows while the theme loads must be gone from the screenshot
    page.locator("#jupyterlab-splash").wait_for(state="detached")
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def number(label: str, text: str) -> float:
    match = re.search(rf"{label} ([0-9.]+)", text)
    assert match, f"no {label} in the cell output: {text!r}"
    return float(match.group(1))


@pytest.fixture(scope="module")
def notebook_page(lab: Lab, page: Any) -> Iterator[Any]:
    """ui-test.ipynb open in the nbfan kernel, with the nbfan panel open beside it."""
    lab.api(
        "PUT", "api/contents/ui-test.ipynb", notebook([MAP_CELL, LONG_CELL, NESTED_CELL, DETAIL_CELL, POLLED_CELL], kernel_name())
    )
    page.goto(lab.page_url("lab/tree/ui-test.ipynb"), timeout=90_000)
    wait_kernel_idle(page)
    open_panel(page)
    page.evaluate(OBSERVER)
    yield page
    shutil.rmtree(MARKS, ignore_errors=True)


def test_panel_shows_the_cluster_and_an_empty_state(notebook_page: Any, ui_cluster: Any, artifacts: Path) -> None:
    page = notebook_page
    page.locator('.jp-nbfan-view[data-link="live"]').wait_for()
    address = page.locator(".jp-nbfan-cluster-address")
    address.wait_for()
    assert address.inner_text().strip() == ui_cluster.scheduler_address
    assert "2 workers" in page.locator(".jp-nbfan-cluster-stats").inner_text()
    empty = page.locator(".jp-nbfan-empty")
    assert "list(f.map([0.1] * 100))" in empty.inner_text()
    page.screenshot(path=str(artifacts / "panel-empty-light.png"))


def test_a_map_shows_up_live_and_reaches_300(notebook_page: Any) -> None:
    page = notebook_page
    run_cell(page, 0, "slow_square.map(range(300))")
    call = row(page, "slow_square")
    page.locator('li.jp-nbfan-call[data-function="slow_square"][data-state="running"]').wait_for(timeout=30_000)
    output = wait_cell_done(page, 0, timeout=120)
    # the counts and the call's end (the caller's event, a moment later) may show in two polls
    page.locator(
        'li.jp-nbfan-call[data-function="slow_square"][data-done="300"][data-total="300"][data-state="done"]'
    ).wait_for(timeout=10_000)
    assert call.get_attribute("data-state") == "done"
    assert "300 / 300" in call.inner_text()

    seen = page.evaluate("window.__nbfan")
    progress = seen["progress"]["slow_square"]
    assert len(set(progress)) >= 3, f"the bar did not move while the map ran: {progress}"
    appear_delay = seen["appeared"]["slow_square"] / 1000 - number("START", output)
    full_delay = seen["full"]["slow_square"] / 1000 - number("LAST_END", output)
    print(f"\nnbfan panel: call appeared {appear_delay:.3f}s after the cell started; "
          f"showed 300/300 {full_delay:.3f}s after the last input finished (goal <= 1 s)")
    assert full_delay < 5, f"the panel showed 100% only {full_delay:.2f}s after the map finished"

    # Click: how the inputs spread over the two workers.
    call.click()
    counts = [int(t) for t in call.locator(".jp-nbfan-worker-count").all_inner_texts()]
    assert len(counts) == 2 and sum(counts) == 300, counts


def test_calls_made_inside_a_function_show_under_it(notebook_page: Any, artifacts: Path) -> None:
    page = notebook_page
    run_cell(page, 2, "branch.map([20, 20])")
    output = wait_cell_done(page, 2, timeout=120)
    assert "NESTED [190, 190]" in output, output
    page.locator('li.jp-nbfan-call[data-function="branch"][data-state="done"]').wait_for(timeout=20_000)
    page.locator('li.jp-nbfan-call[data-function="leaf"][data-depth="1"][data-state="done"]').nth(1).wait_for(
        timeout=20_000
    )
    rows = page.locator("li.jp-nbfan-call").evaluate_all(
        "els => els.map(e => [e.dataset.function, e.dataset.callId, e.dataset.parent, e.dataset.depth])"
    )
    parents = [r for r in rows if r[0] == "branch"]
    children = [r for r in rows if r[0] == "leaf"]
    branch_ids = {r[1] for r in parents}
    assert len(children) == 2 and all(r[2] in branch_ids and r[3] == "1" for r in children), rows
    for child in children:  # each child row comes right under the branch call it was made inside
        at = rows.index(child)
        assert rows[at - 1][1] == child[2] or rows[at - 1][2] == child[2], rows
    page.screenshot(path=str(artifacts / "panel-child-calls-light.png"))


def test_cancel_stops_the_cluster_starting_inputs(notebook_page: Any, ui_cluster: Any, artifacts: Path) -> None:
    page = notebook_page
    run_cell(page, 1, "long_job.map(range(2000))")
    call = row(page, "long_job")
    page.locator('li.jp-nbfan-call[data-function="long_job"][data-state="running"]').wait_for(timeout=30_000)
    deadline = time.monotonic() + 60
    while int(call.get_attribute("data-done") or 0) < 10:
        assert time.monotonic() < deadline, "long_job made no progress"
        time.sleep(0.2)
    page.screenshot(path=str(artifacts / "panel-running-light.png"))
    set_theme(page, "JupyterLab Dark")
    page.screenshot(path=str(artifacts / "panel-running-dark.png"))

    call_id = call.get_attribute("data-call-id")
    call.locator(".jp-nbfan-call-cancel button").click()
    page.locator('li.jp-nbfan-call[data-function="long_job"][data-state="cancelled"]').wait_for(timeout=20_000)
    with Client(ui_cluster.scheduler_address, set_as_default=False) as client:
        no_input_running_on_workers(client, [call_id])  # the inputs running at the cancel ended
    ran = stays(lambda: len(list(MARKS.iterdir())), quiet=1.0)  # at 10 inputs/s a live map would add ~10
    print(f"\nnbfan cancel: {ran} inputs had run when the workers stopped (of 2000)")
    assert ran < 1000

    output = wait_cell_done(page, 1, timeout=60)
    print(f"nbfan cancel: the cell ended with {output!r}")

    page.screenshot(path=str(artifacts / "panel-finished-dark.png"))
    set_theme(page, "JupyterLab Light")
    page.screenshot(path=str(artifacts / "panel-finished-light.png"))


def widen_panel(page: Any, width: int) -> None:
    """Drag the sidebar's edge, as a person would, until the panel is `width` pixels wide."""
    panel = page.locator("#nbfan-panel")
    box = panel.bounding_box()
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle:not(.lm-mod-hidden)").first
    grip = handle.bounding_box()
    x, y = grip["x"] + grip["width"] / 2, grip["y"] + grip["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + width - box["width"], y, steps=5)
    page.mouse.up()
    assert abs(panel.bounding_box()["width"] - width) < 10, panel.bounding_box()


def detail_texts(page: Any) -> tuple[list[list[str]], list[list[str]]]:
    """The open call's failed inputs ([input, error]) and output lines ([input, stream, text])."""
    detail = page.locator(".jp-nbfan-detail")
    failures = detail.locator("li.jp-nbfan-failure").evaluate_all(
        "els => els.map(e => [e.dataset.input, e.querySelector('.jp-nbfan-failure-error').textContent])"
    )
    lines = detail.locator("li.jp-nbfan-line").evaluate_all(
        "els => els.map(e => [e.dataset.input, e.dataset.stream,"
        " e.querySelector('.jp-nbfan-line-text').textContent])"
    )
    return failures, lines


def test_clicking_a_call_shows_its_failed_inputs_and_output_live(notebook_page: Any, artifacts: Path) -> None:
    page = notebook_page
    run_cell(page, 3, "flaky.map(range(8), return_exceptions=True)")
    running = page.locator('li.jp-nbfan-call[data-function="flaky"][data-state="running"]')
    running.wait_for(timeout=30_000)
    running.locator(".jp-nbfan-call-fn").click()
    detail = running.locator(".jp-nbfan-detail")
    detail.wait_for()
    # Input 7 waits for RELEASE: everything below is seen while the call still runs.
    detail.locator('li.jp-nbfan-failure[data-input="5"]').wait_for(timeout=30_000)
    detail.locator("li.jp-nbfan-line", has_text="DETAIL waiting 7").wait_for(timeout=30_000)
    assert running.get_attribute("data-state") == "running"
    failures, lines = detail_texts(page)
    assert failures == [["2", "ValueError: bad input 2"], ["5", "ValueError: bad input 5"]], failures
    for x in (0, 1, 2, 3, 4, 5, 6):
        assert [str(x), "stdout", f"DETAIL out {x}"] in lines, (x, lines)
    for x in (1, 3, 5):
        assert [str(x), "stderr", f"DETAIL err {x}"] in lines, (x, lines)
    assert ["7", "stdout", "DETAIL waiting 7"] in lines, lines
    # stderr lines look different from stdout ones (the notebook's error background)
    colours = detail.locator("li.jp-nbfan-line").evaluate_all(
        "els => Object.fromEntries(els.map(e => [e.dataset.stream, getComputedStyle(e).backgroundColor]))"
    )
    assert colours["stderr"] != colours["stdout"], colours
    # each failure's remote traceback opens under it, and opening it keeps the call open
    failure = detail.locator('li.jp-nbfan-failure[data-input="2"]')
    meta = failure.locator(".jp-nbfan-failure-meta").inner_text()
    assert "1 attempt" in meta and "127.0.0.1:" in meta, meta
    failure.locator(".jp-nbfan-traceback summary").click()
    traceback = failure.locator(".jp-nbfan-traceback pre")
    traceback.wait_for()
    assert 'raise ValueError(f"bad input {x}")' in traceback.inner_text(), traceback.inner_text()
    assert running.get_attribute("aria-expanded") == "true"
    page.set_viewport_size({"width": 1280, "height": 1000})
    widen_panel(page, 420)
    page.screenshot(path=str(artifacts / "panel-call-detail-light.png"))
    set_theme(page, "JupyterLab Dark")
    assert running.get_attribute("data-state") == "running"
    page.screenshot(path=str(artifacts / "panel-call-detail-dark.png"))

    # Released, the call ends; its last lines reach the open detail without a click.
    RELEASE.touch()
    call = row(page, "flaky")
    call.locator("li.jp-nbfan-line", has_text="DETAIL released 7").wait_for(timeout=30_000)
    output = wait_cell_done(page, 3, timeout=60)
    assert "DETAIL RESULTS [0, 1, 'ValueError', 3, 4, 'ValueError', 6, 7]" in output, output
    page.locator('li.jp-nbfan-call[data-function="flaky"][data-failed="2"]:not([data-state="running"])').wait_for(
        timeout=20_000
    )
    failures, _ = detail_texts(page)
    assert [f[0] for f in failures] == ["2", "5"], failures
    set_theme(page, "JupyterLab Light")
    page.set_viewport_size({"width": 1280, "height": 800})
    # a click on the row closes it
    call.locator(".jp-nbfan-call-fn").click()
    call.locator(".jp-nbfan-detail").wait_for(state="detached")


def test_without_the_socket_a_calls_detail_is_polled_live(lab: Lab, notebook_page: Any) -> None:
    polled = notebook_page.context.new_page()
    try:
        polled.add_init_script(NO_STREAM)
        polled.goto(lab.page_url("lab"), timeout=90_000)
        open_panel(polled)
        polled.locator('.jp-nbfan-view[data-link="polling"]').wait_for(timeout=30_000)
        assert polled.evaluate("document.visibilityState") == "visible"  # polls stand by when hidden
        run_cell(notebook_page, 4, "POLLED")
        running = polled.locator('li.jp-nbfan-call[data-function="flaky"][data-state="running"]')
        running.wait_for(timeout=30_000)
        call_id = running.get_attribute("data-call-id")
        running.locator(".jp-nbfan-call-fn").click()
        detail = polled.locator(f'li.jp-nbfan-call[data-call-id="{call_id}"] .jp-nbfan-detail')
        detail.locator('li.jp-nbfan-failure[data-input="5"]').wait_for(timeout=30_000)
        detail.locator("li.jp-nbfan-line", has_text="DETAIL waiting 7").wait_for(timeout=30_000)
        # what the call writes after the click comes by polling GET /nbfan/api/calls/ID
        RELEASE_POLLED.touch()
        detail.locator("li.jp-nbfan-line", has_text="DETAIL released 7").wait_for(timeout=30_000)
        assert "POLLED 8" in wait_cell_done(notebook_page, 4, timeout=60)
        assert polled.locator(".jp-nbfan-view").get_attribute("data-link") == "polling"
    finally:
        polled.close()


def test_panel_reconnects_after_a_server_restart(lab: Lab, notebook_page: Any, artifacts: Path) -> None:
    page = notebook_page
    page.locator('.jp-nbfan-view[data-link="live"]').wait_for()
    page.evaluate("window.__nbfan.links = ['live']")
    restart_lab(lab)
    # The page is not reloaded: the panel notices the socket closed and comes back by itself.
    page.locator('.jp-nbfan-view[data-link="live"]').wait_for(timeout=30_000)
    links = page.evaluate("window.__nbfan.links")
    assert links[0] == "live" and links[-1] == "live" and len(links) >= 3, links
    page.locator('li.jp-nbfan-call[data-function="slow_square"][data-state="done"]').wait_for(timeout=10_000)
    assert page.nbfan_errors == [], page.nbfan_errors
