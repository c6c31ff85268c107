"""Connect CRM companies' accounts: register our webhook receiver with each (seed 002
"Register Webhook") and store the webhook secret, encrypted, in its provider credentials.
The same as the company admin's "Connect (register webhooks)" action; the secret is never
printed."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from integrations.providers import ProviderError, ProviderNotConfigured, ProviderType
from jobs.models import Company
from jobs.services import company_crm_connect


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("company_id", nargs="?", help="The id of the company to connect.")
        parser.add_argument(
            "--all",
            action="store_true",
            dest="connect_all",
            help="Connect every active CRM company.",
        )
        parser.add_argument(
            "--base-url",
            default=None,
            help="Our public base URL the CRM delivers to (default: PUBLIC_BASE_URL).",
        )

    def handle(self, *args, company_id=None, connect_all=False, base_url=None, **options):
        if bool(company_id) == connect_all:
            raise CommandError("Give one company id, or --all.")
        base_url = base_url or settings.PUBLIC_BASE_URL
        if connect_all:
            companies = list(
                Company.objects.filter(provider_type=ProviderType.CRM, is_active=True).order_by(
                    "name"
                )
            )
        else:
            try:
                companies = [Company.objects.get(pk=company_id)]
            except (Company.DoesNotExist, ValidationError):
                raise CommandError(f"No company {company_id}.") from None
            if companies[0].provider_type != ProviderType.CRM:
                raise CommandError(f"{companies[0].name} does not use the CRM provider.")
        failed = 0
        for company in companies:
            try:
                webhook = company_crm_connect(company=company, base_url=base_url)
            except (ProviderError, ProviderNotConfigured) as exc:
                failed += 1
                self.stderr.write(f"{company.name} ({company.id}): not connected: {exc}")
                continue
            self.stdout.write(
                f"{company.name} ({company.id}): connected; webhook "
                f"{webhook.get('id') or '(no id)'}, its secret stored encrypted."
            )
        self.stdout.write(f"{len(companies) - failed} of {len(companies)} connected.")
        if failed:
            raise CommandError(f"{failed} not connected.")
