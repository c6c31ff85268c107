"""Client processing (seed 004 "Processing Logic"), read through seeds/README.md: a client is a
subscribing company, its cities are its service area, and the properties it is assigned are
leads (open jobs) in that area.

A run goes step by step, each step a service of its own in its own transaction: load the client,
refresh its data from its provider, collect leads, assign them, email the report, mark it done.
A step that fails rolls back and sends the run to the retry queue (``processing_job_fail``).

By concern: ``runs`` (starting, running and retrying runs, the nightly schedule), ``leads``
(collecting and assigning them) and ``reports`` (the client's report and the ops alert).
"""
