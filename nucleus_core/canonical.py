"""Canonical JSON (RFC 8785, JCS) and the I-JSON rules records must follow.

Canonicalization is on the hot path of every append, so it is done in two steps:

1. :func:`check_ijson` walks the value once, refusing anything that is not I-JSON (NaN,
   infinities, integers beyond +/-(2**53-1), non-string keys, lone surrogates, non-JSON types such
   as bytes, sets, tuples, datetimes or Decimal, nesting deeper than the limit). It also notes
   whether the value holds a float that Python's ``repr`` prints differently from ECMAScript:
   integral floats such as ``2.0`` (JCS: ``2``) and magnitudes below 1e-4 (``repr`` switches to
   exponent form earlier than ECMAScript) or from 1e16 up (those are all integral). Every other
   finite float is non-integral with 1e-4 <= |x| < 2**52, where ``repr`` and ECMAScript both print
   the shortest round-tripping digits in plain positional form, identically.
2. :func:`encode_checked` encodes with orjson (sorted keys; compact, raw UTF-8 by construction),
   or the C-accelerated ``json`` encoder where orjson does not write as assumed (checked once at
   import, :func:`orjson_encodes_as_jcs`). For strings, integers, booleans, null and the floats
   above both are exactly JCS: they escape ``"``, ``\\`` and U+0000 to U+001F with the same short
   forms and lowercase ``\\u00xx`` that RFC 8785 3.2.2.2 prescribes, and nothing else, and print
   those floats as ``repr`` does. orjson takes about a tenth of the ``json`` encoder's time on a
   typical record (0.3 us against 2.9 us, see BENCHMARKS.md). Two cases go through
   :func:`_emit`, a direct implementation of RFC 8785, instead: a float flagged in step 1, and an
   object key outside the Basic Multilingual Plane (JCS sorts keys by UTF-16 code units, Python by
   code point). The latter can only occur when the encoded bytes contain such a character (a
   4-byte UTF-8 sequence), which a one-byte-class regex search answers at C speed.

Lone surrogates make the final UTF-8 encoding fail, so :func:`canonical_json` and
:class:`~nucleus_core.records.Record` skip the per-string check on the way in and, only when that
encoding fails, walk again strictly to name the field.

Both paths are property-tested against the independent ``rfc8785`` package.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any, NoReturn

import orjson

from .errors import ValidationError

MAX_SAFE_INTEGER = 2**53 - 1
DEFAULT_MAX_DEPTH = 64
"""Deepest nesting of objects and arrays accepted in a value (the value itself is level 1)."""

_MIN_SAFE = -MAX_SAFE_INTEGER
_MAX_SAFE = MAX_SAFE_INTEGER
_BMP_MAX = "\uffff"
_TWO_53 = 9007199254740992.0
_ASTRAL_UTF8 = re.compile(rb"[\xf0-\xf4]")

encode_string: Callable[[str], str] = json.encoder.encode_basestring
"""The JCS form of a string, quotes included (RFC 8785 3.2.2.2): the C encoder's, which escapes exactly
``"``, ``\\`` and U+0000 to U+001F, with the short forms and lowercase ``\\u00xx``."""
_encode_string = encode_string


def _refuse_default(value: object) -> NoReturn:
    # Only reached if a value skipped check_ijson: never encode something we did not validate.
    raise TypeError(f"{type(value).__name__} is not a JSON type")


def _make_fast_encoder() -> Callable[[Any], str]:
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:  # pragma: no cover - interpreters without the C accelerator
        return json.JSONEncoder(
            ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":"), check_circular=False
        ).encode
    # CPython: build the C encoder once (it keeps no per-call state) and call it directly; this
    # skips JSONEncoder.encode's per-call setup. Arguments: markers, default, string encoder,
    # indent, key separator, item separator, sort_keys, skipkeys, allow_nan.
    c_encoder = c_make_encoder(None, _refuse_default, _encode_string, None, ":", ",", True, False, False)

    def encode(value: Any) -> str:
        return "".join(c_encoder(value, 0))

    return encode


_encode_fast = _make_fast_encoder()


def _encode_json(value: Any) -> bytes:
    return _encode_fast(value).encode("utf-8")


_orjson_dumps = orjson.dumps
_SORT_KEYS = orjson.OPT_SORT_KEYS


def _encode_orjson(value: Any) -> bytes:
    try:
        return _orjson_dumps(value, option=_SORT_KEYS)
    except orjson.JSONEncodeError:
        # A lone surrogate (the only thing a checked value can hold that orjson refuses): the json
        # encoder's UTF-8 encoding raises the UnicodeEncodeError callers handle.
        return _encode_json(value)


def orjson_encodes_as_jcs(dumps: Callable[..., bytes] = orjson.dumps) -> bool:
    """True when ``dumps`` (orjson's, with sorted keys) writes what :func:`encode_checked` relies on:
    every escape RFC 8785 writes and no other (all of U+0000 to U+007F, U+2028, U+2029 and non-ASCII
    raw), keys sorted by code point, integers plainly and floats that need no JCS layout as ``repr``
    does. Checked once at import; when false, the ``json`` encoder is used."""
    text = "".join(map(chr, range(0x80))) + "\u2028\u2029\u00e9\uffff\U0001f600"
    value = {"b": [text, 9007199254740991, -9007199254740991, 0.5, -123456.789, 0.0001, 1234567890123.25],
             "a": {"\u00e9": True, "Z": None, "": False}}
    try:
        return bool(dumps(value, option=orjson.OPT_SORT_KEYS) == _encode_json(value))
    except (TypeError, ValueError):
        return False


_encode_utf8: Callable[[Any], bytes] = _encode_orjson if orjson_encodes_as_jcs() else _encode_json


class _Invalid(Exception):
    """Raised inside the walk; carries the reason and the path (innermost key first)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str | int] = []


def _format_path(field: str, keys: list[str | int]) -> str:
    out = field
    for key in reversed(keys):
        if isinstance(key, int):
            out += f"[{key}]"
        elif key.isidentifier():
            out += f".{key}"
        else:
            out += "[" + json.dumps(key) + "]"
    return out


def check_ijson(
    value: Any,
    *,
    field: str = "value",
    max_depth: int = DEFAULT_MAX_DEPTH,
    error: type[ValidationError] = ValidationError,
    strings: bool = True,
) -> bool:
    """Validate that ``value`` is I-JSON (RFC 7493) built from dict, list, str, int, float, bool, None.

    Returns True when the value holds a float whose JCS form differs from ``repr`` (see the module
    docstring); pass it on to :func:`encode_checked`.
    Raises ``error`` (a :class:`ValidationError`) whose ``field`` is the path of the first offending
    value, for example ``payload.items[2].price``. With ``strings=False`` strings and keys are not
    checked for lone surrogates: only for callers that UTF-8-encode the result and handle
    ``UnicodeEncodeError`` (as :func:`canonical_json` does).
    """
    try:
        t = type(value)
        if t is dict:
            return _walk_dict(value, 1, max_depth, strings)
        if t is list:
            return _walk_list(value, 1, max_depth, strings)
        return _scalar(value, strings)
    except _Invalid as bad:
        raise error(bad.reason, field=_format_path(field, bad.path)) from None


def check_record_values(
    payload: dict[str, Any] | list[Any], meta: dict[str, Any] | None, error: type[ValidationError]
) -> bool:
    """:func:`check_ijson` of a record's ``payload`` (a dict or list) and ``meta`` (a dict or None)
    with ``strings=False``, in one call: what :class:`~nucleus_core.records.Record` runs on every
    construction. Returns True when either holds a float whose JCS form differs from ``repr``;
    raises ``error`` naming the path (``payload...`` or ``meta...``) of the first offending value."""
    field = "payload"
    try:
        if isinstance(payload, dict):  # the caller checked: a dict or a list, exactly
            exact = _walk_dict(payload, 1, DEFAULT_MAX_DEPTH, False)
        else:
            exact = _walk_list(payload, 1, DEFAULT_MAX_DEPTH, False)
        if meta is not None:
            field = "meta"
            if _walk_dict(meta, 1, DEFAULT_MAX_DEPTH, False):
                exact = True
    except _Invalid as bad:
        raise error(bad.reason, field=_format_path(field, bad.path)) from None
    return exact


def _too_deep(max_depth: int) -> _Invalid:
    return _Invalid(f"nested deeper than {max_depth} levels")


# _walk_dict and _walk_list repeat the per-item checks on purpose: this runs on every value of every
# appended record, and one shared per-item function measured 18-26% slower (a 20-item order payload,
# 12.4-13.1 us inline against 15.4-16.5 us with the call).
def _walk_dict(value: dict[Any, Any], depth: int, max_depth: int, strings: bool) -> bool:
    if depth > max_depth:
        raise _too_deep(max_depth)
    exact = False
    for key, item in value.items():
        if type(key) is not str:
            raise _Invalid(f"object keys must be strings, got {type(key).__name__} {key!r}")
        if strings and not key.isascii():
            try:
                _check_string(key)
            except _Invalid as bad:
                bad.reason = "object key " + bad.reason
                bad.path.append(key)  # shown JSON-escaped, e.g. ["k\\ud83d"]
                raise
        t = type(item)
        try:
            if t is str:
                if strings and not item.isascii():
                    _check_string(item)
            elif t is int:
                if not _MIN_SAFE <= item <= _MAX_SAFE:
                    raise _out_of_range()
            elif t is dict:
                if _walk_dict(item, depth + 1, max_depth, strings):
                    exact = True
            elif t is list:
                if _walk_list(item, depth + 1, max_depth, strings):
                    exact = True
            elif t is bool or item is None:
                pass
            elif _scalar(item, strings):
                exact = True
        except _Invalid as bad:
            bad.path.append(key)
            raise
    return exact


def _walk_list(value: list[Any], depth: int, max_depth: int, strings: bool) -> bool:
    if depth > max_depth:
        raise _too_deep(max_depth)
    exact = False
    for index, item in enumerate(value):
        t = type(item)
        try:
            if t is str:
                if strings and not item.isascii():
                    _check_string(item)
            elif t is int:
                if not _MIN_SAFE <= item <= _MAX_SAFE:
                    raise _out_of_range()
            elif t is dict:
                if _walk_dict(item, depth + 1, max_depth, strings):
                    exact = True
            elif t is list:
                if _walk_list(item, depth + 1, max_depth, strings):
                    exact = True
            elif t is bool or item is None:
                pass
            elif _scalar(item, strings):
                exact = True
        except _Invalid as bad:
            bad.path.append(index)
            raise
    return exact


def _check_string(value: str) -> None:
    # Lone surrogates cannot be encoded as UTF-8; I-JSON forbids them.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Invalid("contains a lone surrogate (not valid Unicode)") from None


def _out_of_range() -> _Invalid:
    return _Invalid("integer outside +/-(2**53-1) cannot be represented exactly in JSON")


def _scalar(value: Any, strings: bool) -> bool:
    """Check a value that is not a dict or list; True for a float that ``repr`` would print wrongly."""
    t = type(value)
    if t is str:
        if strings and not value.isascii():
            _check_string(value)
        return False
    if t is bool or value is None:
        return False
    if t is int:
        if _MIN_SAFE <= value <= _MAX_SAFE:
            return False
        raise _out_of_range()
    if t is float:
        if math.isfinite(value):
            return bool(value.is_integer() or -1e-4 < value < 1e-4)
        raise _Invalid(f"{value!r} is not allowed in JSON")
    if t is tuple:
        raise _Invalid("tuples are not JSON arrays here; use a list")
    raise _Invalid(f"{t.__name__} is not a JSON type")


def canonical_json(
    value: Any,
    *,
    field: str = "value",
    max_depth: int = DEFAULT_MAX_DEPTH,
    error: type[ValidationError] = ValidationError,
) -> bytes:
    """Validate ``value`` as I-JSON and return its RFC 8785 canonical UTF-8 bytes.

    Raises ``error`` naming the path of the first offending value.
    """
    exact = check_ijson(value, field=field, max_depth=max_depth, error=error, strings=False)
    try:
        return encode_checked(value, exact)
    except UnicodeEncodeError:
        check_ijson(value, field=field, max_depth=max_depth, error=error)  # raises, naming the field
        raise error("contains a lone surrogate (not valid Unicode)", field=field) from None


def encode_checked(value: Any, exact: bool) -> bytes:
    """RFC 8785 bytes of a value already accepted by :func:`check_ijson` (``exact`` is what it returned).

    Raises ``UnicodeEncodeError`` when a string or key holds a lone surrogate (only possible when
    the check ran with ``strings=False``).
    """
    if not exact:
        data = _encode_utf8(value)
        # Characters outside the BMP are exactly the 4-byte UTF-8 sequences (lead bytes F0-F4).
        if data.isascii() or _ASTRAL_UTF8.search(data) is None or not _has_astral_key(value):
            return data
    out: list[str] = []
    _emit(value, out)
    return "".join(out).encode("utf-8")


def _has_astral_key(value: Any) -> bool:
    """True when some object key inside ``value`` holds a character outside the BMP."""
    if type(value) is dict:
        for key, item in value.items():
            if (not key.isascii() and max(key) > _BMP_MAX) or _has_astral_key(item):
                return True
    elif type(value) is list:
        for item in value:
            if _has_astral_key(item):
                return True
    return False


def format_number(value: float) -> str:
    """Serialize a finite float the way ECMAScript's Number.prototype.toString does (RFC 8785 3.2.2.3).

    ``repr`` gives the shortest digit string that round-trips (the same digits ECMAScript picks);
    only the layout (plain or exponent form, where the point goes) differs.
    """
    if value == 0:
        return "0"  # also for -0.0, as RFC 8785 requires
    if -_TWO_53 < value < _TWO_53 and value.is_integer():
        return str(int(value))  # exact below 2**53, and then also the shortest digits
    text = repr(value)
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exp_text = text.partition("e")
    exponent = int(exp_text) if exp_text else 0
    int_part, _, frac_part = mantissa.partition(".")
    digits = int_part + frac_part
    # value = 0.<digits> * 10**n
    n = len(int_part) + exponent
    stripped = digits.lstrip("0")
    n -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
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


def parse_int(text: str) -> int | float:
    """How RFC 8785 reads an integer text: exactly when it is within +/-(2**53-1), else as the double
    it denotes (JCS writes the double 1e16 as ``10000000000000000``). A ``parse_int`` hook for ``json``."""
    value = int(text)
    if _MIN_SAFE <= value <= _MAX_SAFE:
        return value
    return float(text)


_parse_int = parse_int


def parse_json(data: bytes | str) -> Any:
    """Parse JSON the way RFC 8785 reads numbers: every number is an IEEE 754 double.

    The standard parser turns ``10000000000000000`` (how JCS writes the double 1e16) into a Python
    int beyond 2**53-1, which I-JSON refuses; here such integers come back as the floats they
    denote, so ``canonical_json(parse_json(canonical_json(v))) == canonical_json(v)`` for every
    valid ``v``. Bytes must be UTF-8 without a byte order mark (no other encoding is guessed).
    Raises ``ValueError`` (``json.JSONDecodeError``, ``UnicodeDecodeError``) on malformed input.
    """
    if isinstance(data, bytes):
        if data.startswith(b"\xef\xbb\xbf"):
            raise ValueError("JSON text starts with a UTF-8 byte order mark")
        data = data.decode("utf-8")
    return json.loads(data, parse_int=_parse_int)


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be")


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
