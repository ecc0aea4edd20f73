"""A webhook receiver for tests: `python webhook_receiver.py PORT RECORD_FILE 500,500`.

Answers POSTs with the given statuses in turn, then 200; appends each request (headers and
raw body) to RECORD_FILE as one JSON line. GET /ready answers 200 once it listens. With
RECEIVER_HOLD=path in its environment it records a request, then answers only once that file
is gone: a slow receiver, held as long as a test needs."""

from __future__ import annotations

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, RECORD = int(sys.argv[1]), sys.argv[2]
STATUSES = [int(s) for s in sys.argv[3].split(",") if s] if len(sys.argv) > 3 else []
HOLD = os.environ.get("RECEIVER_HOLD")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802  http.server's naming
        self.send_response(200)
        self.end_headers()

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status = STATUSES.pop(0) if STATUSES else 200
        with open(RECORD, "a") as f:
            f.write(json.dumps({"path": self.path, "headers": dict(self.headers),
                                "body": body.decode(), "answered": status}) + "\n")
        while HOLD and os.path.exists(HOLD):
            time.sleep(0.02)
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(f"answered {status}".encode())

    def log_message(self, *args: object) -> None:
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
