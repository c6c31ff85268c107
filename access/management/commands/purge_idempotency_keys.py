from django.core.management.base import BaseCommand

from access.idempotency import idempotency_keys_purge


class Command(BaseCommand):
    help = "Delete the Idempotency-Key records older than a day (beat does it every hour)."

    def handle(self, *args, **options):
        self.stdout.write(f"Deleted {idempotency_keys_purge()} expired idempotency key(s).")
