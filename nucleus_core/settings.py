"""Reading a plugin's settings: typed values with defaults, and refusing unknown keys."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import ConfigurationError

_MISSING = object()


def setting(
    settings: Mapping[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    *,
    plugin: str,
    default: Any = _MISSING,
) -> Any:
    """``settings[key]`` checked against ``kind``; a clear :class:`ConfigurationError` naming the
    plugin and key when it is missing (and has no default) or of the wrong type. ``bool`` never
    passes for ``int``."""
    if key not in settings:
        if default is _MISSING:
            raise ConfigurationError(f"{plugin}: setting {key!r} is required")
        return default
    value = settings[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise ConfigurationError(f"{plugin}: setting {key!r} must be {_kind_names(kinds)}, not a boolean")
    if not isinstance(value, kinds):
        raise ConfigurationError(f"{plugin}: setting {key!r} must be {_kind_names(kinds)}, got {type(value).__name__}")
    return value


def _kind_names(kinds: Sequence[type]) -> str:
    return " or ".join(k.__name__ for k in kinds)


def check_unknown_settings(settings: Mapping[str, Any], known: Iterable[str], *, plugin: str) -> None:
    """Refuse settings keys a plugin does not know (a typo must not silently weaken security)."""
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ConfigurationError(f"{plugin}: unknown setting(s) {', '.join(map(repr, unknown))}")
