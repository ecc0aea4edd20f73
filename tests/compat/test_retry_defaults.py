"""`RetryPolicy()`'s default `retry_on` decides as LangGraph's, error for error."""

from __future__ import annotations


def test_the_default_retry_on_is_langgraphs() -> None:
    """A node retried by default on LangGraph is retried here, and one that is not is not:
    same attempts, same side effects, same error."""
    import httpx
    import requests
    from langgraph.types import RetryPolicy as LangGraphRetryPolicy

    from orchestration.types import default_retry_on

    langgraphs = LangGraphRetryPolicy().retry_on
    request = httpx.Request("GET", "https://example.com")

    def status(code: int) -> httpx.HTTPStatusError:
        return httpx.HTTPStatusError("x", request=request, response=httpx.Response(code))

    def requests_error(code: int | None) -> requests.HTTPError:
        response = None
        if code is not None:
            response = requests.Response()
            response.status_code = code
        return requests.HTTPError("x", response=response)

    class Custom(Exception):
        pass

    errors = [ConnectionError(), ConnectionResetError(), TimeoutError(), OSError(), ValueError(),
              KeyError("k"), TypeError(), ZeroDivisionError(), RuntimeError(), Custom(),
              NotImplementedError(), status(503), status(404), requests_error(502),
              requests_error(404), requests_error(None), requests.ConnectionError()]
    assert [default_retry_on(e) for e in errors] == [langgraphs(e) for e in errors]
