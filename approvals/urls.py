"""Routes of the review app (mounted at the site root)."""

from __future__ import annotations

from django.urls import path

from approvals import agent_inbox_views, bulk_views, queue_views, views

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("reviews/<int:pk>/", views.review_detail, name="review"),
    path("reviews/<int:pk>/decide/", views.decide, name="review-decide"),
    path("reviews/<int:pk>/decide-next/", queue_views.decide_next, name="review-decide-next"),
    path("reviews/<int:pk>/agent-answer/", agent_inbox_views.agent_answer,
         name="review-agent-answer"),
    path("reviews/bulk/", bulk_views.bulk_decide, name="reviews-bulk"),
    path("reviews/<int:pk>/claim/", views.claim, name="review-claim"),
    path("reviews/<int:pk>/unclaim/", views.unclaim, name="review-unclaim"),
    path("reviews/<int:pk>/redecide/", views.redecide, name="review-redecide"),
    path("reviews/<int:pk>/data.json", views.review_data, name="review-data"),
    path("threads/", views.thread_list, name="threads"),
    path("threads/<str:thread_id>/", views.thread_detail, name="thread"),
    path("threads/<str:thread_id>/live/", views.thread_live, name="thread-live"),
    path("threads/<str:thread_id>/tree/", views.thread_tree, name="thread-tree"),
    path(
        "threads/<str:thread_id>/checkpoints/<str:checkpoint_id>/",
        views.checkpoint_detail,
        name="checkpoint",
    ),
    path(
        "threads/<str:thread_id>/checkpoints/<str:checkpoint_id>/state.json",
        views.checkpoint_state,
        name="checkpoint-state",
    ),
    path(
        "threads/<str:thread_id>/checkpoints/<str:checkpoint_id>/compare/",
        views.compare_choices,
        name="checkpoint-compare",
    ),
    path(
        "threads/<str:thread_id>/checkpoints/<str:checkpoint_id>/fork/",
        views.fork,
        name="checkpoint-fork",
    ),
    path(
        "threads/<str:thread_id>/subgraph-fork/", views.subgraph_fork, name="subgraph-fork"
    ),
    path("ops/", views.ops, name="ops"),
    path("ops/bulk/", views.ops_bulk, name="ops-bulk"),
    path("ops/runs/<int:pk>/", views.run_detail, name="run"),
    path("ops/runs/<int:pk>/<str:action>/", views.run_action, name="run-action"),
]
