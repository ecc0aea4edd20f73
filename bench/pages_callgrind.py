"""Instructions per request of one page kind through the served ASGI app (`config.asgi`), for
callgrind: counts that do not move with the machine's load, unlike `bench.pages_cpu`'s CPU-ms.

    valgrind --tool=callgrind --zero-before=getppid --dump-before=getpgrp \\
        --callgrind-out-file=/tmp/pages.cg python -m bench.pages_callgrind inbox 10
    grep summary: /tmp/pages.cg.1    # instructions of the 10 requests, every thread

Seeds as `bench.pages_cpu` does (same database, same users), warms the kind up with five
requests, then brackets `requests` more between `os.getppid()` and `os.getpgrp()`: two C
calls nothing else in a request makes, so callgrind zeroes its counters at the first and
dumps them at the second. Kinds: `trivial` (the notifications page: the layout and one
small form), `notfound` (a signed-in 404: the layout, no view), `inbox`, `review` (the newest
open review), `decided` (the newest decided review, as after a decision's redirect).
"""

from __future__ import annotations

import argparse
import os
import sys

from bench import pages_cpu  # sets up Django with the served settings


def main() -> None:
    from django.test import Client

    from approvals.models import ReviewRequest

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["trivial", "notfound", "inbox", "review", "decided"])
    parser.add_argument("requests", type=int, nargs="?", default=10)
    parser.add_argument("--backlog", type=int, default=400)
    parser.add_argument("--show", action="store_true", help="print the page instead")
    args = parser.parse_args()
    reviewer, _, _ = pages_cpu.seed(args.backlog)
    signed_in = Client()
    signed_in.force_login(reviewer)
    signed_in.get("/", secure=True)  # the CSRF cookie
    web = pages_cpu.AsgiClient(signed_in.cookies)
    reviews = ReviewRequest.objects.order_by("-pk").values_list("pk", flat=True)
    decided = reviews.exclude(status__in=ReviewRequest.OPEN).first()
    if decided is None:
        decided = reviews.filter(status=ReviewRequest.Status.PENDING).first()
        web.post(f"/reviews/{decided}/decide/", {"action": "approve", "comment": ""})
    pending = reviews.filter(status=ReviewRequest.Status.PENDING).first()
    path = {
        "trivial": "/account/notifications/",
        "notfound": "/no-such-page/",
        "inbox": "/",
        "review": f"/reviews/{pending}/",
        "decided": f"/reviews/{decided}/",
    }[args.kind]
    for _ in range(5):
        response = web.get(path)
        assert response.status_code in (200, 404), response.status_code
    if args.show:
        sys.stdout.write(response.content.decode())
        return
    os.getppid()  # callgrind --zero-before=getppid
    for _ in range(args.requests):
        web.get(path)
    os.getpgrp()  # callgrind --dump-before=getpgrp


if __name__ == "__main__":
    main()
