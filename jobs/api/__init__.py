"""The intake's endpoints: jobs (seed 000), and seed 003's ingestion and matching."""
