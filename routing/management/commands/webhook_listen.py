"""A small receiver for trying outbound webhooks (README "Outbound webhooks"): prints each
delivery (event type, webhook-id, body) and whether both of its signatures verify with the
given secret, and answers 204, or the status given, to watch retries or a 410 disable."""

import hashlib
import hmac
import http.server
import json

from django.core.management.base import BaseCommand, CommandError
from standardwebhooks import Webhook, WebhookVerificationError


def verify_webhook_signature(payload: bytes, signature: str, secret: str) -> bool:
    """Seed 003's recipe, keyed with the whole ``whsec_...`` secret."""
    expected = hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"sha256={expected}", signature)


def delivery_report(*, body: bytes, headers: dict, secret: str) -> str:
    """What the receiver prints for one delivery."""
    try:
        Webhook(secret).verify(body, headers)
        standard = "verified"
    except WebhookVerificationError as exc:
        standard = f"FAILED ({exc})"
    seed = verify_webhook_signature(body, headers.get("x-webhook-signature", ""), secret)
    try:
        event = json.loads(body).get("type", "?")
    except ValueError:
        event = "?"
    return (
        f"{event} webhook-id={headers.get('webhook-id', '-')}\n"
        f"  Standard Webhooks signature: {standard}\n"
        f"  X-Webhook-Signature (seed 003): {'verified' if seed else 'FAILED'}\n"
        f"  {body.decode('utf-8', errors='replace')}"
    )


class Command(BaseCommand):
    help = (
        "Listen for outbound webhook deliveries on a local port: print each one and whether "
        "its signatures verify with --secret; answer --status (204)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=9000)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--secret", required=True, help="The endpoint's whsec_ secret.")
        parser.add_argument(
            "--status",
            type=int,
            default=204,
            help="The status to answer: 204 by default; 500 to watch retries, 410 to see the "
            "endpoint disabled.",
        )

    def handle(self, *args, port: int, host: str, secret: str, status: int, **options):
        if not secret.startswith("whsec_"):
            raise CommandError("--secret must be the endpoint's whsec_ secret.")
        server = http.server.ThreadingHTTPServer((host, port), self.handler(secret, status))
        self.stdout.write(
            f"Listening on http://{host}:{server.server_address[1]}/ (answering {status}); "
            "Ctrl-C to stop."
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            self.stdout.write("Stopped.")
        finally:
            server.server_close()

    def handler(self, secret: str, status: int):
        command = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {name.lower(): value for name, value in self.headers.items()}
                command.stdout.write(delivery_report(body=body, headers=headers, secret=secret))
                command.stdout.flush()
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        return Handler
