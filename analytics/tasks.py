from celery import shared_task

from analytics.services import daily_figures_roll_up


@shared_task(ignore_result=True)
def roll_up_daily_figures() -> int:
    """Beat every hour: the closed days not rolled up yet, and yesterday again."""
    return daily_figures_roll_up()
