from rest_framework import parsers
from rest_framework.exceptions import ParseError

SURROGATES = range(0xD800, 0xE000)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing as malformed input what would otherwise end in a 500: a body
    nested too deeply, and a string holding a lone surrogate (an unpaired ``\\ud800``-style
    escape: valid JSON, but not text, so echoing it in an error could not be encoded)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError("JSON parse error - nested too deeply") from exc
        if _holds_a_lone_surrogate(data):
            raise ParseError(
                "JSON parse error - a string holds an unpaired surrogate escape (\\ud800 to "
                "\\udfff), which is not text"
            )
        return data


def _holds_a_lone_surrogate(data) -> bool:
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not item.isascii() and any(ord(char) in SURROGATES for char in item):
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False
