class FakeClock:
    """A clock for ``RateLimiter(clock=..., sleep=...)``: sleeping moves it on at once, and the
    sleeps are recorded."""

    def __init__(self, now: float):
        self.now = now
        self.sleeps = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
