"""Witness cosignatures of checkpoints: c2sp.org/tlog-cosignature, Ed25519 ``cosignature/v1``.

A cosignature is a note signature line that a witness adds to a checkpoint it checked::

    — <witness name> base64(key ID || u64 timestamp || Ed25519 signature)

- the key ID is ``SHA-256(<name> || 0x0A || 0x04 || 32-byte public key)[:4]`` (signature type
  ``0x04``: the same key as a ``0x01`` note signer would have another ID), and the witness's
  verifier key is ``<name>+<key ID hex>+<base64(0x04 || public key)>``;
- the timestamp is POSIX seconds, big-endian, at most 2^63-1;
- the signed message is ``cosignature/v1\\ntime <timestamp in decimal>\\n`` followed by the whole
  checkpoint text (final newline included, no signature line).

It states that, at that time, the largest consistent tree the witness had seen for the origin had
that root hash. A client requires ``k`` of ``n`` witnesses (:class:`CosignaturePolicy`) so that a
log cannot show it a history the others did not see. Cosignatures by keys the verifier was not
given are ignored, as signed-note requires; a line by a trusted key that fails refuses the note.

Like :mod:`nucleus_core.tlog_verify`, whose parsing it reuses, this module needs nothing but the
standard library and ``cryptography``: an auditor can copy the two files together. Signing is
:class:`nucleus_core.checkpoint.CosignatureSigner`'s (the witness's key file).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .tlog_verify import (
    InvalidSignatureError,
    MalformedNoteError,
    NoteError,
    NoteSignature,
    VerificationError,
    parse_note,
    split_vkey,
)

__all__ = [
    "COSIGNATURE_V1_HEADER", "MAX_TIMESTAMP", "SIGNATURE_TYPE_COSIGNATURE_V1", "Cosignature", "CosignaturePolicy",
    "CosignaturePolicyError", "CosignatureVerifier", "VerifiedCosignature", "add_cosignatures", "cosignature_message",
    "parse_cosignature_vkey", "verify_cosignatures",
]

SIGNATURE_TYPE_COSIGNATURE_V1 = 0x04
"""The signed-note signature type byte of timestamped Ed25519 checkpoint cosignatures."""

COSIGNATURE_V1_HEADER = "cosignature/v1"
"""The first line of the message an Ed25519 cosignature signs (domain separation)."""

MAX_TIMESTAMP = 2**63 - 1
"""Largest cosignature timestamp (tlog-cosignature: it MUST NOT exceed 2^63 - 1)."""

_SIGNATURE_SIZE = 8 + 64  # u64 timestamp || Ed25519 signature


class CosignaturePolicyError(VerificationError):
    """A checkpoint does not carry the valid cosignatures its policy requires. ``found``: how many
    distinct trusted witnesses cosigned it; ``required``: how many the policy asks for."""

    def __init__(self, message: str, *, found: int, required: int) -> None:
        super().__init__(message)
        self.found = found
        self.required = required


def cosignature_message(checkpoint_text: str, timestamp: int) -> bytes:
    """The bytes an Ed25519 ``cosignature/v1`` signs: the header line, ``time <timestamp>`` and the
    checkpoint's whole note text (which ends with a newline)."""
    if type(timestamp) is not int or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise MalformedNoteError("a cosignature timestamp is an integer from 0 to 2^63-1")
    if not isinstance(checkpoint_text, str) or not checkpoint_text.endswith("\n"):
        raise MalformedNoteError("a checkpoint text ends with a newline")
    return f"{COSIGNATURE_V1_HEADER}\ntime {timestamp}\n{checkpoint_text}".encode()


@dataclass(frozen=True)
class Cosignature:
    """One Ed25519 cosignature: the witness's key name and key ID, the timestamp (POSIX seconds) and
    the 64-byte signature."""

    name: str
    key_id: int
    timestamp: int
    signature: bytes

    @classmethod
    def from_note_signature(cls, line: NoteSignature) -> Cosignature:
        """Read a note signature line as a cosignature: its bytes after the key ID are the timestamp
        and the signature (72 bytes). Raises :class:`MalformedNoteError`."""
        if len(line.signature) != _SIGNATURE_SIZE:
            raise MalformedNoteError(
                f"the cosignature of {line.name}+{line.key_id:08x} is not {_SIGNATURE_SIZE} bytes "
                "(a timestamp and an Ed25519 signature)"
            )
        timestamp = int.from_bytes(line.signature[:8], "big")
        if timestamp > MAX_TIMESTAMP:
            raise MalformedNoteError(f"the cosignature of {line.name}+{line.key_id:08x} has a timestamp above 2^63-1")
        return cls(name=line.name, key_id=line.key_id, timestamp=timestamp, signature=line.signature[8:])

    @property
    def note_signature(self) -> NoteSignature:
        """The cosignature as a note signature (its bytes after the key ID: timestamp, signature)."""
        return NoteSignature(
            name=self.name, key_id=self.key_id, signature=self.timestamp.to_bytes(8, "big") + self.signature
        )

    def line(self) -> str:
        """The signature line, with its final newline."""
        return self.note_signature.line()


@dataclass(frozen=True)
class CosignatureVerifier:
    """A trusted witness's Ed25519 cosignature key, from its verifier key (:func:`parse_cosignature_vkey`)."""

    name: str
    key_id: int
    public_key: bytes

    @property
    def vkey(self) -> str:
        """The verifier key string ``<name>+<key ID hex>+<base64(0x04 || public key)>``."""
        material = bytes([SIGNATURE_TYPE_COSIGNATURE_V1]) + self.public_key
        return f"{self.name}+{self.key_id:08x}+{base64.b64encode(material).decode('ascii')}"

    def verify(self, checkpoint_text: str, cosignature: Cosignature) -> bool:
        """True when ``cosignature`` is this key's cosignature of the checkpoint text ``checkpoint_text``
        (the name and key ID must be this key's too)."""
        if (cosignature.name, cosignature.key_id) != (self.name, self.key_id) or len(cosignature.signature) != 64:
            return False
        message = cosignature_message(checkpoint_text, cosignature.timestamp)
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(cosignature.signature, message)
        except InvalidSignature:
            return False
        return True


def parse_cosignature_vkey(vkey: str) -> CosignatureVerifier:
    """Parse a witness's verifier key ``<name>+<key ID hex>+<base64(0x04 || 32-byte Ed25519 public
    key)>``; the key ID must be the one the name and key give. Raises :class:`MalformedNoteError`."""
    name, ident, material = split_vkey(vkey)
    if len(material) != 33 or material[0] != SIGNATURE_TYPE_COSIGNATURE_V1:
        raise MalformedNoteError(
            "the verifier key is not an Ed25519 cosignature key (type 0x04, 32 bytes): a witness's key, "
            "not a log's (type 0x01)"
        )
    return CosignatureVerifier(name=name, key_id=ident, public_key=material[1:])


@dataclass(frozen=True)
class VerifiedCosignature:
    """A trusted witness's valid cosignature: the witness's key and the cosignature (its timestamp)."""

    verifier: CosignatureVerifier
    cosignature: Cosignature

    @property
    def timestamp(self) -> int:
        """When the witness cosigned, in POSIX seconds."""
        return self.cosignature.timestamp


def _trusted(verifiers: Iterable[CosignatureVerifier]) -> dict[tuple[str, int], CosignatureVerifier]:
    trusted: dict[tuple[str, int], CosignatureVerifier] = {}
    for verifier in verifiers:
        if not isinstance(verifier, CosignatureVerifier):
            raise NoteError("a trusted witness key is a CosignatureVerifier (parse_cosignature_vkey)")
        key = (verifier.name, verifier.key_id)
        if trusted.setdefault(key, verifier) != verifier:
            raise NoteError(f"two different trusted witness keys are named {verifier.name}+{verifier.key_id:08x}")
    return trusted


def verify_cosignatures(
    note: str | bytes, verifiers: Iterable[CosignatureVerifier]
) -> tuple[VerifiedCosignature, ...]:
    """The valid cosignatures on the signed note ``note`` (a checkpoint) by the trusted witness keys
    ``verifiers``, one per key that cosigned, in the order of ``verifiers``.

    Lines by other keys (another name or key ID: the log's signature, unknown witnesses) are
    ignored; every line by a trusted key must be a valid cosignature of the note's text, or the note
    is refused (:class:`InvalidSignatureError`; :class:`MalformedNoteError` for a line that is not
    a cosignature at all). A note no trusted witness cosigned gives an empty tuple: how many are
    enough is the caller's policy (:class:`CosignaturePolicy`). The log's own signature is not
    checked here (:func:`nucleus_core.tlog_verify.verify_checkpoint` does)."""
    trusted = _trusted(verifiers)
    parsed = parse_note(note)
    found: dict[tuple[str, int], VerifiedCosignature] = {}
    for line in parsed.signatures:
        key = (line.name, line.key_id)
        verifier = trusted.get(key)
        if verifier is None:
            continue
        cosignature = Cosignature.from_note_signature(line)
        if not verifier.verify(parsed.text, cosignature):
            raise InvalidSignatureError(f"the cosignature of the trusted witness {verifier.vkey} does not verify")
        found.setdefault(key, VerifiedCosignature(verifier=verifier, cosignature=cosignature))
    return tuple(found[key] for key in trusted if key in found)


@dataclass(frozen=True)
class CosignaturePolicy:
    """A "``quorum`` of these ``witnesses``": a checkpoint is accepted when at least ``quorum``
    distinct witnesses of the list cosigned it (:meth:`check`).

    Witnesses are counted by public key, not by name: an Ed25519 cosignature does not commit to the
    witness's name, so one key listed under two names would be one witness counted twice; such a
    list is refused, like two keys under one name and key ID."""

    quorum: int
    witnesses: tuple[CosignatureVerifier, ...]

    def __init__(self, quorum: int, witnesses: Sequence[CosignatureVerifier]) -> None:
        witnesses = tuple(witnesses)
        _trusted(witnesses)
        keys = [w.public_key for w in witnesses]
        if len(set(keys)) != len(keys):
            raise NoteError("two trusted witnesses share one public key (tlog-cosignature: one key per witness)")
        if type(quorum) is not int or not 1 <= quorum <= len(witnesses):
            raise NoteError(
                f"a cosignature policy requires from 1 to {len(witnesses)} (the witnesses listed) cosignatures, "
                f"not {quorum!r}"
            )
        object.__setattr__(self, "quorum", quorum)
        object.__setattr__(self, "witnesses", witnesses)

    @classmethod
    def from_vkeys(cls, quorum: int, vkeys: Iterable[str]) -> CosignaturePolicy:
        """The policy over the witnesses with these verifier keys (:func:`parse_cosignature_vkey`)."""
        return cls(quorum, [parse_cosignature_vkey(vkey) for vkey in vkeys])

    def check(self, note: str | bytes) -> tuple[VerifiedCosignature, ...]:
        """The valid cosignatures of the policy's witnesses on ``note`` (:func:`verify_cosignatures`),
        when there are at least :attr:`quorum`; :class:`CosignaturePolicyError` naming how many were
        found otherwise."""
        found = verify_cosignatures(note, self.witnesses)
        if len(found) < self.quorum:
            raise CosignaturePolicyError(
                f"the checkpoint carries valid cosignatures by {len(found)} of the {len(self.witnesses)} trusted "
                f"witnesses; the policy requires {self.quorum}",
                found=len(found),
                required=self.quorum,
            )
        return found


def add_cosignatures(note: str, cosignatures: Iterable[Cosignature]) -> str:
    """The signed note ``note`` with the lines of ``cosignatures`` after its signatures. A line
    already on the note by the key of one of them (same name and key ID: an older cosignature by
    the same witness) is dropped, so that each witness appears once; the others stay as they were.
    Nothing is verified (:func:`verify_cosignatures` does)."""
    parsed = parse_note(note)
    new = list(cosignatures)
    replaced = {(c.name, c.key_id) for c in new}
    if len(replaced) != len(new):
        raise NoteError("two of the cosignatures to add are by one key")
    kept = [line for line in parsed.signatures if (line.name, line.key_id) not in replaced]
    return parsed.text + "\n" + "".join(line.line() for line in kept) + "".join(c.line() for c in new)
