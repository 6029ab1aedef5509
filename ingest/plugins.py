"""Loading a registered class by name: the provider and destination registries share this.

A name is a registry key, or a dotted path `package.module:Class` for an implementation that lives outside this
project. The module is imported only when the name is first used.
"""
from __future__ import annotations

import importlib
from typing import TypeVar

T = TypeVar("T")


def load_registered(name: str, registry: dict[str, str], base: type[T], error: type[LookupError], what: str
                    ) -> type[T]:
    target = registry.get(name, name)
    module_name, _, class_name = target.partition(":")
    if not class_name:
        raise error(f"unknown {what} {name!r}; known: {', '.join(sorted(registry))}")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise error(f"cannot load {what} {name!r} from {target!r}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise error(f"{target!r} is not a {base.__name__} subclass")
    return cls
