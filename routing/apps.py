from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"
    verbose_name = "Routing and sync"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        # Registers the tasks in every process, so the relay kick's call by name runs the task
        # in-process where tasks are eager (tests), instead of only through the broker.
        from routing import tasks  # noqa: F401
        from routing.models import WebhookEndpoint
        from routing.services.webhooks import companies_with_endpoints_forget

        # An endpoint saved or deleted here is heard of at once in this process.
        for signal in (post_save, post_delete):
            signal.connect(
                companies_with_endpoints_forget,
                sender=WebhookEndpoint,
                dispatch_uid=f"webhook-endpoint-companies-{signal is post_save}",
            )
