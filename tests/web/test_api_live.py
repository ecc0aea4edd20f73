"""The whole cycle through a real HTTP client against a live Daphne server and a real
`db_worker`: create a token, start a thread, list open reviews, decide, read it until done."""

from __future__ import annotations

import io
import time

import httpx
import pytest
from api_live import start_server, start_worker
from django.core.management import call_command


@pytest.mark.django_db(transaction=True)
def test_whole_cycle_over_http(tmp_path, make_user):
    make_user("admin", username="robot")
    out = io.StringIO()
    call_command("create_api_token", "robot", "--name", "cycle", stdout=out,
                 stderr=io.StringIO())
    token = out.getvalue().strip()
    server, url = start_server(tmp_path)
    worker = start_worker(tmp_path)
    try:
        with httpx.Client(base_url=f"{url}/api/v1",
                          headers={"Authorization": f"Bearer {token}"}, timeout=10) as api:
            started = api.post("/threads", json={"graph": "web_review", "title": "Live",
                                                 "input": {"title": "Live", "amount": 3}},
                               headers={"Idempotency-Key": "live-1"})
            assert started.status_code == 201, started.text
            thread_id = started.json()["thread_id"]

            review = wait_for(lambda: [r for r in api.get("/reviews").json()["items"]
                                       if r["thread_id"] == thread_id], worker)[0]
            decided = api.post(f"/reviews/{review['id']}/decision",
                               json={"action": "approve", "comment": "fine"})
            assert decided.status_code == 200, decided.text

            thread = wait_for(lambda: (t := api.get(f"/threads/{thread_id}").json())
                              ["status"] == "done" and t, worker)
            assert thread["values"]["outcome"] == "approve"
            assert thread["values"]["reviewer"] == "robot"
            assert thread["open_reviews"] == []
            assert api.get("/reviews/" + str(review["id"])).json()["decision"]["by"] == "robot"
    finally:
        worker.stop()
        server.stop()


def wait_for(probe, worker, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; worker log:\n{worker.output()}")
        time.sleep(0.2)
    return value
