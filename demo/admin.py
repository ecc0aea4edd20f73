from __future__ import annotations

from django.contrib import admin

from demo.models import Payout


@admin.register(Payout)
class PayoutAdmin(admin.ModelAdmin):
    list_display = ("reference", "expense_id", "amount", "currency", "created_at")
    readonly_fields = ("idempotency_key", "expense_id", "amount", "currency", "reference")
    search_fields = ("reference", "idempotency_key")
