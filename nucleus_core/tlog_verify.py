"""Verify a Nucleus ledger's transparency data without Nucleus: RFC 9162 proofs, C2SP signed notes
and checkpoints.

This file needs nothing but the Python standard library and ``cryptography`` (pyca), so that an
auditor can copy it alone, or load it by path, and check what a ledger publishes:

- :func:`verify_inclusion` and :func:`verify_consistency` are RFC 9162 section 2.1.3.2 and 2.1.4.2
  (SHA-256, leaf hash ``SHA-256(0x00 || leaf)``, node hash ``SHA-256(0x01 || left || right)``),
  with the cases the RFC leaves to the caller settled: an index at or past the size, equal sizes
  (empty proof, equal roots), the empty tree (empty proof, root ``SHA-256("")``), and every hash
  exactly 32 bytes.
- :func:`parse_note` and :func:`verify_note` are c2sp.org/signed-note with Ed25519 (signature type
  ``0x01``): the text is split from the signatures at the last blank line; signatures from keys the
  caller does not trust (another name or key ID) are ignored; a trusted key's signature that fails
  refuses the whole note, and so does a note no trusted key signed.
- :func:`parse_checkpoint` and :func:`verify_checkpoint` are c2sp.org/tlog-checkpoint: origin,
  tree size in decimal without leading zeros, base64 root hash, optional non-empty extension lines.

Every refusal raises a :class:`VerificationError` subclass whose message says what is wrong. The
module imports nothing else of Nucleus on purpose (``tests/core/test_tlog_verify_standalone.py`` loads it
with every other import blocked); ``docs/FORMAT.md`` ("Merkle tree") states the tree it checks.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "EMPTY_ROOT", "HASH_SIZE", "MAX_NOTE_BYTES", "MAX_SIGNATURES", "MAX_TREE_SIZE", "SIGNATURE_TYPE_ED25519",
    "Checkpoint", "CheckpointError", "InvalidSignatureError", "MalformedNoteError", "Note", "NoteError",
    "NoteSignature", "NoteVerifier", "ProofError", "UnverifiedNoteError", "VerificationError", "VerifiedNote",
    "b64decode_strict", "key_id", "leaf_hash", "node_hash", "parse_checkpoint", "parse_note", "parse_signature_lines",
    "parse_vkey", "split_vkey", "valid_key_name", "verify_checkpoint", "verify_consistency", "verify_inclusion",
    "verify_multi_inclusion", "verify_note",
]

HASH_SIZE = 32
"""Bytes in every hash of the tree (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root hash of the empty tree, ``MTH({}) = SHA-256("")`` (RFC 9162 section 2.1.1)."""

MAX_TREE_SIZE = 2**63 - 1
"""Largest tree size and leaf index accepted (the specifications state none; Go's code uses int64)."""

SIGNATURE_TYPE_ED25519 = 0x01
"""The signed-note signature type byte of Ed25519 note signatures."""

MAX_SIGNATURES = 100
"""Most signature lines a note may carry (signed-note: verifiers MUST accept at least 16)."""

MAX_NOTE_BYTES = 1_000_000
"""Largest note accepted, in UTF-8 bytes (an implementation limit, as in Go's checkpoint parsers)."""

_EM_DASH_PREFIX = "\u2014 "
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")


class VerificationError(Exception):
    """Something an outsider was given does not verify; the message says what."""


class ProofError(VerificationError):
    """An inclusion or consistency proof does not verify."""


class NoteError(VerificationError):
    """A signed note is refused."""


class MalformedNoteError(NoteError):
    """The bytes are not a signed note (c2sp.org/signed-note "Format")."""


class InvalidSignatureError(NoteError):
    """A signature by a trusted key (same name and key ID) does not verify: the note is refused."""


class UnverifiedNoteError(NoteError):
    """No signature by a trusted key is on the note."""


class CheckpointError(VerificationError):
    """A note's text is not a valid checkpoint, or not the one expected."""


# -- hashing ------------------------------------------------------------------------------------


def leaf_hash(leaf: bytes) -> bytes:
    """RFC 9162 leaf hash: ``SHA-256(0x00 || leaf)``. For a Nucleus ledger ``leaf`` is the 32 raw
    bytes of an entry's (BLAKE3) hash."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ProofError(f"{what} is not {HASH_SIZE} bytes")
    return value


def _check_count(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_TREE_SIZE:
        raise ProofError(f"{what} is not an integer from 0 to 2^63-1")
    return value


def _check_proof(proof: Sequence[bytes], what: str) -> list[bytes]:
    if isinstance(proof, bytes | str):
        raise ProofError(f"{what} is a list of hashes, not one value")
    return [_check_hash(p, f"{what} element {i}") for i, p in enumerate(proof)]


# -- proofs (RFC 9162 section 2.1.3.2 and 2.1.4.2) ---------------------------------------------------


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf`` (a leaf *hash*, see :func:`leaf_hash`) is leaf ``index`` of the tree of
    ``size`` leaves whose root hash is ``root``, by the inclusion proof ``proof`` (bottom-up, as
    RFC 9162 section 2.1.3.1 generates it). Raises :class:`ProofError` when it does not hold."""
    _check_hash(leaf, "the leaf hash")
    _check_hash(root, "the root hash")
    path = _check_proof(proof, "the inclusion proof")
    _check_count(index, "the leaf index")
    _check_count(size, "the tree size")
    # RFC 9162 section 2.1.3.2, step by step.
    if index >= size:  # 1.
        raise ProofError(f"the leaf index {index} is not below the tree size {size}")
    fn, sn = index, size - 1  # 2.
    r = leaf  # 3.
    for p in path:  # 4.
        if sn == 0:
            raise ProofError("the inclusion proof has more hashes than the tree size allows")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:  # 5.
        raise ProofError("the inclusion proof has fewer hashes than the tree size needs")
    if r != root:
        raise ProofError("the inclusion proof does not lead to the root hash")


def verify_multi_inclusion(
    leaves: Sequence[bytes], indices: Sequence[int], size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that each of ``leaves`` (leaf *hashes*) is leaf ``indices[i]`` of the tree of ``size``
    leaves whose root hash is ``root``, by one proof for all of them (``indices`` strictly
    increasing). The proof is the RFC 9162 audit paths of those leaves with every hash the leaves
    themselves give left out and each one given once: walking RFC 9162's recursion MTH(D[start:end])
    from the whole tree down, a range holding none of the leaves takes the proof's next hash, a
    range of one leaf is that leaf, any other range splits at RFC 9162's k (left first). For one
    leaf the hashes are its RFC 9162 audit path, in the walk's order instead of bottom-up. Raises
    :class:`ProofError` when it does not hold."""
    _check_hash(root, "the root hash")
    _check_count(size, "the tree size")
    given = [_check_hash(leaf, f"leaf hash {i}") for i, leaf in enumerate(leaves)]
    path = _check_proof(proof, "the inclusion proof")
    if isinstance(indices, bytes | str) or len(indices) != len(given) or not given:
        raise ProofError("one leaf index per leaf hash, at least one, is needed")
    order = [_check_count(index, "a leaf index") for index in indices]
    if any(b <= a for a, b in itertools.pairwise(order)):
        raise ProofError("the leaf indices are not strictly increasing")
    if order[-1] >= size:
        raise ProofError(f"the leaf index {order[-1]} is not below the tree size {size}")
    hashes = iter(path)

    def mth(start: int, end: int, lo: int, hi: int) -> bytes:
        # order[lo:hi] are the given leaves within [start, end)
        if lo == hi:
            value = next(hashes, None)
            if value is None:
                raise ProofError("the inclusion proof has fewer hashes than the leaves and tree size need")
            return value
        if end - start == 1:
            return given[lo]
        k = 1 << ((end - start - 1).bit_length() - 1)
        mid = bisect.bisect_left(order, start + k, lo, hi)
        return node_hash(mth(start, start + k, lo, mid), mth(start + k, end, mid, hi))

    computed = mth(0, size, 0, len(order))
    if next(hashes, None) is not None:
        raise ProofError("the inclusion proof has more hashes than the leaves and tree size need")
    if computed != root:
        raise ProofError("the inclusion proof does not lead to the root hash")


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]) -> None:
    """Check that the tree of ``second`` leaves with root ``second_root`` extends the tree of
    ``first`` leaves with root ``first_root``, by the consistency proof ``proof`` (RFC 9162 section
    2.1.4.1). Raises :class:`ProofError` when it does not hold.

    Outside the RFC's ``0 < first < second``: equal sizes need an empty proof and equal roots; the
    empty tree (``first == 0``) needs an empty proof and the root ``SHA-256("")``, and is consistent
    with every tree (trusting a first tree head is then the caller's decision)."""
    _check_hash(first_root, "the first root hash")
    _check_hash(second_root, "the second root hash")
    path = _check_proof(proof, "the consistency proof")
    _check_count(first, "the first tree size")
    _check_count(second, "the second tree size")
    if first > second:
        raise ProofError(f"the first tree size {first} is larger than the second {second}")
    if first == 0 or second == 0:
        if first_root != EMPTY_ROOT or (second == 0 and second_root != EMPTY_ROOT):
            raise ProofError("the root hash of the empty tree is SHA-256 of the empty string")
        if path:
            raise ProofError("a consistency proof from the empty tree is empty")
        return
    if first == second:
        if path:
            raise ProofError("a consistency proof between equal tree sizes is empty")
        if first_root != second_root:
            raise ProofError("the two tree heads have the same size and different root hashes")
        return
    # RFC 9162 section 2.1.4.2, step by step (0 < first < second).
    if not path:  # 1.
        raise ProofError("the consistency proof is empty")
    if first & (first - 1) == 0:  # 2.
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1  # 3.
    while fn & 1:  # 4.
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # 5.
    for c in path[1:]:  # 6.
        if sn == 0:
            raise ProofError("the consistency proof has more hashes than the tree sizes allow")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:  # 7.
        raise ProofError("the consistency proof has fewer hashes than the tree sizes need")
    if fr != first_root:
        raise ProofError("the consistency proof does not lead to the first root hash")
    if sr != second_root:
        raise ProofError("the consistency proof does not lead to the second root hash")


# -- signed notes (c2sp.org/signed-note) -----------------------------------------------------------


def b64decode_strict(text: str, what: str) -> bytes:
    """Standard padded base64 (RFC 4648 section 4), canonical only: one text per byte string, no
    characters outside the alphabet. Raises :class:`MalformedNoteError` naming ``what``."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise MalformedNoteError(f"{what} is not base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise MalformedNoteError(f"{what} is not canonical base64")
    return raw


def valid_key_name(name: object) -> bool:
    """A signed-note key name: non-empty, no Unicode space, no ``+``."""
    return isinstance(name, str) and name != "" and "+" not in name and not any(c.isspace() for c in name)


def key_id(name: str, key: bytes) -> int:
    """The key ID signed-note recommends: the first 4 bytes, big-endian, of
    ``SHA-256(name || 0x0A || key)``, where ``key`` is the signature type byte followed by the
    public key (for Ed25519 ``0x01`` and the 32-byte public key)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8") + b"\n" + key).digest()[:4], "big")


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: the key name, the key ID, and the signature bytes after the ID."""

    name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        """The signature line, with its final newline."""
        blob = self.key_id.to_bytes(4, "big") + self.signature
        return f"{_EM_DASH_PREFIX}{self.name} {base64.b64encode(blob).decode('ascii')}\n"


@dataclass(frozen=True)
class Note:
    """A parsed (not yet verified) signed note: its text, final newline included, and signatures."""

    text: str
    signatures: tuple[NoteSignature, ...]


@dataclass(frozen=True)
class VerifiedNote:
    """A note with at least one valid trusted signature. ``verified``: the trusted keys' signatures
    (one per key); ``unverified``: the lines from keys the verifier was not given, ignored."""

    text: str
    verified: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...]


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted Ed25519 note key, from its verifier key string (:func:`parse_vkey`)."""

    name: str
    key_id: int
    public_key: bytes

    @property
    def vkey(self) -> str:
        """The verifier key string ``<name>+<key ID hex>+<base64(0x01 || public key)>``."""
        material = bytes([SIGNATURE_TYPE_ED25519]) + self.public_key
        return f"{self.name}+{self.key_id:08x}+{base64.b64encode(material).decode('ascii')}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True when ``signature`` is this key's Ed25519 signature of ``message``."""
        if len(signature) != 64:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


def split_vkey(vkey: str) -> tuple[str, int, bytes]:
    """Split a verifier key ``<name>+<8 lowercase hex key ID>+<base64(type byte || key)>`` into its
    name, key ID and key material (the signature type byte first), checking the key ID against
    the name and material (:func:`key_id`) but not the type. Raises :class:`MalformedNoteError`."""
    if not isinstance(vkey, str):
        raise MalformedNoteError("a verifier key is a string")
    parts = vkey.split("+", 2)  # the base64 part may hold '+' itself
    if len(parts) != 3:
        raise MalformedNoteError("a verifier key is <name>+<key ID>+<base64 key>")
    name, hex_id, b64 = parts
    if not valid_key_name(name):
        raise MalformedNoteError("the verifier key's name is empty or holds a space or '+'")
    if _KEY_ID_HEX.fullmatch(hex_id) is None:
        raise MalformedNoteError("the verifier key's key ID is not 8 lowercase hex digits")
    material = b64decode_strict(b64, "the verifier key's key")
    if not material:
        raise MalformedNoteError("the verifier key's key is empty")
    if key_id(name, material) != int(hex_id, 16):
        raise MalformedNoteError("the verifier key's key ID does not match its name and key")
    return name, int(hex_id, 16), material


def parse_vkey(vkey: str) -> NoteVerifier:
    """Parse a verifier key ``<name>+<8 lowercase hex key ID>+<base64(0x01 || 32-byte Ed25519 public
    key)>``; the key ID must be the one the name and key give. Raises :class:`MalformedNoteError`."""
    name, ident, material = split_vkey(vkey)
    if len(material) != 33 or material[0] != SIGNATURE_TYPE_ED25519:
        raise MalformedNoteError("the verifier key is not an Ed25519 note key (type 0x01, 32 bytes)")
    return NoteVerifier(name=name, key_id=ident, public_key=material[1:])


def parse_signature_lines(block: str) -> tuple[NoteSignature, ...]:
    """Parse signature lines ``— <key name> base64(key ID || signature)``, each ending with a
    newline (the part of a note after its blank line, or a witness's answer), checking the format
    only. Raises :class:`MalformedNoteError`."""
    if not isinstance(block, str) or not block:
        raise MalformedNoteError("there are no signature lines")
    if not block.endswith("\n"):
        raise MalformedNoteError("the last signature line does not end with a newline")
    if _CONTROL.search(block):
        raise MalformedNoteError("a signature line holds a control character other than newline (a CR, a tab...)")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNoteError(f"there are more than {MAX_SIGNATURES} signatures")
    signatures = []
    for number, line in enumerate(lines, 1):
        if not line.startswith(_EM_DASH_PREFIX):
            raise MalformedNoteError(f"signature line {number} does not start with an em dash (U+2014) and a space")
        name, space, b64 = line[len(_EM_DASH_PREFIX) :].partition(" ")
        if not space or not valid_key_name(name) or not b64:
            raise MalformedNoteError(f"signature line {number} is not '\u2014 <key name> <base64 signature>'")
        blob = b64decode_strict(b64, f"the signature on line {number}")
        if len(blob) < 5:
            raise MalformedNoteError(f"the signature on line {number} is shorter than a key ID and one byte")
        signatures.append(NoteSignature(name=name, key_id=int.from_bytes(blob[:4], "big"), signature=blob[4:]))
    return tuple(signatures)


def parse_note(note: str | bytes) -> Note:
    """Split a signed note into its text and signature lines, checking the format only (no
    signature is verified). Raises :class:`MalformedNoteError`."""
    if isinstance(note, bytes):
        if len(note) > MAX_NOTE_BYTES:
            raise MalformedNoteError(f"the note is larger than {MAX_NOTE_BYTES} bytes")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedNoteError("the note is not valid UTF-8") from None
    elif not isinstance(note, str):
        raise MalformedNoteError("a note is text (str or UTF-8 bytes)")
    else:
        try:
            if len(note.encode("utf-8")) > MAX_NOTE_BYTES:
                raise MalformedNoteError(f"the note is larger than {MAX_NOTE_BYTES} bytes")
        except UnicodeEncodeError:
            raise MalformedNoteError("the note is not valid UTF-8 (a lone surrogate)") from None
    if _CONTROL.search(note):
        raise MalformedNoteError("the note holds a control character other than newline (a CR, a tab...)")
    split = note.rfind("\n\n")
    if split < 0:
        raise MalformedNoteError("no blank line separates the note's text from its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise MalformedNoteError("the note has no signature lines")
    if not block.endswith("\n"):
        raise MalformedNoteError("the note's last signature line does not end with a newline")
    signatures = parse_signature_lines(block)
    return Note(text=text, signatures=signatures)


def verify_note(note: str | bytes, verifiers: Iterable[NoteVerifier]) -> VerifiedNote:
    """Verify a signed note against the trusted keys ``verifiers``: lines from other keys (another
    name or key ID) are ignored; every line from a trusted key must verify
    (:class:`InvalidSignatureError` otherwise), and at least one must be there
    (:class:`UnverifiedNoteError` otherwise). The text may be used only when this returns."""
    trusted: dict[tuple[str, int], NoteVerifier] = {}
    for verifier in verifiers:
        key = (verifier.name, verifier.key_id)
        if trusted.setdefault(key, verifier) != verifier:
            raise NoteError(f"two different trusted keys are named {verifier.name}+{verifier.key_id:08x}")
    if not trusted:
        raise NoteError("no trusted key was given to verify the note with")
    parsed = parse_note(note)
    message = parsed.text.encode("utf-8")
    verified: dict[tuple[str, int], NoteSignature] = {}
    unverified: list[NoteSignature] = []
    for sig in parsed.signatures:
        key = (sig.name, sig.key_id)
        known = trusted.get(key)
        if known is None:
            unverified.append(sig)
        elif not known.verify(message, sig.signature):
            raise InvalidSignatureError(f"the signature of the trusted key {sig.name}+{sig.key_id:08x} does not verify")
        else:
            verified.setdefault(key, sig)
    if not verified:
        raise UnverifiedNoteError("no trusted key signed the note")
    return VerifiedNote(text=parsed.text, verified=tuple(verified.values()), unverified=tuple(unverified))


# -- checkpoints (c2sp.org/tlog-checkpoint) --------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint's note text: origin, tree size, root hash and extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        """The note text: one line each for origin, size, base64 root hash and every extension."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode("ascii"), *self.extensions]
        return "".join(f"{line}\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint's note text (strictly: size in decimal without leading zeros, a 32-byte
    root, the empty tree's root for size 0, extension lines non-empty). Raises :class:`CheckpointError`."""
    if not isinstance(text, str) or not text.endswith("\n"):
        raise CheckpointError("a checkpoint text ends with a newline")
    origin, *rest = text[:-1].split("\n")
    if len(rest) < 2:
        raise CheckpointError("a checkpoint text has at least three lines: origin, tree size, root hash")
    size_line, root_line, *extensions = rest
    if not origin:
        raise CheckpointError("the checkpoint's origin line is empty")
    if _DECIMAL.fullmatch(size_line) is None:
        raise CheckpointError("the checkpoint's tree size is not a decimal number without leading zeros")
    size = int(size_line)
    if size > MAX_TREE_SIZE:
        raise CheckpointError("the checkpoint's tree size is larger than 2^63-1")
    try:
        root = b64decode_strict(root_line, "the checkpoint's root hash")
    except MalformedNoteError as err:
        raise CheckpointError(str(err)) from None
    if len(root) != HASH_SIZE:
        raise CheckpointError(f"the checkpoint's root hash is not {HASH_SIZE} bytes")
    if size == 0 and root != EMPTY_ROOT:
        raise CheckpointError("the checkpoint of the empty tree does not carry the empty tree's root hash")
    if any(not line for line in extensions):
        raise CheckpointError("a checkpoint extension line is empty")
    return Checkpoint(origin=origin, size=size, root_hash=root, extensions=tuple(extensions))


def verify_checkpoint(note: str | bytes, verifiers: Iterable[NoteVerifier], *, origin: str | None = None) -> Checkpoint:
    """Verify a signed checkpoint with the trusted keys ``verifiers`` (:func:`verify_note`) and
    parse its text (:func:`parse_checkpoint`); with ``origin``, the checkpoint must be that log's."""
    checkpoint = parse_checkpoint(verify_note(note, verifiers).text)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(f"the checkpoint is for the log {checkpoint.origin!r}, not {origin!r}")
    return checkpoint
