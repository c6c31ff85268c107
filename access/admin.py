from django.contrib import admin, messages
from rest_framework_api_key.models import APIKey as UnusedLibraryApiKey

from access.models import KEY_MARK, ApiKey

# The library's own key model is not ours: keep its admin page out of ops' way.
if admin.site.is_registered(UnusedLibraryApiKey):
    admin.site.unregister(UnusedLibraryApiKey)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created here (the key is shown once, in the message after saving) and revoked
    for good by ticking "revoked"; what a key is stays out of reach."""

    list_display = ["prefix", "name", "company", "scopes", "created", "expiry_date", "revoked"]
    list_filter = ["revoked", "created"]
    search_fields = ["name", "=prefix", "company__name"]
    list_select_related = ["company"]
    autocomplete_fields = ["company"]
    fields = ["name", "company", "scopes", "expiry_date", "revoked", "prefix", "last_used_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ["prefix", "last_used_at"]
        fixed = ["company", "scopes", "prefix", "last_used_at"]
        return [*fixed, "name", "expiry_date", "revoked"] if obj.revoked else fixed

    def save_model(self, request, obj, form, change):
        if change:
            obj.save()
            return
        raw = ApiKey.objects.assign_key(obj)
        obj.save()
        self.message_user(
            request,
            f"The API key {obj.name} is {KEY_MARK}{raw} - store it now: it is shown only once.",
            messages.WARNING,
        )
