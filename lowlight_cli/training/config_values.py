"""Converting config values from YAML or ``--set`` strings to the declared field types."""

from __future__ import annotations

import typing
from typing import Any

from ..errors import ConfigError

_NAMES = {"str": str, "int": int, "float": float, "bool": bool, "dict": dict, "tuple": tuple}
STRINGS = "tuple[str, ...]"  # the postponed annotation of a tuple of names (e.g. network layers)


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.strip("()[] ").split(",")
    if not isinstance(value, (list, tuple)):
        raise ValueError(value)
    return tuple(str(v).strip().strip("'\"") for v in value if str(v).strip())


def coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert ``value`` to the field type ``annotation`` (a type or a postponed annotation string).

    Tuples of numbers (``tuple``) take ``[0.9, 0.999]`` or ``"0.9,0.999"``; tuples of names
    (``tuple[str, ...]``) take ``[relu1_2, relu2_2]`` or ``"relu1_2,relu2_2"``.

    Raises:
        ConfigError: the value does not fit the type (the message names ``key``).
    """
    kind = annotation if isinstance(annotation, type) else typing.get_origin(annotation) or annotation
    if isinstance(annotation, str):  # postponed annotations
        kind = STRINGS if annotation == STRINGS else _NAMES.get(annotation, str)
    try:
        if kind is bool:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return lowered in ("true", "1", "yes")
            return bool(value)
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if kind == STRINGS:
            return _strings(value)
        if kind is tuple:
            if isinstance(value, str):
                value = [v for v in value.strip("()[] ").split(",") if v.strip()]
            return tuple(float(v) if "." in str(v) or "e" in str(v).lower() else int(v) for v in value)
        if kind is dict:
            if isinstance(value, str):
                import yaml

                value = yaml.safe_load(value)
            if not isinstance(value, dict):
                raise ValueError(value)
            return dict(value)
        return str(value)
    except (TypeError, ValueError):
        name = getattr(kind, "__name__", kind)
        raise ConfigError(f"{key}: cannot use {value!r} as {name}",
                          hint=f"give {key} {'a' if name != 'int' else 'an'} {name} value (docs/usage.md lists the config's fields)") from None
