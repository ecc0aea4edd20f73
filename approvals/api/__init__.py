"""The HTTP API (`/api/v1/`), its tokens, idempotency records and webhooks (app label
"stepwise_api"). Every endpoint reaches objects through `approvals.access`, like the pages."""
