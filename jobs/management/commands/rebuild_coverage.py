"""Rebuild matching's coverage index (``SkillCoverage``) from the service areas and skills, after
they were changed by bulk writes or SQL that send no signals."""

import sys
import time

from django.core.management.base import BaseCommand
from django.template.defaultfilters import pluralize
from tqdm import tqdm

from jobs.coverage import coverage_rebuild
from jobs.models import Company


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args, **options):
        started = time.monotonic()
        rebuilt = 0

        def advance(companies: int) -> None:
            nonlocal rebuilt
            rebuilt += companies
            progress.update(companies)

        progress = tqdm(
            total=Company.objects.count(),
            unit="company",
            desc="Rebuilding coverage",
            file=options.get("stderr") or sys.stderr,
            disable=None,
        )
        with progress:
            rows = coverage_rebuild(on_progress=advance)
        self.stdout.write(
            f"Coverage rebuilt: {rows} rows. {rebuilt} compan{pluralize(rebuilt, 'y,ies')} "
            f"in {time.monotonic() - started:.1f} s."
        )
