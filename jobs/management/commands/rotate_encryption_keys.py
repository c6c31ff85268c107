"""Re-encrypt every value encrypted at rest (the companies' provider credentials) with the newest
key, the first of FIELD_ENCRYPTION_KEYS. Run it after putting a new key first; the old keys can be
dropped once it has finished."""

from django.core.management.base import BaseCommand

from tradeengage.encryption import encrypted_values_rotate


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args, **options):
        rewritten = encrypted_values_rotate()
        for label, rows in rewritten.items():
            self.stdout.write(f"{label}: {rows} rows")
        self.stdout.write(
            self.style.SUCCESS(f"Re-encrypted {sum(rewritten.values())} rows with the newest key.")
        )
