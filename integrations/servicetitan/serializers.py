"""Request validation for the ServiceTitan module's endpoints (seed 001 "Validation")."""

import re

from rest_framework import serializers

from integrations.servicetitan.types import PROBLEM_TYPES, STATUSES, Booking
from tradeengage.fields import printable_text

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z .'\-]*$")
NAME_RULE = "Names may hold letters, spaces, apostrophes, periods and hyphens."
PHONE_PATTERN = re.compile(r"^\+?1?\D*(\d{3})\D*(\d{3})\D*(\d{4})$")
PHONE_RULE = "Phone must be a 10-digit US number."
ZIP_PATTERN = r"^\d{5}(-\d{4})?$"
TIME_SLOT_PATTERN = r"^\d{1,2}:\d{2} ?(AM|PM) ?- ?\d{1,2}:\d{2} ?(AM|PM)$"
MAX_BATCH_SIZE = 50


class StrictBooleanField(serializers.BooleanField):
    """true or false only: DRF's would take "yes", 1 or "on"."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class BookingSerializer(serializers.Serializer):
    bookingId = serializers.CharField(
        max_length=100, required=False, allow_blank=True, validators=[printable_text]
    )
    firstName = serializers.RegexField(
        NAME_PATTERN, max_length=100, error_messages={"invalid": NAME_RULE}
    )
    lastName = serializers.RegexField(
        NAME_PATTERN, max_length=100, error_messages={"invalid": NAME_RULE}
    )
    phone = serializers.RegexField(
        PHONE_PATTERN, max_length=20, error_messages={"invalid": PHONE_RULE}
    )
    email = serializers.EmailField(max_length=255)
    address = serializers.CharField(max_length=255, validators=[printable_text])
    city = serializers.CharField(max_length=100, validators=[printable_text])
    state = serializers.RegexField(
        r"^[A-Z]{2}$", error_messages={"invalid": "State must be two uppercase letters."}
    )
    zip = serializers.RegexField(
        ZIP_PATTERN, error_messages={"invalid": "ZIP must be 5 digits (or ZIP+4)."}
    )
    problemType = serializers.ChoiceField(choices=sorted(PROBLEM_TYPES))
    doorCount = serializers.IntegerField(min_value=1, max_value=10, default=1)
    doorAge = serializers.IntegerField(min_value=0, max_value=100, required=False, allow_null=True)
    isRenter = StrictBooleanField(default=False)
    scheduledDate = serializers.DateTimeField(required=False, allow_null=True)
    timeSlot = serializers.RegexField(
        TIME_SLOT_PATTERN,
        required=False,
        allow_blank=True,
        error_messages={"invalid": 'Time slot must look like "9:00 AM - 11:00 AM".'},
    )
    specialInstructions = serializers.CharField(
        max_length=1000, required=False, allow_blank=True, validators=[printable_text]
    )

    def validate_phone(self, value):
        return "".join(PHONE_PATTERN.match(value).groups())

    def to_booking(self) -> Booking:
        data = self.validated_data
        return Booking(
            booking_id=data.get("bookingId", ""),
            first_name=data["firstName"],
            last_name=data["lastName"],
            phone=data["phone"],
            email=data["email"],
            address=data["address"],
            city=data["city"],
            state=data["state"],
            zip=data["zip"],
            problem_type=data["problemType"],
            door_count=data["doorCount"],
            door_age=data.get("doorAge"),
            is_renter=data["isRenter"],
            scheduled_date=data.get("scheduledDate"),
            time_slot=data.get("timeSlot", ""),
            special_instructions=data.get("specialInstructions", ""),
        )


class StatusUpdateSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=STATUSES)


class CancelSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, validators=[printable_text])


class DateRangeSerializer(serializers.Serializer):
    """Seed 001's ``GET /jobs`` query: the seed bounds the range by nothing but its two dates,
    so any span is answered with every job in it (the real client follows ServiceTitan's pages
    until ``hasMore`` is false)."""

    startDate = serializers.DateTimeField()
    endDate = serializers.DateTimeField()

    def validate(self, data):
        if data["endDate"] < data["startDate"]:
            raise serializers.ValidationError({"endDate": "endDate must not be before startDate."})
        return data


class BatchSerializer(serializers.Serializer):
    bookings = serializers.ListField(
        child=serializers.DictField(), min_length=1, max_length=MAX_BATCH_SIZE
    )


class WebhookSerializer(serializers.Serializer):
    """A status update signed as Standard Webhooks, the form our simulator and the senders we
    control use (documented in the README)."""

    eventId = serializers.CharField(max_length=200)
    eventType = serializers.ChoiceField(choices=["job.status_changed"])
    data = serializers.DictField()


class WebhookDataSerializer(serializers.Serializer):
    jobId = serializers.IntegerField(required=False)
    jobNumber = serializers.CharField(max_length=50, required=False)
    bookingId = serializers.CharField(max_length=100, required=False)
    externalId = serializers.CharField(max_length=100, required=False)
    status = serializers.ChoiceField(choices=STATUSES)
    completedOn = serializers.DateTimeField(required=False, allow_null=True)
    invoiceTotal = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=0, required=False, allow_null=True
    )
    reason = serializers.CharField(
        max_length=500, required=False, allow_blank=True, validators=[printable_text]
    )

    def validate(self, data):
        if not any(data.get(key) for key in ("jobNumber", "bookingId", "externalId")):
            raise serializers.ValidationError(
                "One of jobNumber, bookingId or externalId must name the job."
            )
        return data


class ReasonField(serializers.Field):
    """A reason as text, or as the ``{"id", "name"}`` reference ServiceTitan's v2 models use
    for named things; its name is what we keep."""

    default_error_messages = {"invalid": "A reason is text or an object with a name."}

    def to_internal_value(self, data):
        if isinstance(data, dict):
            data = data.get("name") or ""
        if not isinstance(data, str):
            self.fail("invalid")
        return data[:500]


class ServiceTitanEventSerializer(serializers.Serializer):
    """A v2 webhook event's envelope. ServiceTitan's public pages (developer-next.servicetitan.io
    /docs/webhooks) name no envelope, only payloads "aligned with our APIs": the event id and
    type are read when present, and the entity is ``data``, or the body itself without one."""

    eventId = serializers.CharField(max_length=200, required=False)
    eventType = serializers.CharField(max_length=100, required=False, allow_blank=True)
    data = serializers.DictField(required=False)


class ServiceTitanEntitySerializer(serializers.Serializer):
    """The job (jpm v2 Job) or booking (crm v2 Booking) an event is about, in those models' field
    names. ``bookingId`` on a job, ``total`` and the reasons are read when present: no public
    page pins them for webhooks."""

    id = serializers.IntegerField(required=False, allow_null=True)
    jobId = serializers.IntegerField(required=False, allow_null=True)
    jobNumber = serializers.CharField(max_length=50, required=False, allow_null=True)
    jobStatus = serializers.CharField(max_length=50, required=False, allow_null=True)
    status = serializers.CharField(max_length=50, required=False, allow_null=True)
    bookingId = serializers.IntegerField(required=False, allow_null=True)
    externalId = serializers.CharField(
        max_length=100, required=False, allow_blank=True, allow_null=True
    )
    completedOn = serializers.DateTimeField(required=False, allow_null=True)
    total = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=0, required=False, allow_null=True
    )
    cancelReason = ReasonField(required=False, allow_null=True)
    dismissingReason = ReasonField(required=False, allow_null=True)
    memo = ReasonField(required=False, allow_null=True)
