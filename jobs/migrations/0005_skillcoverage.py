import django.db.models.deletion
from django.db import migrations, models


def coverage_build(apps, schema_editor):
    """The same derivation as jobs.coverage.coverage_rebuild, for the rows already there."""
    schema_editor.execute(
        "INSERT INTO jobs_skillcoverage (company_id, area, skill_id, level)"
        " SELECT a.company_id, a.kind || ':' || a.code, s.skill_id, s.level"
        " FROM jobs_servicearea a JOIN jobs_companyskill s ON s.company_id = a.company_id"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0004_job_zip_prefix_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="SkillCoverage",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("area", models.CharField(help_text='"state:CA" or "zip_prefix:902".', max_length=24)),
                ("level", models.PositiveSmallIntegerField(choices=[(1, "basic"), (2, "intermediate"), (3, "expert")])),
                ("company", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to="jobs.company")),
                ("skill", models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="jobs.skill")),
            ],
            options={
                "verbose_name_plural": "skill coverage",
                "indexes": [models.Index(fields=["area", "skill", "level", "company"], name="coverage_match_idx")],
            },
        ),
        migrations.RunPython(coverage_build, migrations.RunPython.noop),
    ]
