"""Exit 0 when this host's worker (or beat) has sent a heartbeat within the last minute, 1
otherwise: the container healthcheck of docker-compose.yml's worker and beat."""

import socket

from django.core.management.base import BaseCommand, CommandError

from tradeengage import heartbeats


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument(
            "--worker",
            nargs="?",
            const=f"celery@{socket.gethostname()}",
            metavar="HOSTNAME",
            help="a worker's node name (default: celery@ this host's name)",
        )
        which.add_argument("--beat", action="store_true", help="beat's last tick")

    def handle(self, *args, worker=None, beat=False, **options):
        if beat:
            age = heartbeats.beat_last_tick_age()
            if age is None or age > heartbeats.STALE_AFTER_SECONDS:
                raise CommandError(f"beat has not ticked for {heartbeats.STALE_AFTER_SECONDS} s")
            self.stdout.write(f"beat ticked {age:.0f} s ago")
            return
        queues = heartbeats.worker_queues(worker)
        if queues is None:
            raise CommandError(f"no heartbeat from {worker} in {heartbeats.STALE_AFTER_SECONDS} s")
        self.stdout.write(f"{worker} is alive, consuming {', '.join(queues)}")
