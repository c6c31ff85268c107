"""Strict input fields for every API: JSON types are taken as sent, never coerced, and text is
text: no control characters (but tab and line breaks) and no bidirectional overrides, which
could disguise what a homeowner's address or a summary says."""

import re

from rest_framework import serializers

UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def printable_text(value: str) -> None:
    """A DRF validator refusing control characters and bidirectional overrides."""
    if UNPRINTABLE.search(value):
        raise serializers.ValidationError(
            "Control characters and bidirectional overrides are not allowed."
        )


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers instead of quietly turning them into strings, and
    unprintable text."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators.append(printable_text)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictUUIDField(serializers.UUIDField):
    """A UUIDField that only takes strings (DRF's would turn the integer 5 into a UUID)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)
