from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self):
        # Register the tasks in every process, web included: the CRM simulator queues its
        # webhook deliveries by name from a request (or the admin), where nothing else has
        # imported this module.
        from integrations import tasks  # noqa: F401
