"""RFC 8785 canonical JSON: property tests against the independent ``rfc8785`` package, the
RFC's own examples, and every I-JSON refusal."""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import math
import struct
from typing import Any

import orjson
import pytest
import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from nucleus_core.canonical import (
    DEFAULT_MAX_DEPTH,
    MAX_SAFE_INTEGER,
    canonical_json,
    check_ijson,
    encode_checked,
    format_number,
    orjson_encodes_as_jcs,
    parse_json,
)
from nucleus_core.errors import RecordValidationError, ValidationError
from nucleus_core.records import Record

# -- strategies ---------------------------------------------------------------------------------

# Characters that stress escaping and key order: controls, quote, backslash, DEL, C1, line
# separators, the BMP private-use / CJK-compat range above the surrogates (sorted before
# astral characters in UTF-16 but after them by code point), and astral characters.
TRICKY = [
    "\x00", "\x01", "\x08", "\t", "\n", "\x0b", "\x0c", "\r", "\x1f", '"', "\\", "/", "\x7f",
    "\x80", "\x9f", "\u00f6", "\u2028", "\u2029", "\u20ac", "\ue000", "\ufb33", "\uff61", "\ufffd",
    "\uffff", "\U00010000", "\U0001f600", "\U0010ffff", "a", "A", "1", " ",
]
chars = st.one_of(st.characters(exclude_categories=("Cs",)), st.sampled_from(TRICKY))
texts = st.text(chars, max_size=12)
safe_ints = st.one_of(
    st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    st.sampled_from([0, 1, -1, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, 2**31, -(2**31), 2**32, 10**15]),
)
floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=True, min_value=-1e-300, max_value=1e-300),
    st.sampled_from(
        [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 1e21, 1e-7, 1e-6,
         9.999999999999997e-7, 1e-4, 0.1, 0.5, 1.0, 2.0, -2.0, 1e16, 1e20, 123456789012345680000.0,
         9007199254740992.0, 9007199254740993.0, 4.35, 333333333.33333329, 1e23, 1e300]
    ),
)
scalars = st.one_of(st.none(), st.booleans(), safe_ints, floats, texts)
values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(texts, children, max_size=5)),
    max_leaves=25,
)
no_float_scalars = st.one_of(st.none(), st.booleans(), safe_ints, texts)
no_float_values = st.recursive(
    no_float_scalars,
    lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(texts, children, max_size=5)),
    max_leaves=25,
)


def same(a: Any, b: Any) -> bool:
    """Equal with identical types all the way down (so 1 != 1.0 != True)."""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _exact(value: Any) -> bytes:
    return encode_checked(value, True)


# -- equality with the independent implementation ----------------------------------------------


@settings(max_examples=400, deadline=None)
@given(values)
@example({"\U0001f600": 1, "\uff61": 2, "\ue000": 3})  # UTF-16 order differs from code point order
@example([1e21, 1e-7, -0.0, 5e-324, 2.0, 0.0001, 0.00001])
def test_matches_rfc8785_package(value: Any) -> None:
    expected = rfc8785.dumps(value)
    assert canonical_json(value) == expected
    assert _exact(value) == expected  # the pure-Python path agrees on its own, floats or not


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(texts, safe_ints, max_size=8))
def test_key_order_is_utf16_code_units(value: dict[str, Any]) -> None:
    out = json.loads(canonical_json(value))
    assert list(out) == sorted(value, key=lambda k: k.encode("utf-16-be"))


@settings(max_examples=1000, deadline=None)
@given(floats)
def test_numbers_match_rfc8785_package(value: float) -> None:
    assert format_number(value) == rfc8785.dumps(value).decode()
    assert float(format_number(value)) == value  # shortest form still round-trips


@settings(max_examples=200, deadline=None)
@given(no_float_values)
def test_round_trip_exact_types(value: Any) -> None:
    """Without floats, parsing the canonical bytes gives back the same value, types included."""
    data = canonical_json(value)
    back = json.loads(data)
    assert same(back, value)
    assert canonical_json(back) == data


@settings(max_examples=200, deadline=None)
@given(values)
@example(9007199254740992.0)  # JCS writes 9007199254740992: json.loads would give an unsafe int
@example([1e16, 2.934808394142549e16, 1e20])
def test_idempotent_and_equal_after_parse(value: Any) -> None:
    data = canonical_json(value)
    back = parse_json(data)
    assert back == value  # numbers compare equal (2 == 2.0, 0 == -0.0)
    assert canonical_json(back) == data
    data.decode("utf-8")  # valid UTF-8


def test_plain_json_loads_would_break_large_doubles() -> None:
    """Why parse_json exists: JCS prints large doubles as integer text."""
    data = canonical_json({"n": 1e16})
    assert data == b'{"n":10000000000000000}'
    with pytest.raises(ValidationError):
        canonical_json(json.loads(data))
    assert parse_json(data) == {"n": 1e16}
    assert canonical_json(parse_json(data)) == data


@settings(max_examples=100, deadline=None)
@given(values)
def test_insertion_order_does_not_matter(value: Any) -> None:
    def reverse(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: reverse(v[k]) for k in reversed(list(v))}
        if isinstance(v, list):
            return [reverse(x) for x in v]
        return v

    assert canonical_json(reverse(value)) == canonical_json(value)


# -- RFC 8785 examples (independent of any implementation) -------------------------------------

# RFC 8785 Appendix B: IEEE 754 bit patterns and their required JCS text.
RFC_NUMBERS = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "text"), RFC_NUMBERS)
def test_rfc8785_appendix_b_numbers(bits: str, text: str) -> None:
    value = struct.unpack(">d", bytes.fromhex(bits))[0]
    assert format_number(value) == text
    assert canonical_json([value]) == f"[{text}]".encode()
    assert canonical_json({"n": value}) == f'{{"n":{text}}}'.encode()


def test_rfc8785_section_3_2_2_example() -> None:
    value = json.loads(
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    ).encode()
    assert canonical_json(value) == expected


def test_rfc8785_section_3_2_3_key_order() -> None:
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    out = canonical_json(value).decode()
    keys = list(json.loads(out))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert out.startswith('{"\\r":"Carriage Return","1":"One","\u0080":"Control"')


def test_string_escapes() -> None:
    assert canonical_json("\x00\x1f\x7f\u2028") == b'"\\u0000\\u001f\x7f\xe2\x80\xa8"'
    assert canonical_json("\b\t\n\f\r\"\\/") == b'"\\b\\t\\n\\f\\r\\"\\\\/"'
    assert canonical_json("\U0001f600") == "\"\U0001f600\"".encode()


def test_integral_and_small_floats_take_the_exact_path() -> None:
    assert canonical_json({"a": 2.0, "b": 1e-5, "c": 0.5, "d": -0.0, "e": 1e16}) == (
        b'{"a":2,"b":0.00001,"c":0.5,"d":0,"e":10000000000000000}'
    )
    assert check_ijson([2.0]) is True
    assert check_ijson([0.5]) is False  # repr already prints the JCS form
    assert check_ijson([1]) is False


# -- refusals -----------------------------------------------------------------------------------


class Color(enum.IntEnum):
    RED = 1


class MyStr(str):
    pass


class MyFloat(float):
    pass


@pytest.mark.parametrize(
    ("value", "field", "words"),
    [
        ({"a": math.nan}, "value.a", "nan"),
        ({"a": math.inf}, "value.a", "inf"),
        ([1, -math.inf], "value[1]", "-inf"),
        (float("nan"), "value", "nan"),
        ({"a": 2**53}, "value.a", "2**53-1"),
        ({"a": -(2**53)}, "value.a", "2**53-1"),
        ({"a": [10**30]}, "value.a[0]", "2**53-1"),
        ({1: "x"}, "value", "keys must be strings"),
        ({None: "x"}, "value", "keys must be strings"),
        ({(1, 2): "x"}, "value", "keys must be strings"),
        ({True: "x"}, "value", "keys must be strings"),
        ({MyStr("k"): 1}, "value", "keys must be strings"),
        ({"a": "ok\ud800"}, "value.a", "lone surrogate"),
        ({"a": ["\udfff"]}, "value.a[0]", "lone surrogate"),
        ({"nested": {"k\ud83d": 1}}, 'value.nested["k\\ud83d"]', "object key contains a lone surrogate"),
        ({"b": b"bytes"}, "value.b", "bytes is not a JSON type"),
        ({"b": bytearray(b"x")}, "value.b", "bytearray is not a JSON type"),
        ({"s": {1, 2}}, "value.s", "set is not a JSON type"),
        ({"s": frozenset()}, "value.s", "frozenset is not a JSON type"),
        ({"t": datetime.datetime(2024, 1, 1)}, "value.t", "datetime is not a JSON type"),
        ({"t": datetime.date(2024, 1, 1)}, "value.t", "date is not a JSON type"),
        ({"d": decimal.Decimal("1.5")}, "value.d", "Decimal is not a JSON type"),
        ({"t": (1, 2)}, "value.t", "tuples"),
        ((1, 2), "value", "tuples"),
        ({"c": 1j}, "value.c", "complex is not a JSON type"),
        ({"e": Color.RED}, "value.e", "Color is not a JSON type"),
        ({"e": MyStr("x")}, "value.e", "MyStr is not a JSON type"),
        ({"e": MyFloat(1.5)}, "value.e", "MyFloat is not a JSON type"),
        ({"o": object()}, "value.o", "object is not a JSON type"),
        ({"weird key": [{"x y": math.nan}]}, 'value["weird key"][0]["x y"]', "nan"),
    ],
)
def test_refused_with_field_path(value: Any, field: str, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        canonical_json(value)
    assert info.value.field == field
    assert words.lower() in str(info.value).lower()
    with pytest.raises(ValidationError) as strict:
        check_ijson(value)
    assert strict.value.field == field


def test_error_class_is_configurable() -> None:
    with pytest.raises(RecordValidationError) as info:
        canonical_json({"a": math.nan}, field="payload", error=RecordValidationError)
    assert info.value.field == "payload.a"


def nested(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def test_depth_limit() -> None:
    assert canonical_json(nested(DEFAULT_MAX_DEPTH))
    with pytest.raises(ValidationError, match=f"deeper than {DEFAULT_MAX_DEPTH}"):
        canonical_json(nested(DEFAULT_MAX_DEPTH + 1))
    with pytest.raises(ValidationError, match="deeper than 3"):
        canonical_json(nested(4), max_depth=3)
    assert canonical_json(nested(3), max_depth=3)


def test_deep_nesting_far_beyond_recursion_limit_is_refused_cleanly() -> None:
    with pytest.raises(ValidationError, match="deeper than"):
        canonical_json(nested(100_000))


def test_circular_structures_are_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValidationError, match="deeper than"):
        canonical_json(loop)
    d: dict[str, Any] = {}
    d["self"] = d
    with pytest.raises(ValidationError, match="deeper than"):
        canonical_json(d)


@given(st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"]), texts, texts)
def test_lone_surrogates_anywhere_are_refused(surrogate: str, before: str, after: str) -> None:
    bad = before + surrogate + after
    for value in ({"k": bad}, {bad: 1}, [bad], bad, {"a": [{"b": bad}]}):
        with pytest.raises(ValidationError, match="lone surrogate"):
            canonical_json(value)
        with pytest.raises(ValidationError, match="lone surrogate"):
            check_ijson(value)


@given(st.one_of(st.integers(min_value=MAX_SAFE_INTEGER + 1), st.integers(max_value=-MAX_SAFE_INTEGER - 1)))
def test_unsafe_integers_are_refused(n: int) -> None:
    with pytest.raises(ValidationError, match=r"2\*\*53-1"):
        canonical_json({"n": n})


@pytest.mark.parametrize(
    "data",
    [b'\xef\xbb\xbf{"n":1}', '{"n":1}'.encode("utf-16"), '{"n":1}'.encode("utf-32"), '{"n":1}'.encode("utf-16-le")],
)
def test_parse_json_reads_bytes_as_utf8_only(data: bytes) -> None:
    """json.loads(bytes) would guess UTF-16/32 and skip a BOM; parse_json never guesses."""
    assert json.loads(data) == {"n": 1}
    with pytest.raises(ValueError):
        parse_json(data)
    assert parse_json(b'{"n":1}') == {"n": 1}


# -- the orjson encoding path (canonical.py step 2) ------------------------------------------------


def test_orjson_is_checked_to_write_what_the_json_path_writes() -> None:
    assert orjson_encodes_as_jcs()  # the installed orjson: encode_checked uses it

    def escapes_slash(value: object, option: int = 0) -> bytes:
        return orjson.dumps(value, option=option).replace(b"/", b"\\/")

    def writes_ascii(value: object, option: int = 0) -> bytes:
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()

    def raises(value: object, option: int = 0) -> bytes:
        raise TypeError("no")

    # An orjson that escaped differently, wrote \u escapes for non-ASCII or failed is not used.
    assert not orjson_encodes_as_jcs(escapes_slash)
    assert not orjson_encodes_as_jcs(writes_ascii)
    assert not orjson_encodes_as_jcs(raises)


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_on_the_fast_path_are_written_as_rfc8785_writes_them(value: float) -> None:
    # check_ijson leaves on the fast path only the floats whose repr is their JCS form; orjson
    # must write those as repr does (the others go through _emit).
    assert canonical_json({"x": [value]}) == rfc8785.dumps({"x": [value]})


def test_record_with_a_lone_surrogate_is_refused_naming_the_field_after_orjson_refuses_it() -> None:
    with pytest.raises(RecordValidationError, match="lone surrogate") as info:
        Record(id="r-1", stream="s", timestamp=1, payload={"ok": "fine", "bad": ["x", "a\udc00"]})
    assert info.value.field == "payload.bad[1]"
    with pytest.raises(RecordValidationError, match="lone surrogate") as info:
        Record(id="r-1", stream="s", timestamp=1, payload={}, meta={"k": "\ud800"})
    assert info.value.field == "meta.k"
