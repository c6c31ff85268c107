"""Routing's services, by concern: ``create`` (the only writer of routings, their ``job_sync``
events and the companies' load, through ``load``), ``sync`` (pushing routings into the receiving
companies' systems), ``requeue`` (sending failed or waiting ones back to the outbox),
``backsync`` (completions from polls and provider webhooks), ``webhooks`` (companies' outbound
webhook endpoints and ``webhooks_notify``, the one writer of their deliveries) and
``webhook_delivery`` (sending them), ``calls`` (the process's provider calls) and ``retention``
(purging finished work). Their retry waits come from ``routing.retry``."""
