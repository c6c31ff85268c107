from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from access.models import Scope
from access.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a company or for operations; prints the key once."

    def add_arguments(self, parser):
        owner = parser.add_mutually_exclusive_group(required=True)
        owner.add_argument("--company", help="The company's id.")
        owner.add_argument("--ops", action="store_true", help="An operations key.")
        parser.add_argument("--name", required=True, help="What the key is for.")
        parser.add_argument(
            "--scopes",
            nargs="+",
            choices=Scope.values,
            help="Default: every company scope, or ops for an ops key.",
        )
        parser.add_argument("--expires", help="ISO date-time after which it stops working.")

    def handle(self, *args, company, ops, name, scopes, expires, **options):
        expires_at = parse_datetime(expires) if expires else None
        if expires and expires_at is None:
            raise CommandError(f"--expires {expires!r} is not an ISO date-time.")
        try:
            api_key, text = api_key_create(
                name=name, company_id=company, scopes=scopes, expires_at=expires_at
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stderr.write(f"Created {api_key.name} ({api_key.prefix}); store it now:")
        self.stdout.write(text)
