"""Driving a notebook in JupyterLab the way a person does, robustly (toolchain notes, trap 8:
a Ctrl+Enter can be dropped, so wait for the kernel to be idle and press again until the
prompt shows the cell is queued, running or done)."""

from __future__ import annotations

import re
import time
from typing import Any

RUN_STARTED = re.compile(r"\[(\*|\d+)\]")


def wait_kernel_idle(page: Any, timeout: float = 90) -> None:
    """The status bar names the kernel and says Idle once it has started."""
    page.locator(".jp-StatusBar-Widget", has_text="Idle").first.wait_for(timeout=timeout * 1000)


def cell(page: Any, index: int) -> Any:
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(index)


def prompt_text(page: Any, index: int) -> str:
    return cell(page, index).locator(".jp-InputPrompt").inner_text().strip()


def run_cell(page: Any, index: int, expect: str, attempts: int = 6) -> None:
    """Run cell `index` (whose source contains `expect`) and return once it is queued or running."""
    target = cell(page, index)
    source = target.locator(".jp-InputArea-editor").inner_text()
    assert expect in source, f"cell {index} holds {source!r}, not the code the test expects"
    for _ in range(attempts):
        wait_kernel_idle(page)
        target.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Control+Enter")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if RUN_STARTED.search(prompt_text(page, index)):
                return
            time.sleep(0.1)
    raise AssertionError(f"cell {index} did not start after {attempts} Ctrl+Enter presses")


def wait_cell_done(page: Any, index: int, timeout: float) -> str:
    """Wait for the prompt to show an execution count; return the cell's output text."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(r"\[\d+\]", prompt_text(page, index)):
            return output_text(page, index)
        time.sleep(0.2)
    raise AssertionError(f"cell {index} still running after {timeout}s: {output_text(page, index)!r}")


def output_text(page: Any, index: int) -> str:
    outputs = cell(page, index).locator(".jp-OutputArea-output")
    return "\n".join(outputs.all_inner_texts())


def interrupt_kernel(page: Any) -> None:
    page.evaluate("window.jupyterapp.commands.execute('notebook:interrupt-kernel')")
