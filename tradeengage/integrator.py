"""Seed 003's contract on the endpoints it documents (``/api/v1/ingestion/``,
``/api/v1/matching/``; DESIGN.md "Contracts"): a success is ``{"success": true, "data": ...}``,
an error ``tradeengage.exceptions.integrator_body``'s ``{"success": false, "error": {...}}``."""

from rest_framework import status as http_status
from rest_framework.response import Response
from rest_framework.views import APIView

from tradeengage.exceptions import integrator_exception_handler


class IntegratorView(APIView):
    """Base of seed 003's endpoints: every error a view raises (authentication, scope, rate
    limit, validation, outage) answers in seed 003's error shape."""

    def get_exception_handler(self):
        return integrator_exception_handler


def integrator_response(data, *, status: int = http_status.HTTP_200_OK) -> Response:
    """A success in seed 003's envelope."""
    return Response({"success": True, "data": data}, status=status)
