"""Rebuild matching's coverage index (``SkillCoverage``) from the service areas and skills, after
they were changed by bulk writes or SQL that send no signals."""

from django.core.management.base import BaseCommand

from jobs.coverage import coverage_rebuild


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args, **options):
        rows = coverage_rebuild()
        self.stdout.write(f"Coverage rebuilt: {rows} rows.")
