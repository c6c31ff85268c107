"""Routing's endpoints: routings and manual syncs, the providers' webhooks coming in, and
companies' outbound webhook endpoints."""
