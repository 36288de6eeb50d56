"""The tests' own C2SP verifier, written from the specification texts, importing nothing of Nucleus.

Tests use it to check what the project's code produces (checkpoints, cosignatures, witness
answers) against a second, independent reading of the specifications, so that a mistake shared by
the signing and the verifying code of the project cannot pass unnoticed:

- c2sp.org/signed-note: a note is UTF-8 text ending with a newline, a blank line, and signature
  lines ``U+2014 U+0020 <key name> U+0020 base64(4-byte key ID || signature) U+000A``; the text
  ends at the last blank line; a key ID is ``SHA-256(name || 0x0A || type || public key)[:4]``;
  a verifier key is ``name+hex(key ID)+base64(type || public key)``; type 0x01 is Ed25519 over the
  text.
- c2sp.org/tlog-checkpoint: the text is the origin, the tree size in decimal, the base64 root hash
  (then optional extension lines), one per line.
- c2sp.org/tlog-cosignature: type 0x04; the signature is a big-endian u64 timestamp followed by an
  Ed25519 signature of ``"cosignature/v1\\ntime " || decimal timestamp || "\\n" || text``.
- RFC 6962 section 2.1: the Merkle tree hash (for checking which root a history has).

Tests run with ``--import-mode=importlib``, so this file is not importable by name; load it by
path (any test of the repository, the distributions' included, since .ci/dist-tests runs them
from the repository root)::

    import importlib.util, pathlib, sys
    path = pathlib.Path(__file__).resolve().parents[N] / "tests" / "c2sp_reference.py"  # N: depth
    spec = importlib.util.spec_from_file_location("c2sp_reference", path)
    ref = importlib.util.module_from_spec(spec)
    sys.modules["c2sp_reference"] = ref
    spec.loader.exec_module(ref)

Everything raises :class:`Refused` for what the texts refuse.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

EM_DASH = "\u2014".encode()


class Refused(Exception):
    """What the specifications refuse."""


def _b64(data: bytes | str) -> bytes:
    raw = data.encode("ascii") if isinstance(data, str) else data
    try:
        out = base64.b64decode(raw, validate=True)
    except binascii.Error as err:
        raise Refused(f"not base64: {raw!r}") from err
    if base64.b64encode(out) != raw:
        raise Refused(f"not canonical base64: {raw!r}")
    return out


def key_id(name: str, type_and_key: bytes) -> bytes:
    """signed-note: the 4 first bytes of SHA-256(name || LF || type || public key)."""
    return hashlib.sha256(name.encode() + b"\n" + type_and_key).digest()[:4]


@dataclass(frozen=True)
class VKey:
    """A verifier key: name, 4-byte key ID, type byte and public key."""

    name: str
    key_id: bytes
    type: int
    public_key: bytes


def parse_vkey(vkey: str) -> VKey:
    """``name+hex(key ID)+base64(type || key)``; the ID must be the name's and key's."""
    name, sep1, rest = vkey.partition("+")
    hex_id, sep2, b64 = rest.partition("+")
    if not (sep1 and sep2 and name and len(hex_id) == 8):
        raise Refused(f"not a vkey: {vkey!r}")
    material = _b64(b64)
    if bytes.fromhex(hex_id) != key_id(name, material):
        raise Refused("the vkey's key ID does not match")
    if len(material) != 33:
        raise Refused("not an Ed25519 vkey")
    return VKey(name=name, key_id=bytes.fromhex(hex_id), type=material[0], public_key=material[1:])


@dataclass(frozen=True)
class SignedNote:
    """A note split into its text (final newline included) and its (name, blob) signature lines."""

    text: bytes
    signatures: tuple[tuple[str, bytes], ...]


def split_note(note: bytes | str) -> SignedNote:
    """signed-note "Format": the text ends at the last blank line, then the signature lines."""
    data = note.encode() if isinstance(note, str) else note
    data.decode("utf-8")  # UTF-8 or UnicodeDecodeError
    if any(b < 0x20 and b != 0x0A for b in data):
        raise Refused("a control character")
    cut = data.rfind(b"\n\n")
    if cut < 0:
        raise Refused("no blank line")
    text, sigs = data[: cut + 1], data[cut + 2 :]
    if not sigs or not sigs.endswith(b"\n"):
        raise Refused("no signature lines, or no final newline")
    lines = []
    for line in sigs[:-1].split(b"\n"):
        if not line.startswith(EM_DASH + b" "):
            raise Refused(f"not a signature line: {line!r}")
        name, space, b64 = line[len(EM_DASH) + 1 :].partition(b" ")
        if not space or not name:
            raise Refused(f"not a signature line: {line!r}")
        blob = _b64(b64)
        if len(blob) < 5:
            raise Refused("a signature shorter than 5 bytes")
        lines.append((name.decode(), blob))
    return SignedNote(text=text, signatures=tuple(lines))


def _ed25519(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _lines_of(note: SignedNote, key: VKey) -> list[bytes]:
    return [blob[4:] for name, blob in note.signatures if name == key.name and blob[:4] == key.key_id]


def note_signed_by(note: bytes | str, vkey: str) -> bool:
    """True when the note carries a line by this type-0x01 key and every such line verifies over
    the text (signed-note); False when none is there; Refused when one fails."""
    key = parse_vkey(vkey)
    if key.type != 0x01:
        raise Refused("not a type 0x01 (Ed25519 note) key")
    parsed = split_note(note)
    sigs = _lines_of(parsed, key)
    for sig in sigs:
        if len(sig) != 64 or not _ed25519(key.public_key, sig, parsed.text):
            raise Refused(f"the signature of {key.name} does not verify")
    return bool(sigs)


def cosignature_message(text: bytes, timestamp: int) -> bytes:
    """tlog-cosignature "Ed25519 signed message"."""
    return b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + text


def cosignature_timestamps(note: bytes | str, vkey: str) -> list[int]:
    """The timestamps of this type-0x04 witness key's cosignatures on the note, every one checked
    (Refused when one fails); empty when the witness did not cosign."""
    key = parse_vkey(vkey)
    if key.type != 0x04:
        raise Refused("not a type 0x04 (cosignature/v1) key")
    parsed = split_note(note)
    out = []
    for sig in _lines_of(parsed, key):
        if len(sig) != 72:
            raise Refused("a cosignature is 8 + 64 bytes")
        timestamp = int.from_bytes(sig[:8], "big")
        if timestamp >= 2**63:
            raise Refused("a cosignature timestamp above 2^63-1")
        if not _ed25519(key.public_key, sig[8:], cosignature_message(parsed.text, timestamp)):
            raise Refused(f"the cosignature of {key.name} does not verify")
        out.append(timestamp)
    return out


@dataclass(frozen=True)
class CheckpointBody:
    """tlog-checkpoint: origin, tree size, root hash, extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...]


def parse_checkpoint_text(text: bytes | str) -> CheckpointBody:
    """The checkpoint's note text (not the signatures)."""
    data = text.decode() if isinstance(text, bytes) else text
    if not data.endswith("\n"):
        raise Refused("a checkpoint ends with a newline")
    lines = data[:-1].split("\n")
    if len(lines) < 3 or not lines[0]:
        raise Refused("a checkpoint has an origin, a size and a root")
    size = lines[1]
    if not size.isdigit() or not size.isascii() or (size != "0" and size.startswith("0")):
        raise Refused("a checkpoint size is decimal without leading zeros")
    root = _b64(lines[2])
    if len(root) != 32:
        raise Refused("a checkpoint root is 32 bytes")
    return CheckpointBody(origin=lines[0], size=int(size), root=root, extensions=tuple(lines[3:]))


def checkpoint(note: bytes | str, log_vkey: str) -> CheckpointBody:
    """The checkpoint in a note that the log key signed (Refused otherwise)."""
    if not note_signed_by(note, log_vkey):
        raise Refused("the log did not sign the note")
    return parse_checkpoint_text(split_note(note).text)


def merkle_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 Merkle tree hash of the leaf inputs ``leaves``."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + merkle_root(leaves[:k]) + merkle_root(leaves[k:])).digest()
