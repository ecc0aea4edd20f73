"""In a real browser: the API docs render from our own assets with no request leaving the
server, and a New run started from its form opens the thread, which the worker runs."""

from __future__ import annotations

from e2e_helpers import wait_for

from orchestration.runtime.models import Thread


def test_api_docs_render_offline_from_our_static_files(login, live_url):
    page = login("otto", "ops")
    foreign: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(live_url) else foreign.append(r.url))
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{live_url}/api/v1/docs")
    page.wait_for_selector("text=Stepwise API")
    page.locator(".opblock-summary-path", has_text="/api/v1/threads").first.wait_for()
    assert foreign == []
    assert errors == []


def test_new_run_form_starts_a_thread_that_runs(login, live_url):
    page = login("olga", "ops")
    page.click("text=New run")
    page.click("text=expense")
    page.fill("#id_title", "Browser expense")
    page.fill("#id_input__employee", "Ann")
    page.fill("#id_input__vendor", "Bistro")
    page.fill("#id_input__amount", "40.00")
    page.fill("#id_input__description", "Lunch")
    page.click("button:has-text('Start run')")
    page.wait_for_url(f"{live_url}/threads/**")
    thread = Thread.objects.get(title="Browser expense")
    wait_for(lambda: Thread.objects.get(pk=thread.pk).status == "done", "the run to finish")
    # no reload: the thread page follows the run live
    page.wait_for_selector("#thread-status.status-done")
