"""``manage.py webhook_listen``: the README's receiver prints each delivery and whether its
signatures verify, and answers the status it was given; here it receives real deliveries."""

import http.server
import io
import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from integrations.webhooks import secret_generate, webhook_send
from routing.management.commands.webhook_listen import Command

BODY = b'{"type":"webhook.test","timestamp":"2026-11-30T10:00:00+00:00","data":{}}'


@pytest.fixture
def listen():
    """``listen(secret, status)``: the command's receiver on a free local port; its URL and
    what it printed."""
    servers = []

    def start(secret: str, status: int = 204):
        command = Command(stdout=io.StringIO())
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), command.handler(secret, status))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/hook", command.stdout

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def send(url: str, secret: str):
    return webhook_send(
        url=url,
        message_id="msg_42",
        body=BODY,
        secrets=[secret],
        timeout=5.0,
        allow_http=True,
        allow_private=True,
        lookup_timeout=1.0,
    )


def test_it_prints_a_delivery_whose_signatures_verify_and_answers_204(listen):
    secret = secret_generate()
    url, printed = listen(secret)

    result = send(url, secret)

    assert (result.succeeded, result.status) == (True, 204)
    output = printed.getvalue()
    assert "webhook.test webhook-id=msg_42" in output
    assert "Standard Webhooks signature: verified" in output
    assert "X-Webhook-Signature (seed 003): verified" in output
    assert BODY.decode() in output


def test_it_says_when_a_signature_does_not_verify_and_answers_the_status_given(listen):
    url, printed = listen(secret_generate(), status=410)

    result = send(url, secret_generate())

    assert result.status == 410
    assert "Standard Webhooks signature: FAILED" in printed.getvalue()
    assert "X-Webhook-Signature (seed 003): FAILED" in printed.getvalue()


def test_it_needs_a_whsec_secret():
    with pytest.raises(CommandError, match="whsec_"):
        call_command("webhook_listen", "--secret", "plain", "--port", "0")
