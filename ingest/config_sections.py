"""The `[sources.<name>]` and `[destinations.<name>]` sections: each validated against its module's own settings
model (a provider's, a CRM's), every problem of every section listed at once.

What a missing key needs is the field's own `description` (and `examples`) in that module: a provider's or a CRM's
credentials are explained where they are used.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from pydantic import BaseModel, ValidationError

if TYPE_CHECKING:
    from crm_sync.destinations.base import DestinationSettings
    from ingest.settings import SourceSettings

_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def validate_sources(raw_sources: Any, problems: list[str]) -> dict[str, SourceSettings]:
    if not isinstance(raw_sources, dict):
        problems.append("sources: must be a table of [sources.<name>] sections")
        return {}
    sources = {name: _validate_source(name, fields, problems) for name, fields in raw_sources.items()}
    return {name: source for name, source in sources.items() if source is not None}


def _validate_source(name: str, fields: Any, problems: list[str]) -> SourceSettings | None:
    from ingest.providers import PROVIDERS, UnknownProvider, get_provider

    def model(provider: str):
        found = get_provider(provider)
        return f"a {found.name} source", found.settings_model

    return _validate_section(_Section("sources", "source", "provider", sorted(PROVIDERS), UnknownProvider,
                                      " (it is part of the URL)"), name, fields, model, problems)


def validate_destinations(raw: Any, problems: list[str]) -> dict[str, DestinationSettings]:
    """Each `[destinations.<name>]` against its CRM module's settings model, as sources against providers."""
    if not isinstance(raw, dict):
        problems.append("destinations: must be a table of [destinations.<name>] sections")
        return {}
    validated = {name: _validate_destination(name, fields, problems) for name, fields in raw.items()}
    destinations = {name: destination for name, destination in validated.items() if destination is not None}
    primary = [name for name, destination in destinations.items() if destination.primary]
    if len(primary) > 1:
        problems.append(f"destinations: only one destination may be primary (its record is Jivo's crm_link); "
                        f"primary = true in {', '.join(f'destinations.{n}' for n in primary)}")
    return destinations


def _validate_destination(name: str, fields: Any, problems: list[str]) -> DestinationSettings | None:
    from crm_sync.destinations import DESTINATIONS, UnknownDestination, get_destination_class

    def model(kind: str):
        found = get_destination_class(kind)
        return f"a {found.kind} destination", found.settings_model

    return _validate_section(_Section("destinations", "destination", "kind", sorted(DESTINATIONS),
                                      UnknownDestination), name, fields, model, problems)


class _Section(NamedTuple):
    table: str                       # "sources"
    noun: str                        # "source"
    selector: str                    # the key that picks the module: "provider"
    choices: list[str]               # the modules there are
    unknown: type[Exception]         # what the registry raises for another
    name_note: str = ""


def _validate_section(section: _Section, name: str, fields: Any,
                      model_of: Callable[[str], tuple[str, type[BaseModel]]], problems: list[str]) -> Any:
    """One section, every problem of it at once: its name, its module, then its keys (checked all the same)."""
    where = f"{section.table}.{name}"
    found = [] if _SOURCE_NAME.match(name) else [
        f"{where}: a {section.noun} name may hold letters, digits, '.', '_' and '-'{section.name_note}"]
    if not isinstance(fields, dict) or not fields.get(section.selector):
        problems.extend([*found, f"{where}: needs {section.selector} = \"<{'|'.join(section.choices)}>\""])
        return None
    if "name" in fields:
        found.append(f"{where}.name: unknown key (the section's name is the {section.noun}'s name)")
    settings = None
    try:
        described, model = model_of(fields[section.selector])
        settings = model(**{**fields, "name": name})
    except section.unknown as exc:
        found.append(f"{where}.{section.selector}: {exc}")
    except ValidationError as exc:
        found.extend(describe(exc, where, described, model))
    problems.extend(found)
    return None if found else settings


def describe(exc: ValidationError, where: str, what: str = "", model: type[BaseModel] | None = None) -> list[str]:
    """Pydantic's errors as "place: message"; for a missing key, `what` ("a roistat source") and the key's own
    description in `model` say what it needs."""
    out = []
    for error in exc.errors():
        loc = ".".join(str(part) for part in error["loc"])
        place = ".".join(p for p in (where, loc) if p) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (check the spelling against README's configuration reference)"
        elif error["type"] == "missing" and what:
            message = f"{what} needs {_needed(model, loc)}"
        out.append(f"{place}: {message}")
    return out


def _needed(model: type[BaseModel] | None, key: str) -> str:
    """`token = "…", <where to find it>` from the field's description (and example value) in its module."""
    field = model.model_fields.get(key) if model is not None else None
    if field is None or not field.description:
        return f"{key} (see README's configuration reference)"
    example = field.examples[0] if field.examples else "…"
    return f'{key} = "{example}", {field.description}'
