"""The "API tokens" page: a logged-in person lists, creates and revokes their own tokens.
A new token is shown once, on the response to the POST that created it."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from approvals.api.models import ApiToken, EmailPreference
from approvals.api.tokens import issue_token, revoke_token


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, required=False,
                           help_text="What uses it, e.g. “billing system”.")


@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    created = None
    form = TokenForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        _token, created = issue_token(request.user, form.cleaned_data["name"])
        form = TokenForm()
    rows = ApiToken.objects.filter(user=request.user).order_by("-created_at")
    return render(request, "api/tokens.html",
                  {"tokens": rows, "form": form, "created": created},
                  status=201 if created else 200)


@require_POST
def revoke(request: HttpRequest, pk: int) -> HttpResponse:
    if revoke_token(request.user, pk):
        messages.success(request, "Token revoked: requests using it now get 401.")
    else:
        messages.error(request, "That token is not one of yours, or it is already revoked.")
    return redirect("api-tokens")


class NotificationForm(forms.ModelForm):
    class Meta:
        model = EmailPreference
        fields = ["review_requests"]


@require_http_methods(["GET", "POST"])
def notifications(request: HttpRequest) -> HttpResponse:
    pref, _ = EmailPreference.objects.get_or_create(user=request.user)
    form = NotificationForm(request.POST if request.method == "POST" else None, instance=pref)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Saved.")
        return redirect("notifications")
    return render(request, "api/notifications.html", {"form": form})
