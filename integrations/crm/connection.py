"""Connecting a company's CRM account: registering our webhook receiver with it (seed 002
"Register Webhook") under a secret we generate, which the CRM signs its deliveries with."""

import secrets

from integrations.crm.client import CrmClient, crm_config
from integrations.crm.webhooks import WEBHOOK_EVENTS


def crm_account_connect(*, options: dict, receiver_url: str) -> dict:
    """Authenticate with the account's credentials (``options``: its provider settings and
    credentials), generate a webhook secret and register ``receiver_url`` for the events the
    back-sync follows. Returns ``{"webhook_secret", "webhook"}`` (the CRM's answer): the
    caller stores the secret in the company's encrypted credentials and must never show it.

    Raises ``ProviderNotConfigured`` without a URL or credentials, a ``ProviderError`` when the
    CRM refuses or does not answer; nothing is registered then. Connecting again registers
    again, under a new secret (seed 002 documents no way to list or replace a webhook)."""
    client = CrmClient(crm_config(options))
    client.authenticate(fresh=True)
    webhook_secret = secrets.token_urlsafe(32)
    webhook = client.webhook_register(
        url=receiver_url, events=list(WEBHOOK_EVENTS), secret=webhook_secret
    )
    # The CRM may echo the secret back: it must not travel further than here.
    webhook = {key: value for key, value in webhook.items() if key != "secret"}
    return {"webhook_secret": webhook_secret, "webhook": webhook}
