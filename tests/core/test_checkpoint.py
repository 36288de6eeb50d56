"""Signed notes and checkpoints: nucleus_core.checkpoint signs, nucleus_core.tlog_verify verifies.

Vectors from public sources: golang.org/x/mod sumdb/note's test key and notes (PeterNeumann,
EnochRoot), c2sp.org/signed-note's example, the checkpoint of C2SP issue #99 (a published seed).
Ed25519 is deterministic, so signing those texts again must give the same bytes."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from nucleus_core import ConfigurationError, ValidationError
from nucleus_core.checkpoint import (
    NoteSigner,
    checkpoint_text,
    default_origin,
    load_signer,
    sign_checkpoint,
    sign_note,
    validate_origin,
    write_key_file,
)
from nucleus_core.tlog_verify import (
    EMPTY_ROOT,
    Checkpoint,
    CheckpointError,
    InvalidSignatureError,
    MalformedNoteError,
    NoteError,
    NoteSignature,
    NoteVerifier,
    UnverifiedNoteError,
    parse_checkpoint,
    parse_note,
    parse_vkey,
    verify_checkpoint,
    verify_note,
)

# golang.org/x/mod sumdb/note note_test.go
PN_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PN_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ER_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
PN_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PN_LINE = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ER_LINE = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)

# c2sp.org/signed-note, "Example"
C2SP_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
C2SP_NOTE = (
    "This is an example message.\n\n\u2014 example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)

# C2SP/C2SP issue #99: seed 0x11 then 31 zero bytes; origin "sigsum.org/v1/tree/" + hex(SHA-256(public key))
SIGSUM_ORIGIN = "sigsum.org/v1/tree/e796172b92befd62d9dc67e41c2f5bc9d3100a3023b20b1ca40288dd1c679e69"
SIGSUM_SEED = bytes([0x11]) + bytes(31)
SIGSUM_CHECKPOINT = (
    f"{SIGSUM_ORIGIN}\n10\nHA5HAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u2014 {SIGSUM_ORIGIN} "
    "gJ2ho0n8F8olcerUF1FFdv235A/5as/coWrpLrtE7ovMeP5whgwouYExowG/lTznxu6OUGjjt5yJQ6bXtTcf718MqAQ=\n"
)

ROOT_6 = base64.b64decode("duZ9rbzfHhDht03cYIq9L5jfsW+851J3tSMqEn8gh+8=")  # transparency-dev/merkle, size 6


def test_go_note_key_vectors() -> None:
    signer = NoteSigner.from_skey(PN_SKEY)
    assert signer.vkey == PN_VKEY and signer.skey == PN_SKEY
    assert f"{signer.key_id:08x}" == "c74f20a3"
    assert sign_note(PN_TEXT, [signer]) == PN_TEXT + "\n" + PN_LINE  # byte for byte
    assert parse_vkey(PN_VKEY) == signer.verifier


def test_go_note_with_a_known_and_an_unknown_signature() -> None:
    note = PN_TEXT + "\n" + PN_LINE + ER_LINE
    verified = verify_note(note, [parse_vkey(PN_VKEY)])
    assert verified.text == PN_TEXT
    assert [s.name for s in verified.verified] == ["PeterNeumann"]
    assert [(s.name, f"{s.key_id:08x}") for s in verified.unverified] == [("EnochRoot", "af0cfe78")]
    both = verify_note(note.encode("utf-8"), [parse_vkey(PN_VKEY), parse_vkey(ER_VKEY)])
    assert [s.name for s in both.verified] == ["PeterNeumann", "EnochRoot"] and not both.unverified
    with pytest.raises(UnverifiedNoteError, match="no trusted key signed"):
        verify_note(PN_TEXT + "\n" + ER_LINE, [parse_vkey(PN_VKEY)])


def test_c2sp_signed_note_example() -> None:
    verified = verify_note(C2SP_NOTE, [parse_vkey(C2SP_VKEY)])
    assert verified.text == "This is an example message.\n"


def test_c2sp_poem_splits_at_the_last_blank_line() -> None:
    poem = (
        "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned \u00e8 subito sera.\n\n"
        "\u2014 quasimodo.example/salvatore "
        "NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
    )
    parsed = parse_note(poem)
    assert parsed.text.endswith("sole:\n\ned \u00e8 subito sera.\n")
    assert [(s.name, f"{s.key_id:08x}") for s in parsed.signatures] == [("quasimodo.example/salvatore", "367ba04b")]
    with pytest.raises(UnverifiedNoteError):  # its key is not published
        verify_note(poem, [parse_vkey(C2SP_VKEY)])


def test_published_checkpoint_and_signing_it_again() -> None:
    log = NoteSigner(name=SIGSUM_ORIGIN, seed=SIGSUM_SEED)
    assert hashlib.sha256(log.public_key).hexdigest() == SIGSUM_ORIGIN.rsplit("/", 1)[1]
    assert log.vkey == f"{SIGSUM_ORIGIN}+809da1a3+AWbguFjkYqYJ5m/nE3DIFtiEb/ED1UmaIqf+w3/bxCSn"
    checkpoint = verify_checkpoint(SIGSUM_CHECKPOINT, [parse_vkey(log.vkey)], origin=SIGSUM_ORIGIN)
    assert checkpoint.size == 10 and checkpoint.root_hash == base64.b64decode("HA5H" + "A" * 39 + "=")
    assert sign_checkpoint(SIGSUM_ORIGIN, 10, checkpoint.root_hash, [log]) == SIGSUM_CHECKPOINT
    # the transparency-formats notes' derived vector at size 6 (a real root)
    assert sign_checkpoint(SIGSUM_ORIGIN, 6, ROOT_6, [log]).endswith(
        "gJ2ho75jk1mSX5qQlSuUwU/PBvExTGKmYkmKvILfet/d3crhoOu01Ay+h/dNBiWcjW56PmpytGWnCq7q4MlM27hMbw4=\n"
    )


def test_several_signers() -> None:
    old, new = NoteSigner.generate("example.com/log"), NoteSigner.generate("example.com/log")
    note = sign_checkpoint("example.com/log", 6, ROOT_6, [old, new])
    assert note.count("\u2014 example.com/log ") == 2
    for trusted in ([old.verifier], [new.verifier], [old.verifier, new.verifier]):
        assert verify_checkpoint(note, trusted) == Checkpoint(origin="example.com/log", size=6, root_hash=ROOT_6)
    with pytest.raises(ValidationError, match="two signers"):
        sign_note("x\n", [old, NoteSigner.from_skey(old.skey)])
    with pytest.raises(ValidationError, match="at least one signer"):
        sign_note("x\n", [])


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _resign_body(note: str, body: str) -> str:
    return body + note[note.rfind("\n\n") + 1 :]


def test_refusals() -> None:
    log = NoteSigner(name=SIGSUM_ORIGIN, seed=SIGSUM_SEED)
    trusted = [log.verifier]
    good = sign_checkpoint(SIGSUM_ORIGIN, 6, ROOT_6, [log])
    text, sig_line = good[: good.rfind("\n\n") + 1], good[good.rfind("\n\n") + 2 :]
    blob = sig_line.split(" ")[-1].strip()
    cases: list[tuple[str, type[Exception], str]] = [
        (_resign_body(good, text.replace("\n6\n", "\n7\n")), InvalidSignatureError, "does not verify"),
        (good.replace(blob, _b64(base64.b64decode(blob)[:-1])), InvalidSignatureError, "does not verify"),
        (good.replace(blob, blob[:-4]), InvalidSignatureError, "does not verify"),  # 62 signature bytes
        (good.replace(blob, blob[:-3]), MalformedNoteError, "not base64"),
        (good.replace(blob, blob.replace("=", "")), MalformedNoteError, "not base64"),
        (good.replace(blob, "!" + blob[1:]), MalformedNoteError, "not base64"),
        (good.replace(blob, blob[:-2] + _B64[_B64.index(blob[-2]) | 1] + "="), MalformedNoteError, "not canonical"),
        (good.replace(blob, _b64(base64.b64decode(blob)[:4])), MalformedNoteError, "shorter than"),
        (good.replace("\n\n", "\n"), MalformedNoteError, "no blank line"),
        (good[:-1], MalformedNoteError, "does not end with a newline"),
        (good.replace("\n", "\r\n"), MalformedNoteError, "control character"),
        (good.replace("\u2014", "-"), MalformedNoteError, "em dash"),
        (good.replace("\u2014", "\u2013"), MalformedNoteError, "em dash"),
        (good + "trailing\n", MalformedNoteError, "em dash"),
        (text + "\n", MalformedNoteError, "no signature lines"),
        (text, MalformedNoteError, "no blank line"),
        (good.encode("utf-8").replace(b"\xe2\x80\x94", b"\xe2\x80"), MalformedNoteError, "UTF-8"),  # type: ignore[list-item]
        (good + "".join(f"\u2014 other{i} AAAAAAA=\n" for i in range(100)), MalformedNoteError, "more than 100"),
        (sign_note(text, [NoteSigner.generate(SIGSUM_ORIGIN)]), UnverifiedNoteError, "no trusted key"),
    ]
    for note, error, message in cases:
        with pytest.raises(error, match=message):
            verify_checkpoint(note, trusted)
    other = NoteSigner.generate("example.com/other")
    other_line = other.sign(text).line()
    assert verify_checkpoint(good + other_line, trusted).size == 6  # an unknown key: ignored
    same_name = NoteSignature(name=SIGSUM_ORIGIN, key_id=other.key_id, signature=other.sign(text).signature)
    assert verify_checkpoint(good + same_name.line(), trusted).size == 6
    same_key = NoteSignature(name=SIGSUM_ORIGIN, key_id=log.key_id, signature=other.sign(text).signature)
    for bad in (good + same_key.line(), text + "\n" + same_key.line() + sig_line):
        with pytest.raises(InvalidSignatureError):  # a trusted key's bad signature, even beside a good one
            verify_checkpoint(bad, trusted)
    with pytest.raises(NoteError, match="two different trusted keys"):
        verify_note(good, [log.verifier, NoteVerifier(name=log.name, key_id=log.key_id, public_key=bytes(32))])
    with pytest.raises(NoteError, match="no trusted key was given"):
        verify_note(good, [])
    with pytest.raises(CheckpointError, match=r"not 'example\.com/log'"):
        verify_checkpoint(good, trusted, origin="example.com/log")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("example.com/log\n01\n" + base64.b64encode(ROOT_6).decode() + "\n", "leading zeros"),
        ("example.com/log\n+6\n" + base64.b64encode(ROOT_6).decode() + "\n", "leading zeros"),
        ("example.com/log\n\u0666\n" + base64.b64encode(ROOT_6).decode() + "\n", "leading zeros"),  # Arabic-Indic 6
        ("example.com/log\n6\n" + base64.b64encode(ROOT_6[:31]).decode() + "\n", "not 32 bytes"),
        ("example.com/log\n6\n" + base64.b64encode(ROOT_6).decode().rstrip("=") + "\n", "base64"),
        ("example.com/log\n0\n" + base64.b64encode(ROOT_6).decode() + "\n", "empty tree"),
        ("example.com/log\n6\n" + base64.b64encode(ROOT_6).decode() + "\n\nextra\n", "extension line is empty"),
        ("example.com/log\n6\n", "at least three lines"),
        ("\n6\n" + base64.b64encode(ROOT_6).decode() + "\n", "origin line is empty"),
        ("example.com/log\n6\n" + base64.b64encode(ROOT_6).decode(), "ends with a newline"),
        (f"example.com/log\n{2**63}\n" + base64.b64encode(ROOT_6).decode() + "\n", r"2\^63-1"),
    ],
)
def test_checkpoint_text_refusals(text: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        parse_checkpoint(text)


def test_checkpoint_text_forms() -> None:
    root = base64.b64encode(ROOT_6).decode()
    assert parse_checkpoint(f"example.com/log\n6\n{root}\next one\n").extensions == ("ext one",)
    empty = parse_checkpoint(f"o\n0\n{base64.b64encode(EMPTY_ROOT).decode()}\n")
    assert empty.size == 0 and empty.text() == checkpoint_text("o", 0, EMPTY_ROOT)
    assert checkpoint_text("example.com/log", 6, ROOT_6) == f"example.com/log\n6\n{root}\n"
    for bad in ("", "has space", "a+b", "line\nbreak"):
        with pytest.raises(ValidationError, match="origin"):
            validate_origin(bad)
    with pytest.raises(ValidationError, match="32 bytes"):
        checkpoint_text("example.com/log", 6, ROOT_6[:31])


def test_default_origin() -> None:
    assert default_origin("default") == "nucleus.invalid/default"
    assert default_origin("acme:orders.eu-1") == "nucleus.invalid/acme:orders.eu-1"
    assert validate_origin(default_origin("acme:orders.eu-1"))
    with pytest.raises(ValidationError):
        default_origin("no spaces")


def test_vkeys() -> None:
    # '+' inside the base64 part (golang.org/x/mod gosumcheck; transparency-dev/formats)
    assert parse_vkey("sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8").name == "sum.golang.org"
    assert parse_vkey("TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6").key_id == 0x7997405C
    for bad, message in [
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "lowercase hex"),
        ("PeterNeumann+c74f20a3", "<name>"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "name"),
        ("remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2", "not an Ed25519 note key"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T", "base64"),
    ]:
        with pytest.raises(MalformedNoteError, match=message):
            parse_vkey(bad)


def test_signer_keys_and_loading(tmp_path: Path) -> None:
    signer = NoteSigner.generate("example.com/log")
    assert NoteSigner.from_skey(signer.skey) == signer
    seed_b64 = signer.skey.split("+", 4)[4]  # the base64 may hold "+" itself: split at most four times
    assert seed_b64 not in repr(signer) and seed_b64 not in str(signer)
    path = tmp_path / "log.key"
    write_key_file(path, signer)
    assert load_signer(path=path) == signer
    assert load_signer(env="LOG_KEY", environ={"LOG_KEY": signer.skey}) == signer
    wrong_id = signer.skey.replace(f"+{signer.key_id:08x}+", "+00000000+")
    for call, message in [
        (lambda: load_signer(path=tmp_path / "missing.key"), "cannot be read"),
        (lambda: load_signer(env="LOG_KEY", environ={}), "not set"),
        (lambda: load_signer(env="LOG_KEY", environ={"LOG_KEY": wrong_id}), "does not match"),
        (lambda: load_signer(env="LOG_KEY", environ={"LOG_KEY": signer.skey[12:]}), "starts with PRIVATE"),
        (lambda: load_signer(env="LOG_KEY", environ={"LOG_KEY": signer.skey[:-2]}), "base64"),
        (lambda: load_signer(), "one of the two"),
        (lambda: load_signer(path=path, env="LOG_KEY"), "one of the two"),
    ]:
        with pytest.raises(ConfigurationError, match=message) as caught:
            call()
        assert seed_b64[:-2] not in str(caught.value)
    cosigner_key = "PRIVATE+KEY+witness.example/w1+e75f6532+BAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f"
    with pytest.raises(ValidationError, match="not an Ed25519 note key"):
        NoteSigner.from_skey(cosigner_key)  # type 0x04 (a cosignature key) is not a note signer
    with pytest.raises(ValidationError, match="name"):
        NoteSigner(name="a b", seed=bytes(32))
    with pytest.raises(ValidationError, match="32 bytes"):
        NoteSigner(name="a", seed=bytes(31))


def test_sign_note_refuses_bad_texts() -> None:
    signer = NoteSigner.generate("example.com/log")
    for text, message in [("no newline", "ends with a newline"), ("tab\there\n", "control character")]:
        with pytest.raises(ValidationError, match=message):
            sign_note(text, [signer])
