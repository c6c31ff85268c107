from django.db import migrations

CATEGORIES = [
    ("plumbing", "Plumbing"),
    ("electrical", "Electrical"),
    ("hvac", "HVAC"),
    ("roofing", "Roofing"),
    ("garage_doors", "Garage doors"),
    ("general", "General contracting"),
]

# (slug, name, category)
SKILLS = [
    ("plumbing", "Plumbing", "plumbing"),
    ("water_heater", "Water heater install and repair", "plumbing"),
    ("drain_cleaning", "Drain cleaning", "plumbing"),
    ("electrical", "Electrical", "electrical"),
    ("panel_upgrade", "Electrical panel upgrade", "electrical"),
    ("ev_charger", "EV charger installation", "electrical"),
    ("hvac", "HVAC", "hvac"),
    ("ac_repair", "Air conditioning repair", "hvac"),
    ("furnace_repair", "Furnace repair", "hvac"),
    ("roofing", "Roofing", "roofing"),
    ("gutters", "Gutters", "roofing"),
    ("garage_doors", "Garage doors", "garage_doors"),
    ("garage_door_opener", "Garage door openers", "garage_doors"),
    ("general", "General handyman work", "general"),
    ("carpentry", "Carpentry", "general"),
    ("drywall", "Drywall", "general"),
    ("painting", "Painting", "general"),
]


def seed(apps, schema_editor):
    Category = apps.get_model("jobs", "Category")
    Skill = apps.get_model("jobs", "Skill")
    categories = {}
    for slug, name in CATEGORIES:
        categories[slug], _ = Category.objects.get_or_create(slug=slug, defaults={"name": name})
    for slug, name, category in SKILLS:
        Skill.objects.get_or_create(
            slug=slug, defaults={"name": name, "category": categories[category]}
        )


class Migration(migrations.Migration):
    dependencies = [("jobs", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
