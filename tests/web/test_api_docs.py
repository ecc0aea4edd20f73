"""The OpenAPI 3.1 document and its docs page, with assets from our own static files."""

from __future__ import annotations

import re

from api_helpers import ApiClient
from django.contrib.staticfiles import finders
from django.test import Client

from approvals.api.api import routes


def test_openapi_document_is_3_1_and_lists_every_endpoint(make_user):
    doc = ApiClient(make_user("viewer")).get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    listed = {(m.upper(), p.removeprefix("/api/v1")) for p, ops in doc["paths"].items()
              for m in ops}
    assert set(routes()) <= listed
    review = doc["components"]["schemas"]["ReviewOut"]
    assert "schema" in review["properties"]
    assert doc["components"]["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"


def test_openapi_document_needs_a_token_or_a_login(client_as):
    assert Client().get("/api/v1/openapi.json").status_code == 401
    assert client_as("viewer").get("/api/v1/openapi.json").status_code == 200


def test_docs_page_uses_only_local_assets_and_no_inline_script(client_as):
    page = client_as("viewer").get("/api/v1/docs").content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and all(s.startswith("/") for s in sources), sources
    for src in sources:
        if src.startswith("/static/"):
            assert finders.find(src.removeprefix("/static/")), src
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    for attrs, code in scripts:
        assert "src=" in attrs or 'type="application/json"' in attrs, (attrs, code[:80])


def test_docs_page_sends_anonymous_visitors_to_login():
    response = Client().get("/api/v1/docs")
    assert response.status_code == 302 and "/accounts/login/" in response.url
