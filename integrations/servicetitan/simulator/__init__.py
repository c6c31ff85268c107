"""The ServiceTitan simulator: the database simulation and its slice of the real HTTP API."""
