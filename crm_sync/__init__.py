"""Canonical model, identity resolution and delivery to downstream CRMs."""
