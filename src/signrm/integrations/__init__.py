"""Integrations with other libraries, imported on demand (``signrm.integrations.trl``)."""
