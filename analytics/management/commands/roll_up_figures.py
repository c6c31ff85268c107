import time

from django.core.management.base import BaseCommand

from analytics.services import daily_figures_roll_up


class Command(BaseCommand):
    help = (
        "Roll up the dashboard's figures of every closed day not rolled up yet, and yesterday "
        "again (beat does it every hour)."
    )

    def handle(self, *args, **options):
        started = time.monotonic()
        days = daily_figures_roll_up()
        self.stdout.write(f"Rolled up {days} day(s) in {time.monotonic() - started:.1f} s.")
