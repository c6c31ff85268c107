"""The admin's shared conventions: rows that only services change, error columns, and the
messages that report what an action did."""

from django.contrib import messages
from django.utils.html import format_html
from django.utils.text import Truncator

ERROR_PREVIEW_CHARS = 100


class ReadOnlyAdminMixin:
    """Rows a service owns: listed and viewed, never added or edited by hand. The change page
    opens read-only, and a POST to it is refused; the model's change permission still grants
    the actions, which call the services."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request)


class ViewOnlyAdminMixin:
    """Rows of someone else's system (a provider's, a simulator's): viewed, never changed, and
    no actions."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def error_preview(message: str | None):
    """The start of an error for a list column, the whole of it in the tooltip."""
    if not message:
        return ""
    return format_html(
        '<span title="{}">{}</span>', message, Truncator(message).chars(ERROR_PREVIEW_CHARS)
    )


def error_in_full(message: str | None):
    """An error as the provider worded it, wrapped, long tokens (URLs, JSON) included."""
    if not message:
        return "-"
    return format_html(
        '<div style="white-space: pre-wrap; overflow-wrap: anywhere; max-width: 60rem;">{}</div>',
        message,
    )


def action_result_message(
    action: str, outcomes: list[tuple[int, str]], *, nothing: str, not_tried_note: str = ""
) -> str:
    """ "Retry now: 2 synced, 1 failed again." from ``(count, what)`` pairs (zero counts left
    out), ``nothing`` when every count is zero, and a note on what was not tried, if any."""
    said = ", ".join(f"{count} {what}" for count, what in outcomes if count)
    message = f"{action}: {said or nothing}."
    if not_tried_note:
        message += f" {not_tried_note}"
    return message


def action_result_level(*, succeeded: int, failed: int, not_tried: int) -> int:
    """An error when nothing succeeded and something failed, a warning when something failed
    or was not tried, else success (or info when there was nothing to do)."""
    if failed and not succeeded:
        return messages.ERROR
    if failed or not_tried:
        return messages.WARNING
    return messages.SUCCESS if succeeded else messages.INFO
