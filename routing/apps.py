from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"
    verbose_name = "Routing and sync"

    def ready(self):
        # Registers the tasks in every process, so the relay kick's call by name runs the task
        # in-process where tasks are eager (tests), instead of only through the broker.
        from routing import tasks  # noqa: F401
