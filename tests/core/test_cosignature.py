"""Witness cosignatures (c2sp.org/tlog-cosignature, Ed25519 cosignature/v1): vectors, signing,
verifying and k-of-n policies, each result checked by the tests' own C2SP verifier as well."""

from __future__ import annotations

import base64
import importlib.util
import os
import stat
import sys
from pathlib import Path

import pytest

from nucleus_core.checkpoint import (
    CosignatureSigner,
    NoteSigner,
    read_signer_key_file,
    sign_checkpoint,
    sign_note,
    write_key_file,
)
from nucleus_core.cosignature import (
    Cosignature,
    CosignaturePolicy,
    CosignaturePolicyError,
    CosignatureVerifier,
    add_cosignatures,
    cosignature_message,
    parse_cosignature_vkey,
    verify_cosignatures,
)
from nucleus_core.errors import ConfigurationError, ValidationError
from nucleus_core.tlog_verify import (
    InvalidSignatureError,
    MalformedNoteError,
    NoteError,
    VerificationError,
    parse_note,
    parse_vkey,
    verify_checkpoint,
)


def _load_reference():  # type: ignore[no-untyped-def]
    path = Path(__file__).resolve().parents[1] / "c2sp_reference.py"
    spec = importlib.util.spec_from_file_location("c2sp_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["c2sp_reference"] = module
    spec.loader.exec_module(module)
    return module


ref = _load_reference()

# The log key of C2SP/C2SP issue #99 (seed 0x11 then 31 zero bytes) and the witness key with seed
# 00 01 .. 1f: the end-to-end vectors of the transparency formats notes (derived there with Python
# and pyca/cryptography; Ed25519 is deterministic, so a correct implementation gives these bytes).
ORIGIN = "sigsum.org/v1/tree/e796172b92befd62d9dc67e41c2f5bc9d3100a3023b20b1ca40288dd1c679e69"
LOG_VKEY = ORIGIN + "+809da1a3+AWbguFjkYqYJ5m/nE3DIFtiEb/ED1UmaIqf+w3/bxCSn"
LOG = NoteSigner(name=ORIGIN, seed=bytes([0x11]) + bytes(31))
WITNESS_NAME = "witness.example/w1"
WITNESS_VKEY = "witness.example/w1+e75f6532+BAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
WITNESS_SKEY = "PRIVATE+KEY+witness.example/w1+e75f6532+BAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f"
ROOT8 = base64.b64decode("XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=")
NOTE8 = (
    f"{ORIGIN}\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n\u2014 {ORIGIN} "
    "gJ2ho/5YBSEdA8yXbf8FM3q7xPIM/zf9YIBQB/NqHgsKb4SW8NWtV9b/WLFa4m1JtmG26MvRHNUpbGe6CQjsHF3RSA8=\n"
)
COSIG8_AT_1700000000 = (
    "\u2014 witness.example/w1 519lMgAAAABlU/EA2RxS8OhxlkOBi9YGS/PWjxjbce+G+iw0kkDAU0FlU7uOdtAWYLRLBMBf0dz17DSktlG6"
    "BVB2MeNRyuk7uBotAw==\n"
)
TEXT10 = f"{ORIGIN}\n10\nHA5HAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
COSIG10_AT_1679315147 = (
    "\u2014 witness.example/w1 519lMgAAAABkGFDLs+k0eLNjYpELsidVne0gvlb+BDBLtm79OJgt5/N4MZQtsN6afm/Ou6dHON+8TKf9Xa3C"
    "yhQ1Xsje7iARNaX3Ag==\n"
)


def _witness(name: str) -> CosignatureSigner:
    return CosignatureSigner.generate(name)


# -- keys ----------------------------------------------------------------------------------------------


def test_witness_key_vectors() -> None:
    witness = CosignatureSigner(name=WITNESS_NAME, seed=bytes(range(32)))
    assert witness.vkey == WITNESS_VKEY
    assert witness.skey == WITNESS_SKEY
    assert CosignatureSigner.from_skey(WITNESS_SKEY) == witness
    assert parse_cosignature_vkey(WITNESS_VKEY) == witness.verifier
    assert parse_cosignature_vkey(WITNESS_VKEY).vkey == WITNESS_VKEY
    assert ref.parse_vkey(WITNESS_VKEY).type == 0x04
    assert LOG.vkey == LOG_VKEY


def test_reference_implementation_vkeys() -> None:
    # transparency-dev/formats note/note_cosigv1_test.go TestCoSigV1NewVerifier: a native 0x04 key.
    remora = parse_cosignature_vkey("remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2")
    assert (remora.name, remora.key_id) == ("remora.n621.de", 0xDA77ADE7)
    # The same file's 0x01 key: a log's note key is not a cosignature key here (formats converts it;
    # this module refuses it, so that a log key is never trusted as a witness by mistake).
    log_style = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
    with pytest.raises(MalformedNoteError, match="type 0x04"):
        parse_cosignature_vkey(log_style)
    # ... and the same public key as a cosigner has another key ID (the type byte is hashed).
    as_cosigner = CosignatureVerifier(name="TEST", key_id=0xFDD2DBC7, public_key=parse_vkey(log_style).public_key)
    assert parse_cosignature_vkey(as_cosigner.vkey) == as_cosigner
    for bad in (
        "rekor.sigstore.dev+12344556",
        "rekor.sigstore.dev+12345678+THIS_IS_NOT_BASE64!",
        "rekor.sigstore.dev+12345678+AwEB",
        WITNESS_VKEY.replace("+e75f6532+", "+e75f6533+"),
        WITNESS_VKEY.replace("+e75f6532+", "+E75F6532+"),
    ):
        with pytest.raises(MalformedNoteError):
            parse_cosignature_vkey(bad)


def test_note_and_witness_keys_do_not_mix() -> None:
    with pytest.raises(ValidationError, match="not an Ed25519 note key"):
        NoteSigner.from_skey(WITNESS_SKEY)
    with pytest.raises(ValidationError, match=r"not an Ed25519 cosignature key \(type 0x04"):
        CosignatureSigner.from_skey(LOG.skey)
    with pytest.raises(MalformedNoteError):
        parse_vkey(WITNESS_VKEY)
    assert "BAAB" not in repr(CosignatureSigner.from_skey(WITNESS_SKEY))


def test_witness_key_file(tmp_path: Path) -> None:
    witness = _witness("witness.test/one")
    path = tmp_path / "witness.key"
    write_key_file(path, witness)
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_signer_key_file(path, CosignatureSigner) == witness
    with pytest.raises(ConfigurationError, match="already exists"):
        write_key_file(path, _witness("witness.test/two"))
    assert read_signer_key_file(path, CosignatureSigner) == witness
    with pytest.raises(ConfigurationError, match="not an Ed25519 note key"):
        read_signer_key_file(path, NoteSigner)


# -- the cosignature -----------------------------------------------------------------------------------


def test_cosignature_vectors() -> None:
    witness = CosignatureSigner.from_skey(WITNESS_SKEY)
    text8 = parse_note(NOTE8).text
    assert witness.cosign(text8, 1700000000).line() == COSIG8_AT_1700000000
    assert witness.cosign(TEXT10, 1679315147).line() == COSIG10_AT_1679315147
    assert cosignature_message(TEXT10, 1679315147) == f"cosignature/v1\ntime 1679315147\n{TEXT10}".encode()
    found = verify_cosignatures(NOTE8 + COSIG8_AT_1700000000, [parse_cosignature_vkey(WITNESS_VKEY)])
    assert [(c.verifier.vkey, c.timestamp) for c in found] == [(WITNESS_VKEY, 1700000000)]
    assert ref.cosignature_timestamps(NOTE8 + COSIG8_AT_1700000000, WITNESS_VKEY) == [1700000000]
    assert ref.note_signed_by(NOTE8 + COSIG8_AT_1700000000, LOG_VKEY)


def test_decodes_the_specifications_example_line() -> None:
    # tlog-cosignature's example (no key is published for it: layout and decoding only).
    line = (
        "\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5"
        "nNo0xUe+mbIUBkBIfZ+qnA==\n"
    )
    note = parse_note("example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n" + line)
    cosignature = Cosignature.from_note_signature(note.signatures[0])
    assert (cosignature.key_id, cosignature.timestamp) == (0x8D66CF3F, 1679315147)
    assert cosignature.line() == line
    # transparency-dev/formats TestCoSigV1Timestamp: its cosignature, then an ordinary 68-byte one.
    blob = "ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA=="
    cosignature = Cosignature.from_note_signature(parse_note(f"x\n\n\u2014 w {blob}\n").signatures[0])
    assert (cosignature.key_id, cosignature.timestamp) == (0x646846B9, 1727964367)
    plain = "eQjRQm6eSKzFoiYalgwCPXu2y3ijtg68is9M46JKxuZB+dRfTmeQeDBoXnvxZx2ugnkyV+MUMLXpWs1hPb/W/4xkNQY="
    with pytest.raises(MalformedNoteError, match="not 72 bytes"):
        Cosignature.from_note_signature(parse_note(f"x\n\n\u2014 w {plain}\n").signatures[0])


def test_a_made_cosignature_verifies_with_the_reference_and_covers_everything() -> None:
    witness = _witness("witness.test/w")
    text = f"example.test/log\n3\n{base64.b64encode(bytes(range(32))).decode()}\nextension line\n"
    note = sign_note(text, [LOG])
    cosigned = note + witness.cosign(text, 1_800_000_000).line()
    assert ref.cosignature_timestamps(cosigned, witness.vkey) == [1_800_000_000]
    assert [c.timestamp for c in verify_cosignatures(cosigned, [witness.verifier])] == [1_800_000_000]
    # The extension line is signed too; so are the timestamp and every byte of the text.
    for changed in (
        cosigned.replace("extension line", "extension lime"),
        cosigned.replace("\n3\n", "\n4\n"),
        cosigned.replace("example.test/log\n", "example.test/loh\n"),
    ):
        with pytest.raises(InvalidSignatureError, match=r"witness\.test/w"):
            verify_cosignatures(changed, [witness.verifier])
        with pytest.raises(ref.Refused):
            ref.cosignature_timestamps(changed, witness.vkey)
    line = parse_note(cosigned).signatures[-1]
    later = Cosignature.from_note_signature(line)
    forged = Cosignature(name=later.name, key_id=later.key_id, timestamp=later.timestamp + 1, signature=later.signature)
    with pytest.raises(InvalidSignatureError):
        verify_cosignatures(note + forged.line(), [witness.verifier])


def test_lines_by_other_keys_are_ignored_and_a_log_signature_is_no_cosignature() -> None:
    witness, stranger = _witness("witness.test/a"), _witness("witness.test/b")
    note = sign_checkpoint("example.test/log", 1, bytes(32), [LOG])
    text = parse_note(note).text
    assert verify_cosignatures(note, [witness.verifier]) == ()
    cosigned = note + stranger.cosign(text, 5).line()
    assert verify_cosignatures(cosigned, [witness.verifier]) == ()
    # A note signature by the witness's key under its name is type 0x01: another key ID, ignored.
    same_key_as_note_signer = NoteSigner(name=witness.name, seed=_seed(witness))
    signed_plain = sign_note(text, [LOG, same_key_as_note_signer])
    assert verify_cosignatures(signed_plain, [witness.verifier]) == ()
    # A line with the witness's name and key ID that is not a cosignature at all is refused.
    bogus = parse_note(signed_plain).signatures[-1]
    blob = base64.b64encode(witness.key_id.to_bytes(4, "big") + bogus.signature).decode()
    impostor = f"\u2014 {witness.name} {blob}\n"
    with pytest.raises(MalformedNoteError, match="not 72 bytes"):
        verify_cosignatures(note + impostor, [witness.verifier])


def _seed(signer: CosignatureSigner) -> bytes:
    return base64.b64decode(signer.skey.split("+", 4)[4])[1:]


def test_timestamp_limits() -> None:
    witness = _witness("witness.test/t")
    text = parse_note(sign_checkpoint("example.test/log", 1, bytes(32), [LOG])).text
    top = witness.cosign(text, 2**63 - 1)
    assert verify_cosignatures(sign_note(text, [LOG]) + top.line(), [witness.verifier])[0].timestamp == 2**63 - 1
    for bad in (-1, 2**63, 1.5, True):
        with pytest.raises(ValidationError, match="timestamp"):
            witness.cosign(text, bad)  # type: ignore[arg-type]
    over = Cosignature(name=witness.name, key_id=witness.key_id, timestamp=0, signature=top.signature)
    raw = (2**64 - 1).to_bytes(8, "big") + over.signature
    line = f"\u2014 {witness.name} {base64.b64encode(witness.key_id.to_bytes(4, 'big') + raw).decode()}\n"
    with pytest.raises(MalformedNoteError, match="above 2"):
        verify_cosignatures(sign_note(text, [LOG]) + line, [witness.verifier])


def test_duplicate_lines_each_verify_first_kept() -> None:
    witness = _witness("witness.test/d")
    note = sign_checkpoint("example.test/log", 1, bytes(32), [LOG])
    text = parse_note(note).text
    both = note + witness.cosign(text, 10).line() + witness.cosign(text, 20).line()
    assert [c.timestamp for c in verify_cosignatures(both, [witness.verifier])] == [10]
    broken = note + witness.cosign(text, 10).line() + witness.cosign(text + "x\n", 20).line()
    with pytest.raises(InvalidSignatureError):
        verify_cosignatures(broken, [witness.verifier])


def test_add_cosignatures_replaces_the_same_witness_only() -> None:
    a, b = _witness("witness.test/a"), _witness("witness.test/b")
    note = sign_checkpoint("example.test/log", 1, bytes(32), [LOG])
    text = parse_note(note).text
    once = add_cosignatures(note, [a.cosign(text, 1), b.cosign(text, 1)])
    again = add_cosignatures(once, [a.cosign(text, 2)])
    assert verify_checkpoint(again, [LOG.verifier]).size == 1
    assert [(c.verifier.name, c.timestamp) for c in verify_cosignatures(again, [a.verifier, b.verifier])] == [
        ("witness.test/a", 2),
        ("witness.test/b", 1),
    ]
    assert again.count("\u2014 ") == 3
    assert ref.cosignature_timestamps(again, a.vkey) == [2]
    with pytest.raises(NoteError, match="by one key"):
        add_cosignatures(note, [a.cosign(text, 1), a.cosign(text, 2)])


# -- policies ------------------------------------------------------------------------------------------


def test_k_of_n_policy() -> None:
    witnesses = [_witness(f"witness.test/{i}") for i in range(3)]
    policy = CosignaturePolicy.from_vkeys(2, [w.vkey for w in witnesses])
    note = sign_checkpoint("example.test/log", 5, bytes(range(32)), [LOG])
    text = parse_note(note).text
    one = note + witnesses[0].cosign(text, 100).line()
    with pytest.raises(CosignaturePolicyError, match="by 1 of the 3 trusted witnesses; the policy requires 2") as info:
        policy.check(one)
    assert (info.value.found, info.value.required) == (1, 2)
    assert isinstance(info.value, VerificationError)
    two = one + _witness("witness.test/stranger").cosign(text, 1).line() + witnesses[2].cosign(text, 300).line()
    assert [(c.verifier.name, c.timestamp) for c in policy.check(two)] == [
        ("witness.test/0", 100),
        ("witness.test/2", 300),
    ]
    with pytest.raises(InvalidSignatureError):  # a trusted witness's bad line refuses the note, quorum or not
        policy.check(two + witnesses[1].cosign(text + "x\n", 1).line())
    # The same witness twice does not count twice.
    with pytest.raises(CosignaturePolicyError, match="by 1 of"):
        policy.check(one + witnesses[0].cosign(text, 101).line())


def test_policy_refuses_bad_lists() -> None:
    a, b = _witness("witness.test/a"), _witness("witness.test/b")
    with pytest.raises(NoteError, match="from 1 to 2"):
        CosignaturePolicy(0, [a.verifier, b.verifier])
    with pytest.raises(NoteError, match="from 1 to 2"):
        CosignaturePolicy(3, [a.verifier, b.verifier])
    with pytest.raises(NoteError, match="from 1 to 0"):
        CosignaturePolicy(1, [])
    # One public key under two names would count one signature twice (the message has no name).
    renamed = CosignatureSigner(name="witness.test/alias", seed=_seed(a))
    with pytest.raises(NoteError, match="share one public key"):
        CosignaturePolicy(2, [a.verifier, renamed.verifier])
    clash = CosignatureVerifier(name=a.name, key_id=a.key_id, public_key=b.public_key)
    with pytest.raises(NoteError, match="two different trusted witness keys"):
        CosignaturePolicy(1, [a.verifier, clash])
    with pytest.raises(NoteError, match="CosignatureVerifier"):
        CosignaturePolicy(1, [LOG.verifier])  # type: ignore[list-item]
