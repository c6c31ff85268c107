"""Routing's services, by concern: ``create`` (the only writer of routings, their ``job_sync``
events and the companies' load, through ``load``), ``sync`` (pushing routings into the receiving
companies' systems), ``requeue`` (sending failed or waiting ones back to the outbox) and
``backsync`` (completions from polls and provider webhooks). Their retry waits come from
``routing.retry``."""
