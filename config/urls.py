from django.contrib import admin
from django.urls import include, path

from approvals import health

urlpatterns = [
    # probes and the Prometheus scrape: no session, cheap (approvals.health)
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("approvals.api.urls")),
    path("", include("approvals.urls")),
]
