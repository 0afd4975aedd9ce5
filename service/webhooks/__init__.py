"""Webhooks Leadbridge sends: endpoints (endpoints.py), the address guard (addresses.py),
signing and sending each delivery (sending.py). The events themselves are written by
service.events in the transaction of each change."""
