"""`manage.py serve_metrics [--bind 127.0.0.1] [--port 9108]`: the `/metrics` text on a port of
its own, for a machine that runs only task workers and sweepers (no web server whose
`/metrics` could add up this machine's process counters). Needs PROMETHEUS_MULTIPROC_DIR, the
same directory those processes write to. No authentication: bind it to an address only the
Prometheus server reaches (loopback by default)."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections

from orchestration.runtime import metrics


class Command(BaseCommand):
    help = "Serve this machine's Stepwise metrics (multiprocess) for Prometheus on a port."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=9108)

    def handle(self, *args: Any, bind: str, port: int, **options: Any) -> None:
        if not metrics.multiprocess_dir():
            raise CommandError(
                "set PROMETHEUS_MULTIPROC_DIR to the directory this machine's workers write "
                "their metrics to; without it there is nothing of theirs to serve"
            )

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "only /metrics here")
                    return
                close_old_connections()
                body, content_type = metrics.render()
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer((bind, port), Handler)
        self.stdout.write(f"serving metrics on http://{bind}:{port}/metrics")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
