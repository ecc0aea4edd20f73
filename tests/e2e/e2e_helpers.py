"""Helpers the e2e tests import (a module, not conftest, so tests can import them)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


# A module's one worker runs every run its tests queued, in order: on a loaded 2-core CI
# machine the resumes that earlier tests of the module left behind come first.
WAIT_SECONDS = 90


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = WAIT_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_decided(page: Any, review_pk: int) -> None:
    """After a decision the queue flow moves on: to the next review with a notice, or to the
    inbox with a message when it was the last of the list. Both name the review decided;
    wait for that text (not for the review's own page, which names it too) and for the page
    to settle, so the next `goto` does not race the move."""
    page.wait_for_function(
        "pk => [...document.querySelectorAll('.msg')]"
        ".some(e => e.textContent.includes('review #' + pk))",
        arg=review_pk,
    )
    page.wait_for_load_state()
