import tradeengage.encryption
from django.db import migrations, models

# The secret settings when this migration was written (integrations.registry.credential_keys():
# ServiceTitan's credentials and webhook secret), frozen here so that what this step moves does
# not change with the providers.
SECRET_KEYS = ("client_id", "client_secret", "app_key", "tenant_id", "booking_provider_id", "webhook_secret")


def secrets_to_credentials(apps, schema_editor):
    """Move every secret out of ``provider_settings`` into the encrypted ``provider_credentials``."""
    Company = apps.get_model("jobs", "Company")
    companies = Company.objects.filter(provider_settings__has_any_keys=SECRET_KEYS).only(
        "id", "provider_settings", "provider_credentials"
    )
    for company in companies.iterator(chunk_size=500):
        if not isinstance(company.provider_settings, dict):
            continue  # PostgreSQL's ?| also matches the strings of a JSON array
        settings = dict(company.provider_settings)
        secrets = {key: settings.pop(key) for key in SECRET_KEYS if key in settings}
        company.provider_settings = settings
        company.provider_credentials = {**(company.provider_credentials or {}), **secrets}
        company.save(update_fields=["provider_settings", "provider_credentials"])


def credentials_to_settings(apps, schema_editor):
    """The reverse: the credentials back into ``provider_settings``, in plain JSON."""
    Company = apps.get_model("jobs", "Company")
    for company in Company.objects.only("id", "provider_settings", "provider_credentials").iterator(chunk_size=500):
        if not company.provider_credentials:
            continue
        settings = company.provider_settings if isinstance(company.provider_settings, dict) else {}
        company.provider_settings = {**settings, **company.provider_credentials}
        company.provider_credentials = {}
        company.save(update_fields=["provider_settings", "provider_credentials"])


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0005_skillcoverage"),
    ]

    operations = [
        migrations.AddField(
            model_name="company",
            name="provider_credentials",
            field=tradeengage.encryption.EncryptedJSONField(blank=True, default=dict),
        ),
        migrations.AlterField(
            model_name="company",
            name="provider_settings",
            field=models.JSONField(blank=True, default=dict, help_text="Options of its field-service system (URLs, the mock's behaviour); no secrets."),
        ),
        migrations.RunPython(secrets_to_credentials, credentials_to_settings),
    ]
