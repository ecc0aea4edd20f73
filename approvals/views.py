"""Pages. Each view parses the request, calls one access function and one action or selector,
and renders: the full page on a normal request, the partial when htmx asks (`request.htmx`)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from approvals import page_helpers, queue, review_changes, selectors, treeview
from approvals.access import (
    DECIDE,
    FORK,
    OPERATE,
    OVERRIDE_CLAIM,
    VIEW,
    VIEW_OPS,
    ReviewPage,
    access_redecide,
    access_review,
    access_review_page,
    access_run,
    access_thread,
    require,
)
from approvals.actions import (
    DecisionInput,
    ForkNeedsNode,
    ReviewError,
    check_run_action,
    do_bulk_run_action,
    do_claim,
    do_decide,
    do_fork,
    do_fork_subgraph,
    do_redecide,
    do_run_action,
    do_unclaim,
    fix_for,
    has_action,
)
from approvals.diff import diff_states, to_jsonable
from approvals.forms import DecisionForm, ForkForm, OpsBulkForm, ReasonForm
from approvals.inbox_rows import inbox_rows
from approvals.models import Decision, ReviewRequest
from approvals.replay import replay_preview
from approvals.selectors import UnreadableCheckpoint
from orchestration.runtime.models import Event, Run, Thread
from orchestration.runtime.runs import RunAction
from orchestration.runtime.workers import unserved_queues

PAGE_SIZE = 50


def _page(request: HttpRequest, qs: Any, size: int = PAGE_SIZE) -> Any:
    return Paginator(qs, size).get_page(request.GET.get("page"))


def _missing(request: HttpRequest, what: str) -> HttpResponse:
    return render(request, "approvals/_missing.html", {"what": what}, status=404)


def _back_to(request: HttpRequest, url: str) -> HttpResponse:
    """After a POST: htmx follows a client redirect, a plain form a 303."""
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return HttpResponseRedirect(url, status=303)


def _next_or(request: HttpRequest, default: str) -> str:
    """The form's `next` if it is a path on this site, else `default`: a link someone else
    crafted must not send a reviewer to their site after a claim."""
    wanted = request.POST.get("next") or ""
    allowed = url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return wanted if wanted and allowed else default


# ---------------------------------------------------------------- inbox


@require_GET
def inbox(request: HttpRequest) -> HttpResponse:
    require(request.user, VIEW, "see the review inbox")
    f = selectors.InboxFilter(
        graph=request.GET.get("graph", ""),
        status=request.GET.get("status", "open") or "open",
        assignee=request.GET.get("assignee", ""),
    )
    try:
        page = selectors.review_page(request.user, f, request.GET.get("after", ""), PAGE_SIZE)
    except selectors.BadCursor as exc:
        messages.error(request, f"{exc}: showing the first page. Use the inbox's own links.")
        page = selectors.review_page(request.user, f, "", PAGE_SIZE)
    can_decide = request.user.has_perm(DECIDE)
    context = {
        "page": page,
        "rows": inbox_rows(request, page.object_list, can_decide=can_decide,
                           queue_query=queue.filter_query(f)),
        "filter": f,
        "can_decide": can_decide,
    }
    context["statuses"] = ReviewRequest.Status.choices
    if request.htmx:
        # the list, and the per-status counts out of band: counts left as they were went
        # stale on every filter change and live update (the graph names do not change here)
        context.update({"counts": selectors.review_counts(f.graph), "oob": True})
        return render(request, "approvals/_inbox_list.html", context)
    counts, graphs = selectors.inbox_counts_and_graphs(f.graph)
    context.update({"counts": counts, "graphs": graphs, "query": request.GET.urlencode()})
    return render(request, "approvals/inbox.html", context)


@require_POST
def claim(request: HttpRequest, pk: int) -> HttpResponse:
    return _claim_action(request, pk, do_claim, f"You claimed review #{pk}.")


@require_POST
def unclaim(request: HttpRequest, pk: int) -> HttpResponse:
    return _claim_action(request, pk, do_unclaim, f"You released review #{pk}.")


CLAIM_BOX = "claim-box"  # the review page's element a claim made there replaces


def _claim_action(
    request: HttpRequest, pk: int, action: Callable[[Any, ReviewRequest], Any], done: str
) -> HttpResponse:
    review = access_review(request.user, pk, for_update=True)
    # `next`: the review in the list it was opened from (its query), not the whole inbox's
    back = _next_or(request, reverse("review", args=[pk]))
    try:
        action(request.user, review)
    except ReviewError as exc:
        said = str(exc)
        if request.htmx and request.htmx.target == CLAIM_BOX:
            # said in the part swapped in: a message at the top of the page is not in what
            # the claim form swaps. A closed review has no claim box: its notice replaces the
            # decision form and claim box, as the live refresh does
            response = _review_page(request, pk, claim_refused=said)
            if not review.is_open:
                response["HX-Retarget"] = response["HX-Reselect"] = "#decide-area"
            return response
        messages.error(request, said)
        return _back_to(request, back)
    if request.htmx and request.htmx.target == CLAIM_BOX:
        # the review page's claim form: the page swaps in its claim part and meta line only
        # (hx-select), so what the reviewer typed in the decision form stays (a reload lost it)
        return _review_page(request, pk)
    messages.success(request, done)
    return _back_to(request, back)


# ---------------------------------------------------------------- review page


def _review_context(request: HttpRequest, review: ReviewRequest, form: Any,
                    page: ReviewPage | None = None) -> dict[str, Any]:
    """The review page's context; `page` is what `access_review_page` read with the review
    (whether its checkpoint exists, its decision), else each is read here."""
    thread = review.thread
    changes_html: Any = ""
    unreadable: UnreadableCheckpoint | None = None
    try:
        changes_html = review_changes.changes_before(
            thread, review.checkpoint_id, page.checkpoint_exists if page else None)
    except UnreadableCheckpoint as exc:
        unreadable = exc
    # with its author in the same query: the decision panel names them; the reviews that
    # re-answer it ("decide differently") are shown with the decision only
    decided = review.status == ReviewRequest.Status.DECIDED
    if page is not None:
        decision = page.decision
        reanswers = selectors.reanswers(review.pk) if decided and page.reanswered else []
    else:
        decision, reanswers = (selectors.decision_with_reanswers(review.pk)
                               if decided else (None, []))
    return {
        "review": review,
        "thread": thread,
        "form": form,
        "changes_html": changes_html,
        "unreadable": unreadable,
        "history_html": page_helpers.history_html(selectors.thread_history(thread, limit=50)),
        "decision": decision,
        "can_decide": request.user.has_perm(DECIDE),
        "can_override_claim": request.user.has_perm(OVERRIDE_CLAIM),
        "can_redecide": request.user.has_perm(DECIDE) and request.user.has_perm(FORK),
        "reanswers": reanswers,
    }


def _decision_input(form: DecisionForm) -> DecisionInput:
    return DecisionInput(
        action=form.cleaned_data["action"],
        comment=form.cleaned_data.get("comment") or "",
        values=form.edited_values(),
        text=form.cleaned_data.get("text") or "",
    )


@require_GET
@never_cache  # Back after a decision must show it decided, not the form as it was
def review_detail(request: HttpRequest, pk: int) -> HttpResponse:
    direction = request.GET.get("go")
    if direction in ("next", "previous"):
        return _follow_queue(request, pk, direction)
    return _review_page(request, pk)


def _follow_queue(request: HttpRequest, pk: int, direction: str) -> HttpResponse:
    """`j`/`k` from review `pk`: its neighbour in the list as it is now. The page's Next link
    was read when the page was rendered; a review decided since then has left the list."""
    access_review_page(request.user, pk)  # the same check as showing review `pk`
    f = queue.queue_filter(request.GET)
    target = queue.follow(request, f, pk, direction)
    if target is None:
        messages.info(request, f"No review {'after' if direction == 'next' else 'before'} "
                               f"#{pk} is left in this list.")
        url = queue.inbox_url(f)
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    url = queue.review_url(target, f)
    if not request.htmx:
        return redirect(url)
    response = _review_page(request, target)
    response["HX-Push-Url"] = url  # the address bar names the review shown, not `go=`
    return response


def _review_page(request: HttpRequest, pk: int, **extra: Any) -> HttpResponse:
    page = access_review_page(request.user, pk)
    review = page.review
    form = DecisionForm(review=review) if review.is_open else None
    return render(request, "approvals/review.html",
                  {**_review_context(request, review, form, page), **extra})


@require_POST
def decide(request: HttpRequest, pk: int) -> HttpResponse:
    review = access_review(request.user, pk, for_update=True)
    form = DecisionForm(request.POST, review=review)
    if form.is_valid():
        d = _decision_input(form)
        try:
            do_decide(request.user, review, d)
        except ReviewError as exc:
            return decision_refused(request, review, exc)
        messages.success(request, f"Decision recorded ({d.action}); the run resumes.")
        return _back_to(request, reverse("review", args=[pk]))
    context = _review_context(request, review, form)
    return render(request, "approvals/review.html", context, status=400)


def decision_refused(request: HttpRequest, review: ReviewRequest, exc: ReviewError,
                     *, in_list: selectors.InboxFilter | None = None) -> HttpResponse:
    """409 for a decision someone else's claim or decision beat: the reason and a link to the
    review (as do_decide refreshed it), not the whole review page again. From the keyboard
    queue (`in_list`: the list being worked through) also the list's next open review, on
    `j` as on the review page, so a lost race does not end the reviewer's run through it."""
    messages.error(request, str(exc))
    context: dict[str, Any] = {"review": review, "review_url": reverse("review", args=[review.pk]),
                               "inbox_url": reverse("inbox"), "next_url": None}
    if in_list is not None:
        nxt = queue.request_neighbours(request, in_list, review.pk).next_open
        context.update(review_url=queue.review_url(review.pk, in_list),
                       inbox_url=queue.inbox_url(in_list),
                       next_url=queue.review_url(nxt, in_list) if nxt else None)
    return render(request, "approvals/review_conflict.html", context, status=409)


@require_GET
def review_data(request: HttpRequest, pk: int) -> HttpResponse:
    """The review's whole data (`?part=decision`: its decision's edited values) as JSON."""
    review = access_review(request.user, pk, for_update=False)
    if request.GET.get("part") == "decision":
        decision = Decision.objects.filter(review=review).first()
        if decision is None:
            raise Http404(f"Review #{pk} has no decision yet.")
        return JsonResponse(to_jsonable(decision.values), safe=False)
    return JsonResponse(to_jsonable(review.data), safe=False)


@require_http_methods(["GET", "POST"])
def redecide(request: HttpRequest, pk: int) -> HttpResponse:
    review = access_redecide(request.user, pk)
    if review.status != ReviewRequest.Status.DECIDED:
        messages.error(request, f"Review #{pk} is {review.status}: decide it directly instead.")
        return redirect("review", pk=pk)
    form = DecisionForm(request.POST or None, review=review)
    if request.method == "POST" and form.is_valid():
        d = _decision_input(form)
        try:
            decision = do_redecide(request.user, review, d)
        except ReviewError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request, "New decision recorded on a new branch; the original branch is unchanged."
            )
            return _back_to(request, reverse("review", args=[decision.review_id]))
    status = 400 if request.method == "POST" else 200
    context = {"review": review, "form": form,
               "rerun": replay_preview(review.thread, review.checkpoint_id)}
    return render(request, "approvals/redecide.html", context, status=status)


# ---------------------------------------------------------------- threads


@require_GET
def thread_list(request: HttpRequest) -> HttpResponse:
    require(request.user, VIEW, "see threads")
    q = request.GET.get("q", "").strip()
    status = request.GET.get("status", "")
    graph = request.GET.get("graph", "")
    page = _page(request, selectors.thread_list(q, status, graph))
    context = {
        "page": page,
        "q": q,
        "status": status,
        "graph": graph,
        "statuses": Thread.Status.choices,
        "graphs": selectors.graph_names(),
        "now": timezone.now(),
    }
    template = "approvals/_thread_rows.html" if request.htmx else "approvals/threads.html"
    return render(request, template, context)


def _side_parts(request: HttpRequest, thread: Thread) -> dict[str, str]:
    """The thread page's regions beside the tree, rendered, by element id. A live update
    re-sends only those whose text changed (the page holds a digest of each, `_digests`)."""
    reviews, earlier_reviews = selectors.thread_reviews(thread)
    context = {
        "thread": thread,
        "reviews": reviews,
        "earlier_reviews": earlier_reviews,
        "history_html": page_helpers.history_html(selectors.thread_history(thread, limit=100)),
        "runs": list(thread.runs.select_related("requested_by").order_by("-created_at")[:20]),
        "folds": selectors.subgraph_folds(thread),
        "can_fork": request.user.has_perm(FORK),
    }
    context["output_run"], context["output"] = selectors.run_output(thread)
    return {
        part: render_to_string(f"approvals/_thread_{part}.html", context, request)
        for part in SIDE_PARTS
    }


SIDE_PARTS = ("status", "subgraphs", "output", "reviews", "runs", "history")


def _digests(parts: dict[str, str]) -> str:
    return ".".join(
        hashlib.blake2b(parts[p].encode(), digest_size=6).hexdigest() for p in SIDE_PARTS
    )


def _tree_context(request: HttpRequest, thread: Thread) -> dict[str, Any]:
    state = treeview.TreeState.from_query(request.GET)
    if not state.selected:  # the head, until the viewer picks a checkpoint
        state = dataclasses.replace(state, follow=True)
    tree = treeview.build(thread, state)
    parts = _side_parts(request, thread)
    return {
        "thread": thread,
        "tree": tree,
        "selected": tree.state.selected,
        "side": {k: mark_safe(v) for k, v in parts.items()},  # noqa: S308  rendered templates
        "digests": _digests(parts),
        **_tree_urls(thread),
    }


def _tree_urls(thread: Thread) -> dict[str, str]:
    # one reverse() for the whole tree: a {% url %} tag per row costs more than the rest of it
    base = reverse("checkpoint", args=[thread.thread_id, "-"]).removesuffix("-/")
    return {"cp_base": base, "tree_url": reverse("thread-tree", args=[thread.thread_id])}


@require_GET
def thread_detail(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = access_thread(request.user, thread_id, for_update=False)
    context = _tree_context(request, thread)
    context["can_fork"] = request.user.has_perm(FORK)
    total = context["tree"].total
    against = request.GET.get("against", "")
    if total >= LAZY_PANEL_FROM and not request.GET.get("checkpoint"):
        # A long thread's states are long too: reading the selected checkpoint and its parent
        # is most of the page's time. The tree is drawn now; the panel follows in one request
        # (a page asked for one checkpoint by URL, e.g. without JavaScript, gets it inline).
        selected = context["selected"]
        query = urlencode({"against": against}) if against else ""
        context["panel_url"] = f'{context["cp_base"]}{selected}/' + (f"?{query}" if query else "")
        context["panel_inline_url"] = "?" + urlencode(
            {"checkpoint": selected, **({"against": against} if against else {})}
        )
    elif total:
        context.update(_checkpoint_context(thread, context["selected"], against))
    else:
        # no checkpoint: not yet, or retention pruned them (the page said "not yet" either way)
        context["pruned"] = Event.objects.filter(
            thread=thread, kind="thread_pruned").values_list("created_at", flat=True).first()
    return render(request, "approvals/thread.html", context)


# From this many checkpoints on, the thread page loads the selected checkpoint's panel after
# the tree (`thread_detail`).
LAZY_PANEL_FROM = 500


@require_GET
def thread_live(request: HttpRequest, thread_id: str) -> HttpResponse:
    """What a live update sends this viewer (out-of-band swaps only): new tree rows appended
    (or the tree redrawn when it changed otherwise) and the regions whose text changed.
    The page sends its state (`#tree-state`): selection, opened folds, what it drew."""
    thread = access_thread(request.user, thread_id, for_update=False)
    state = treeview.TreeState.from_query(request.GET)
    parts = _side_parts(request, thread)
    digests = _digests(parts)
    had = (request.GET.get("side") or "").split(".")
    padded = [*had, *[""] * len(SIDE_PARTS)]
    changed = [p for p, old, new in zip(SIDE_PARTS, padded, digests.split("."), strict=False)
               if old != new]
    # A page showing its default selection (not the viewer's pick) moves it to the head
    # when the run stops moving (its status changes: waiting for review, done, failed) and
    # when the first checkpoints come to a page drawn without any: a run's progress costs
    # no more than before (the panel stays; rows are appended), one panel read per pause.
    # Before, a page opened by "New run" went on showing step 18 once the run waited at 121.
    head = thread.head_checkpoint_id
    follows = state.follow or not (state.selected or state.head)
    moved = follows and head and head != state.selected and (
        "status" in changed or not state.head)
    if moved:
        state = dataclasses.replace(state, selected=head)
    # a review opened or closed moves the tree's "waiting" marks, a moved selection its
    # highlight: redraw it then
    update = treeview.build(thread, state) if "reviews" in changed or moved else (
        treeview.live_append(thread, state)
    )
    context = {
        "thread": thread,
        "side": [mark_safe(parts[p]) for p in changed],  # noqa: S308  rendered templates
        "digests": digests,
        **_tree_urls(thread),
    }
    if isinstance(update, treeview.Append):
        context.update(tree=update.view, append=True, previous=update.view.rows[0],
                       new_rows=update.view.rows[1:])
    else:
        context.update(tree=update, append=False)
    selected = context["selected"] = context["tree"].state.selected
    if moved:
        # the panel follows (lazily: one request). A page drawn before the thread had a
        # checkpoint ("no checkpoint yet", as after "New run") marked a row selected at its
        # first live update and kept saying there was no checkpoint.
        context["panel_url"] = f'{context["cp_base"]}{selected}/'
    return render(request, "approvals/_thread_live.html", context)


@require_GET
def thread_tree(request: HttpRequest, thread_id: str) -> HttpResponse:
    """`?unfold=<first>..<last>`: the rows that replace that fold (htmx), or the thread page
    with it opened (a plain link). The page's state comes along (`#tree-state`)."""
    thread = access_thread(request.user, thread_id, for_update=False)
    state = treeview.TreeState.from_query(request.GET)
    key = request.GET.get("unfold", "")
    view = treeview.unfold(thread, state, key)
    if view is None:
        return render(request, "approvals/_missing.html",
                      {"what": f"fold {key!r} (the tree changed: reload the page)"}, status=404)
    if not request.htmx:
        query = [("open", k) for k in view.state.opened]
        if state.selected:
            query.append(("checkpoint", state.selected))
        return redirect(reverse("thread", args=[thread_id]) + "?" + urlencode(query))
    context = {"thread": thread, "tree": view, "rows": view.rows, "selected": view.state.selected,
               "opened": view.state.opened[-1], **_tree_urls(thread)}
    return render(request, "approvals/_tree_unfold.html", context)


@require_GET
def compare_choices(request: HttpRequest, thread_id: str, checkpoint_id: str) -> HttpResponse:
    """Options for "compare with" (at most 25, `?q=` a step number or an id's start)."""
    thread = access_thread(request.user, thread_id, for_update=False)
    choices = selectors.compare_choices(thread, request.GET.get("q", ""))
    context = {"choices": [c for c in choices if c[0] != checkpoint_id],
               "against": request.GET.get("against", ""), "query": request.GET.get("q", "")}
    return render(request, "approvals/_compare_options.html", context)


def _checkpoint_context(
    thread: Thread, checkpoint_id: str, against: str, query: str = ""
) -> dict[str, Any]:
    """The selected checkpoint's panel. A damaged checkpoint (or the one it is compared with)
    fills the panel with what went wrong and what to do; the page around it still renders.

    `query`: what the Find box held when its form was sent (Enter, or the no-script Compare
    button). "Compare with" then names the option picked if it matches, else the newest
    checkpoint that matches (not the selected one); nothing matching is said in the panel."""
    missed = ""
    query = query.strip()
    if query:
        found = [cid for cid, _, _ in selectors.compare_choices(thread, query)
                 if cid != checkpoint_id]
        if not found:
            missed = query
        elif against not in found:
            against = found[0]
    return {**_panel(thread, checkpoint_id, against), "find_query": query, "find_missed": missed}


def _panel(thread: Thread, checkpoint_id: str, against: str) -> dict[str, Any]:
    try:
        tup, other = selectors.get_checkpoint_pair(thread, checkpoint_id or None, against or None)
    except UnreadableCheckpoint as exc:
        return {"checkpoint": None, "unreadable": exc}
    if tup is None:
        return {"checkpoint": None}
    return {
        "checkpoint": tup,
        "checkpoint_values": dict(tup.checkpoint.values),
        "against_values": dict(other.checkpoint.values) if other is not None else {},
        "against": other,
        "against_is_parent": not against,
        "changes": diff_states(selectors.checkpoint_values(other), tup.checkpoint.values),
    }


@require_GET
def checkpoint_detail(request: HttpRequest, thread_id: str, checkpoint_id: str) -> HttpResponse:
    thread = access_thread(request.user, thread_id, for_update=False)
    context = _checkpoint_context(
        thread, checkpoint_id, request.GET.get("against", ""), request.GET.get("q", "")
    )
    if context["checkpoint"] is None and "unreadable" not in context:
        return _missing(request, f"checkpoint {checkpoint_id}")
    context.update(thread=thread, can_fork=request.user.has_perm(FORK))
    if request.htmx:
        return render(request, "approvals/_checkpoint.html", context)
    against = request.GET.get("against", "")
    if context.get("against") is not None and not context["against_is_parent"]:
        against = context["against"].checkpoint.id  # what the Find box found
    query = {"checkpoint": checkpoint_id, "against": against}
    return redirect(reverse("thread", args=[thread_id]) + "?" + urlencode(
        {k: v for k, v in query.items() if v}
    ))


@require_http_methods(["GET", "POST"])
def fork(request: HttpRequest, thread_id: str, checkpoint_id: str) -> HttpResponse:
    thread = access_thread(request.user, thread_id, for_update=True)
    try:
        tup = selectors.get_checkpoint(thread, checkpoint_id)
    except UnreadableCheckpoint as exc:
        context = {"thread": thread, "unreadable": exc}
        return render(request, "approvals/unreadable.html", context, status=409)
    if tup is None:
        return _missing(request, f"checkpoint {checkpoint_id}")
    form = ForkForm(
        request.POST or None, values=tup.checkpoint.values, types=selectors.state_types(thread),
        writers=list(tup.metadata.writes), next_nodes=tup.checkpoint.next,
    )
    if request.method == "POST" and form.is_valid():
        try:
            do_fork(request.user, thread, checkpoint_id, form.cleaned_data["changed"],
                    form.cleaned_data["reason"], form.cleaned_data.get("as_node") or None)
        except ForkNeedsNode as exc:
            form.add_error("as_node", str(exc))
        except ReviewError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Fork started: a new branch runs from that checkpoint.")
            return _back_to(request, reverse("thread", args=[thread_id]))
    status = 400 if request.method == "POST" else 200
    context = {"thread": thread, "checkpoint": tup, "form": form,
               "rerun": replay_preview(thread, checkpoint_id)}
    return render(request, "approvals/fork.html", context, status=status)


@require_POST
def subgraph_fork(request: HttpRequest, thread_id: str) -> HttpResponse:
    """Branch the thread from a subgraph's checkpoint (shown folded in the tree)."""
    thread = access_thread(request.user, thread_id, for_update=True)
    try:
        do_fork_subgraph(
            request.user, thread, request.POST.get("namespace", ""),
            request.POST.get("checkpoint_id", ""), request.POST.get("reason", ""),
        )
    except ReviewError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Fork started: a new branch runs from that subgraph checkpoint.")
    return _back_to(request, reverse("thread", args=[thread_id]))


@require_GET
def checkpoint_state(request: HttpRequest, thread_id: str, checkpoint_id: str) -> HttpResponse:
    """A checkpoint's whole state (or one `?field=`) as JSON: where a page's cut value leads.
    `?ns=` reads a subgraph's checkpoint (the thread page's folds link here)."""
    thread = access_thread(request.user, thread_id, for_update=False)
    namespace = request.GET.get("ns", "")
    try:
        tup = selectors.get_checkpoint(thread, checkpoint_id, namespace)
    except UnreadableCheckpoint as exc:
        return JsonResponse({"error": str(exc)}, status=409)
    if tup is None:
        where = f" in subgraph {namespace}" if namespace else ""
        raise Http404(f"Thread {thread_id} has no checkpoint {checkpoint_id}{where}.")
    values = to_jsonable(dict(tup.checkpoint.values))
    field = request.GET.get("field")
    if field is not None:
        if field not in values:
            raise Http404(f"Checkpoint {checkpoint_id} has no field {field!r}.")
        values = values[field]
    return JsonResponse(values, safe=False)


# ---------------------------------------------------------------- ops


@require_GET
def ops(request: HttpRequest) -> HttpResponse:
    require(request.user, VIEW_OPS, "see the ops console")
    f = selectors.OpsFilter(status=request.GET.get("status", "attention") or "attention")
    attention = selectors.attention_pks()  # one read of the task queue for the rows and counts
    page = _page(request, selectors.ops_runs(f, attention))
    now = timezone.now()
    rows = [(run, selectors.stalled_for(run, now)) for run in page.object_list]
    # the action picked at first: the fix that fits most of the listed runs
    fits = Counter(fix for fix in map(fix_for, page.object_list) if fix is not None)
    context = {
        "page": page,
        "rows": rows,
        "filter": f,
        "counts": selectors.run_counts(attention),
        "count_cap": selectors.COUNT_CAP,
        "statuses": [("attention", "Needs attention"), *Run.Status.choices],
        "can_operate": request.user.has_perm(OPERATE),
        # the rows an action can apply to get a checkbox; a page of none, no action form
        "actionable": {run.pk for run in page.object_list if has_action(run)},
        "run_actions": RunAction.choices,
        # nothing preselected where no fix fits (waiting runs: only cancel, never a default)
        "default_action": fits.most_common(1)[0][0] if fits else "",
    }
    if not request.htmx:  # the page, not a table refresh: queues no worker takes
        context["unserved"] = unserved_queues()
    template = "approvals/_ops_table.html" if request.htmx else "approvals/ops.html"
    return render(request, template, context)


@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    require(request.user, VIEW_OPS, "see the ops console")  # the console's page of the run
    run = access_run(request.user, pk, for_update=False)
    context = {
        "run": run,
        "stalled_for": selectors.stalled_for(run),
        "can_operate": request.user.has_perm(OPERATE),
        "form": ReasonForm(),
        "allowed": [a for a in RunAction.values if check_run_action(run, a) is None],
    }
    return render(request, "approvals/run.html", context)


@require_POST
def run_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    run = access_run(request.user, pk, for_update=True)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Every ops action needs a reason; it is recorded with your name.")
        return _back_to(request, reverse("run", args=[pk]))
    try:
        new = do_run_action(request.user, run, action, form.cleaned_data["reason"])
    except ReviewError as exc:
        messages.error(request, str(exc))
        return _back_to(request, reverse("run", args=[pk]))
    messages.success(request, f"Run {pk}: {action} done (now run {new.pk}, {new.status}).")
    return _back_to(request, reverse("run", args=[new.pk]))


@require_POST
def ops_bulk(request: HttpRequest) -> HttpResponse:
    """Two steps: preview (how many of the chosen runs the action applies to), then confirm
    with a reason. Every run goes through `access_run`, like a single action."""
    require(request.user, OPERATE, "resume, retry or cancel runs")
    form = OpsBulkForm(request.POST)
    valid = form.is_valid()
    # a confirmation with no reason shows its preview again with the error at the reason
    # (it was a bare "Nothing selected" page that dropped the selection: an ops trial)
    reason_only = not valid and set(form.errors) == {"reason"}
    if not valid and not reason_only:
        return render(request, "approvals/ops_preview.html", {"form": form}, status=400)
    action = form.cleaned_data["action"]
    chosen = [access_run(request.user, pk, for_update=True) for pk in form.cleaned_data["runs"]]
    if reason_only or not form.cleaned_data["confirm"]:
        preview = [(run, check_run_action(run, action)) for run in chosen]
        applicable = sum(1 for _, problem in preview if problem is None)
        # the skipped runs another fix applies to: offered as a preview of that one
        instead: dict[str, list[int]] = {}
        for run, problem in preview:
            fix = fix_for(run) if problem else None
            if fix is not None and fix != action:
                instead.setdefault(fix, []).append(run.pk)
        context = {"form": form, "action": action, "preview": preview, "applicable": applicable,
                   "instead": sorted(instead.items())}
        return render(request, "approvals/ops_preview.html", context,
                      status=400 if reason_only else 200)
    results = do_bulk_run_action(request.user, chosen, action, form.cleaned_data["reason"])
    done = sum(1 for r in results if r.ok)
    messages.success(request, f"{action.capitalize()}: {done} of {len(results)} run(s) done.")
    for r in results:
        if not r.ok:
            messages.warning(request, r.message)
    return _back_to(request, reverse("ops"))

