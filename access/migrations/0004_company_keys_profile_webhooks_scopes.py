from django.db import migrations, models

NEW_SCOPES = ["profile", "webhooks"]


def grant_new_scopes(apps, schema_editor):
    """Company keys that may create jobs may also manage their company's matching profile and
    webhooks, as every company key made from now on may."""
    ApiKey = apps.get_model("access", "ApiKey")
    changed = []
    for api_key in ApiKey.objects.filter(company__isnull=False).only("id", "scopes"):
        if "jobs:write" in api_key.scopes:
            missing = [scope for scope in NEW_SCOPES if scope not in api_key.scopes]
            if missing:
                api_key.scopes = [*api_key.scopes, *missing]
                changed.append(api_key)
    ApiKey.objects.bulk_update(changed, ["scopes"], batch_size=500)


class Migration(migrations.Migration):
    dependencies = [
        ("access", "0003_idempotency_keys_stored_complete"),
    ]

    operations = [
        migrations.AlterField(
            model_name="apikey",
            name="scopes",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="What the key may do: jobs:read, jobs:write, sync, processing, "
                "profile, webhooks, ops.",
            ),
        ),
        migrations.RunPython(grant_new_scopes, migrations.RunPython.noop),
    ]
