"""Typed records that registration hooks return. The host, not the plugin, builds instances."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .errors import ValidationError

if TYPE_CHECKING:
    from .access import AccessPolicy
    from .auth import TokenParser
    from .modules import Module
    from .storage import StorageBackend

SPEC_NAME_PATTERN = re.compile(r"[a-z][a-z0-9_.-]{0,63}")


def _check_name(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or SPEC_NAME_PATTERN.fullmatch(value) is None:
        raise ValidationError(
            f"{value!r} is not a plugin name (1-64 of a-z, 0-9, '_', '.', '-', starting with a letter)",
            field=attr.name,
        )


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    """``schemes`` and ``streams`` as given (a list, a tuple, any iterable of str), frozen as a
    tuple. A converter typed with its argument: with the builtin ``tuple`` as converter the field's
    argument type stays generic, and mypy refused every spec (each needed a ``type: ignore``)."""
    return tuple(value)


def _check_callable(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if not callable(value):
        raise ValidationError("must be callable", field=attr.name)


@attrs.frozen(kw_only=True)
class PluginContext:
    """What a factory receives when the ledger builds a plugin's instance.

    ``settings`` are the settings the ledger configuration gives this plugin (read-only);
    ``environment`` is ``"development"`` or ``"production"``; ``storage`` is the ledger's open
    storage backend (for plugins that keep tables next to the ledger, such as grants or sessions).
    """

    ledger_id: str
    environment: str
    settings: Mapping[str, Any] = attrs.field(factory=dict)
    storage: StorageBackend | None = None

    @property
    def is_development(self) -> bool:
        return self.environment == "development"


@attrs.frozen(kw_only=True)
class StorageBackendSpec:
    """A storage backend: handles URLs whose scheme is in ``schemes``.

    ``factory(url, options)`` returns an unopened :class:`~nucleus_core.storage.StorageBackend`.
    """

    name: str = attrs.field(validator=_check_name)
    schemes: tuple[str, ...] = attrs.field(converter=_str_tuple)
    factory: Callable[[str, Mapping[str, Any]], StorageBackend] = attrs.field(validator=_check_callable)
    description: str = ""

    @schemes.validator
    def _check_schemes(self, _attr: object, value: tuple[str, ...]) -> None:
        if not value or not all(isinstance(s, str) and re.fullmatch(r"[a-z][a-z0-9+.-]*", s) for s in value):
            raise ValidationError("needs one or more lowercase URL schemes", field="schemes")


@attrs.frozen(kw_only=True)
class ModuleSpec:
    """A domain module. ``factory(context)`` returns a :class:`~nucleus_core.modules.Module`."""

    id: str = attrs.field(validator=_check_name)
    factory: Callable[[PluginContext], Module] = attrs.field(validator=_check_callable)
    description: str = ""


_SYSTEM_STREAM = re.compile(r"_[a-z][a-z0-9_.-]{0,62}")


def _check_streams(_inst: object, attr: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    if not all(isinstance(s, str) and _SYSTEM_STREAM.fullmatch(s) for s in value):
        raise ValidationError(
            "must be system stream names (a leading '_', then a-z, 0-9, '_', '.', '-')", field=attr.name
        )


@attrs.frozen(kw_only=True)
class TokenParserSpec:
    """A token parser. ``factory(context)`` returns a :class:`~nucleus_core.auth.TokenParser`.

    ``streams``: the system streams in which the parser keeps state in the ledger's chain (the API
    key parser's ``_api_keys``). A parser with such streams is recorded in the chain of every ledger
    it is enabled on, and such a ledger refuses to open without it."""

    name: str = attrs.field(validator=_check_name)
    factory: Callable[[PluginContext], TokenParser] = attrs.field(validator=_check_callable)
    description: str = ""
    streams: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple, validator=_check_streams)


@attrs.frozen(kw_only=True)
class AclProviderSpec:
    """An access-control provider. ``factory(context)`` returns an
    :class:`~nucleus_core.access.AccessPolicy`.

    Access control always counts as chain state: a ledger records its provider in its chain and
    refuses to open without it. ``streams``: the system streams the provider writes (the UAL's
    ``_acl``)."""

    name: str = attrs.field(validator=_check_name)
    factory: Callable[[PluginContext], AccessPolicy] = attrs.field(validator=_check_callable)
    description: str = ""
    streams: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple, validator=_check_streams)
