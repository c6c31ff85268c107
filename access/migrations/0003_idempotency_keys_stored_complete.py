from django.db import migrations, models


def forget_unfinished_claims(apps, schema_editor):
    """Keys are now stored only with their response; a claim still unfinished belonged to a
    request that is over or will be refused, and keeps its key from nobody."""
    apps.get_model("access", "IdempotencyKey").objects.filter(response_status__isnull=True).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("access", "0002_idempotency_keys"),
    ]

    operations = [
        migrations.RunPython(forget_unfinished_claims, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="idempotencykey",
            name="created_at",
            field=models.DateTimeField(
                help_text="When the request that used the key arrived; the key expires a day later."
            ),
        ),
        migrations.AlterField(
            model_name="idempotencykey",
            name="response_status",
            field=models.PositiveSmallIntegerField(),
        ),
        migrations.AlterField(
            model_name="idempotencykey",
            name="response_body",
            field=models.TextField(help_text="The JSON sent, as text: its key order is kept."),
        ),
    ]
