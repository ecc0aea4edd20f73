"""What one webhook attempt costs a worker in CPU, in one process:

    python -m bench.webhook_cost [--posts 100] [--rounds 3]

POSTs a small body to a receiver on 127.0.0.1 (a thread of this process answering 200) with
`approvals.api.webhook_post.post`, the notify worker's path, and, for comparison, with a new
`httpx.Client` per attempt, as deliveries were sent before: building a client loads and parses
the CA bundle for its TLS context even for an `http://` URL. Prints CPU ms per attempt
(`time.process_time`, the receiver's thread included, best of `--rounds`).
"""

from __future__ import annotations

import argparse
import http.server
import threading
import time
from collections.abc import Callable

import httpx

from approvals.api import webhook_post


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


def _client_per_attempt(url: str) -> None:
    with httpx.Client(timeout=10, follow_redirects=False) as client, \
            client.stream("POST", url, content=b"{}") as response:
        for _ in response.iter_bytes():
            pass


def _ours(url: str) -> None:
    webhook_post.post(url, b"{}", {}, 10.0)


def _cpu_ms(send: Callable[[str], None], url: str, posts: int, rounds: int) -> float:
    send(url)  # warm: imports, the TLS context ours builds once
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(posts):
            send(url)
        best = min(best, (time.process_time() - started) * 1000 / posts)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        for name, send in (("webhook_post.post (the notify worker's)", _ours),
                           ("a new httpx.Client per attempt (before)", _client_per_attempt)):
            print(f"{name:42} {_cpu_ms(send, url, args.posts, args.rounds):6.2f} CPU ms/attempt")
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
