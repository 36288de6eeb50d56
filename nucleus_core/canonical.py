"""Canonical JSON (RFC 8785, JCS) and the I-JSON rules records must follow.

Canonicalization is on the hot path of every append, so it is done in two steps:

1. :func:`check_ijson` walks the value once, refusing anything that is not I-JSON (NaN,
   infinities, integers beyond +/-(2**53-1), non-string keys, lone surrogates, non-JSON types,
   nesting deeper than the limit) and noting whether the value holds anything whose JCS form the
   standard library would get wrong: floats (JCS prints numbers as ECMAScript does) and object keys
   outside the Basic Multilingual Plane (JCS sorts keys by UTF-16 code units, Python by code point).
2. Values without those go through the C-accelerated ``json`` encoder with sorted keys, compact
   separators and raw UTF-8, which then produces exactly the JCS bytes. The rest go through
   :func:`_jcs`, a direct implementation of RFC 8785.

Both paths are property-tested against an independent RFC 8785 implementation.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import ValidationError

MAX_SAFE_INTEGER = 2**53 - 1
DEFAULT_MAX_DEPTH = 64

_encoder = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":"), check_circular=False
)
_encode_fast = _encoder.encode
_encode_string: Any = json.encoder.encode_basestring  # C version; escapes exactly as JCS requires


def _path(parent: str, key: object) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if str(key).isidentifier() else f"{parent}[{json.dumps(str(key))}]"


def _check_string(value: str, where: str) -> None:
    # Lone surrogates cannot be encoded as UTF-8; I-JSON forbids them.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("contains a lone surrogate (not valid Unicode)", field=where) from None


def check_ijson(value: Any, *, field: str = "value", max_depth: int = DEFAULT_MAX_DEPTH) -> bool:
    """Validate that ``value`` is I-JSON (RFC 7493) built from dict, list, str, int, float, bool, None.

    Returns True when the value needs the exact RFC 8785 serializer (it holds a float or an object
    key outside the BMP), False when the standard encoder produces the canonical form.
    Raises :class:`ValidationError` naming the path of the first offending value.
    """
    return _walk(value, field, 0, max_depth)


def _walk(value: Any, where: str, depth: int, max_depth: int) -> bool:
    t = type(value)
    if t is str:
        if not value.isascii():
            _check_string(value, where)
        return False
    if t is dict:
        items = value.items()
    elif t is list:
        items = enumerate(value)
    else:
        return _scalar(value, t, where)
    if depth >= max_depth:
        raise ValidationError(f"nested deeper than {max_depth} levels", field=where)
    exact = False
    for key, item in items:
        if t is dict:
            if type(key) is not str:
                raise ValidationError(
                    f"object keys must be strings, got {type(key).__name__} {key!r}", field=where
                )
            if not key.isascii():
                _check_string(key, _path(where, key))
                if max(key) > "\uffff":
                    exact = True
        it = type(item)
        if it is str:
            if not item.isascii():
                _check_string(item, _path(where, key))
        elif it is bool or item is None:
            pass
        elif it is int:
            if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                raise ValidationError(
                    "integer outside +/-(2**53-1) cannot be represented exactly in JSON",
                    field=_path(where, key),
                )
        elif it is dict or it is list:
            if _walk(item, _path(where, key), depth + 1, max_depth):
                exact = True
        else:
            if _scalar(item, it, _path(where, key)):
                exact = True
    return exact


def _scalar(value: Any, t: type, where: str) -> bool:
    if t is bool or value is None:
        return False
    if t is int:
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return False
        raise ValidationError("integer outside +/-(2**53-1) cannot be represented exactly in JSON", field=where)
    if t is float:
        if math.isfinite(value):
            return True
        raise ValidationError(f"{value!r} is not allowed in JSON", field=where)
    if t is tuple:
        raise ValidationError("tuples are not JSON arrays here; use a list", field=where)
    raise ValidationError(f"{t.__name__} is not a JSON type", field=where)


def canonical_json(value: Any, *, field: str = "value", max_depth: int = DEFAULT_MAX_DEPTH) -> bytes:
    """Validate ``value`` as I-JSON and return its RFC 8785 canonical UTF-8 bytes."""
    exact = check_ijson(value, field=field, max_depth=max_depth)
    return encode_checked(value, exact)


def encode_checked(value: Any, exact: bool) -> bytes:
    """Encode a value already accepted by :func:`check_ijson` (``exact`` is what it returned)."""
    if exact:
        return "".join(_jcs(value)).encode("utf-8")
    return _encode_fast(value).encode("utf-8")


def format_number(value: float) -> str:
    """Serialize a finite float the way ECMAScript's Number.prototype.toString does (RFC 8785 3.2.2.3)."""
    if value == 0:
        return "0"
    text = repr(value)
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exp_text = text.partition("e")
    exponent = int(exp_text) if exp_text else 0
    int_part, _, frac_part = mantissa.partition(".")
    digits = int_part + frac_part
    # value = 0.digits * 10**n before stripping zeros
    n = len(int_part) + exponent
    stripped = digits.lstrip("0")
    n -= len(digits) - len(stripped)
    digits = stripped.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    exp_str = ("+" if e >= 0 else "-") + str(abs(e))
    if k == 1:
        return sign + digits + "e" + exp_str
    return sign + digits[0] + "." + digits[1:] + "e" + exp_str


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _jcs(value: Any) -> list[str]:
    out: list[str] = []
    _emit(value, out)
    return out


def _emit(value: Any, out: list[str]) -> None:
    t = type(value)
    if t is str:
        out.append(_encode_string(value))
    elif t is dict:
        out.append("{")
        first = True
        for key in sorted(value, key=_utf16_key):
            if not first:
                out.append(",")
            first = False
            out.append(_encode_string(key))
            out.append(":")
            _emit(value[key], out)
        out.append("}")
    elif t is list:
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _emit(item, out)
        out.append("]")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif value is None:
        out.append("null")
    elif t is int:
        out.append(str(value))
    else:
        out.append(format_number(value))
