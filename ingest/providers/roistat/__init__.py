"""Roistat "own CRM" (Своя CRM): GET (or form POST) requests authenticated by token = md5(user + password).

`params` reads a request, `records` turns event actions into canonical records, `exports` answers Roistat's polls from
our store, `provider` ties them to the provider interface.
"""
from ingest.providers.roistat.provider import RoistatProvider, RoistatSettings

__all__ = ["RoistatProvider", "RoistatSettings"]
