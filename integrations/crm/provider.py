"""The CRM as a provider (seed 002): a piece of work becomes a work order for the homeowner's
customer record, found or created; its work orders and invoices are read back for the
back-sync, and its signed webhooks become status updates."""

import threading
from collections.abc import Sequence

from integrations.crm.client import (
    CONNECT_TIMEOUT_SECONDS,
    READ_TIMEOUT_SECONDS,
    CrmClient,
    crm_config,
)
from integrations.crm.mapping import (
    cancelled_notes,
    customer_body,
    work_order_body,
    work_order_status,
)
from integrations.crm.webhooks import crm_webhook_parse
from integrations.providers import (
    PermanentProviderError,
    Provider,
    ProviderJobStatus,
    ProviderNotConfigured,
    ProviderType,
    StatusUpdate,
    WebhookRejected,
    Work,
)

_clients = threading.local()


class CrmProvider(Provider):
    provider_type = ProviderType.CRM
    credential_keys = ("client_id", "client_secret", "webhook_secret")

    def _client(self, timeout: float) -> CrmClient:
        """One client per configuration and thread, so its HTTP session (and its pooled
        connections) is reused from call to call; the timeouts never exceed the call's."""
        config = crm_config(self.options)
        for key, default in (
            ("connect_timeout_seconds", CONNECT_TIMEOUT_SECONDS),
            ("timeout_seconds", READ_TIMEOUT_SECONDS),
        ):
            config[key] = min(float(config.get(key) or default), timeout)
        key = tuple(sorted((name, str(value)) for name, value in config.items()))
        clients = _clients.__dict__.setdefault("by_config", {})
        if key not in clients:
            clients[key] = CrmClient(config)
        return clients[key]

    def create_job(self, *, work: Work, timeout: float) -> str:
        """The work order's id. Idempotent on ``work.idempotency_key``: the customer is found
        before one is created, and the customer's work orders are searched for our reference
        line before one is posted, so a retry after a lost answer returns the first attempt's
        work order (two attempts at the very same instant could still both post: the sync
        engine never runs two for one routing)."""
        client = self._client(timeout)
        customer = client.customer_find(email=work.customer.email, phone=work.customer.phone)
        if customer is None:
            customer = client.customer_create(customer_body(work))
        customer_id = str(customer.get("id") or "")
        if not customer_id:
            raise PermanentProviderError(
                "The CRM answered the customer without an id", code="Invalid Response"
            )
        existing = client.work_order_find(
            customer_id=customer_id, idempotency_key=work.idempotency_key
        )
        if existing is not None:
            return str(existing["id"])
        body = work_order_body(work, customer_id=customer_id, config=crm_config(self.options))
        created = client.work_order_create(body)
        if created.get("id") in (None, ""):
            raise PermanentProviderError(
                "The CRM answered the work order without an id", code="Invalid Response"
            )
        return str(created["id"])

    def get_job_status(self, *, external_id: str, timeout: float) -> ProviderJobStatus:
        client = self._client(timeout)
        work_order = client.work_order_get(external_id)
        invoices = []
        if work_order_status(work_order, external_id=external_id).status == "completed":
            invoices = client.invoices_for_customer(str(work_order.get("customer_id")))
        return work_order_status(work_order, external_id=external_id, invoices=invoices)

    def get_job_statuses(
        self, *, external_ids: Sequence[str], timeout: float
    ) -> dict[str, ProviderJobStatus]:
        """One GET per work order (seed 002 lists work orders by customer, status or date, not
        by id), then one invoice list per customer of the completed ones. A work order the CRM
        refuses permanently (404) is left out."""
        client = self._client(timeout)
        work_orders = {}
        for external_id in dict.fromkeys(external_ids):
            try:
                work_orders[external_id] = client.work_order_get(external_id)
            except PermanentProviderError:
                continue
        customers = {
            str(work_order.get("customer_id"))
            for external_id, work_order in work_orders.items()
            if work_order_status(work_order, external_id=external_id).status == "completed"
        }
        invoices = []
        for customer_id in sorted(customers):
            invoices.extend(client.invoices_for_customer(customer_id))
        return {
            external_id: work_order_status(work_order, external_id=external_id, invoices=invoices)
            for external_id, work_order in work_orders.items()
        }

    def cancel_job(self, *, external_id: str, reason: str, timeout: float) -> None:
        """``PATCH /work-orders/{id}`` to cancelled, the reason appended to its notes (read
        first: a PATCH replaces the notes, and the reference line must stay)."""
        client = self._client(timeout)
        work_order = client.work_order_get(external_id)
        client.work_order_update(
            external_id,
            {
                "status": "cancelled",
                "notes": cancelled_notes(str(work_order.get("notes") or ""), reason),
            },
        )

    def health(self) -> dict:
        try:
            client = self._client(10.0)
        except ProviderNotConfigured as exc:
            return {"status": "unhealthy", "authenticated": False, "error": str(exc)}
        return client.get_health_status()

    def webhook_status_update(self, *, body: bytes, headers) -> StatusUpdate:
        secret = crm_config(self.options).get("webhook_secret")
        if not secret:
            raise WebhookRejected(
                "No webhook secret is configured for this CRM account: connect it first."
            )
        return crm_webhook_parse(body=body, headers=headers, secret=secret)
