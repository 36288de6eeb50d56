"""Signed checkpoints: C2SP tlog-checkpoint texts in C2SP signed notes, signed with Ed25519.

A checkpoint is the note text ``<origin>\\n<tree size>\\n<base64 root hash>\\n`` (no extension
lines: c2sp.org/tlog-checkpoint calls them NOT RECOMMENDED, and cosignatures of some kinds do not
cover them), followed by a blank line and one signature line per signer::

    — <key name> base64(key ID || Ed25519 signature of the text)

Key strings are those of Go's ``golang.org/x/mod/sumdb/note``, which the transparency tools in use
(witnesses, ``litetlog``, Tessera, Sunlight) read:

- verifier key, published: ``<name>+<key ID hex>+<base64(0x01 || 32-byte public key)>``;
- signer key, secret: ``PRIVATE+KEY+<name>+<key ID hex>+<base64(0x01 || 32-byte Ed25519 seed)>``.

A witness's key (:class:`CosignatureSigner`, c2sp.org/tlog-cosignature) is written the same way
with the signature type ``0x04`` in place of ``0x01``, as transparency-dev/formats reads cosigner
keys; its verifier key is then the one a log and its clients trust the witness by.

C2SP defines no signer key format; this is Go's. A signer key is read from a file or an
environment variable (:func:`load_signer`, :func:`read_key_file`; :func:`write_key_file` writes a
new one, private to its owner), never from the ledger's database, and no error
message or ``repr`` shows it. Several signers sign one note (:func:`sign_note`): a verifier
ignores the keys it does not know, so keys rotate without a flag day.

The origin names the log. :func:`default_origin` derives one from the ledger id; a ledger that is
published (witnessed, served as tiles) should be configured with its public URL prefix without
the scheme instead, as c2sp.org/tlog-tiles recommends. The log's key name is its origin.
Verification is :mod:`nucleus_core.tlog_verify`'s, which needs no other part of Nucleus.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import stat
from collections.abc import Iterable, Mapping
from typing import ClassVar, Self, TypeVar

import attrs
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .cosignature import SIGNATURE_TYPE_COSIGNATURE_V1, Cosignature, CosignatureVerifier, cosignature_message
from .errors import ConfigurationError, ValidationError
from .hashing import validate_ledger_id
from .tlog_verify import (
    SIGNATURE_TYPE_ED25519,
    Checkpoint,
    MalformedNoteError,
    NoteSignature,
    NoteVerifier,
    VerificationError,
    b64decode_strict,
    key_id,
    parse_checkpoint,
    parse_note,
    valid_key_name,
)

__all__ = [
    "DEFAULT_ORIGIN_HOST", "SIGNER_KEY_PREFIX", "CosignatureSigner", "NoteSigner", "checkpoint_text", "default_origin",
    "load_signer", "read_key_file", "read_signer_key_file", "sign_checkpoint", "sign_note", "signers_from_text",
    "validate_origin", "write_key_file",
]

SIGNER_KEY_PREFIX = "PRIVATE+KEY+"
"""How a signer key string starts (Go's ``note`` package)."""

DEFAULT_ORIGIN_HOST = "nucleus.invalid"
"""The host part of :func:`default_origin`: under ``.invalid`` (RFC 6761), a name that can never be
a real host, so that a default origin is never mistaken for a reachable URL."""

_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")


def default_origin(ledger_id: str) -> str:
    """The origin of a ledger's checkpoints unless configured: ``nucleus.invalid/<ledger id>``.

    It has the shape c2sp.org/tlog-checkpoint recommends (a scheme-less URL without spaces or
    ``+``; a ledger id has neither), so it can be the key name too, and it names the ledger, since
    the ledger id is part of every entry hash. It does not tell two deployments of one ledger id
    apart: a ledger that is witnessed or published should configure its own origin."""
    return f"{DEFAULT_ORIGIN_HOST}/{validate_ledger_id(ledger_id)}"


def validate_origin(origin: object) -> str:
    """Return ``origin`` if this ledger may sign checkpoints with it: a non-empty line without
    Unicode spaces, ``+`` or control characters (so that it can be its key's name as well)."""
    if not valid_key_name(origin) or any(ord(c) < 0x20 or ord(c) == 0x7F for c in str(origin)):
        raise ValidationError(
            "a checkpoint origin is non-empty, without spaces, '+' or control characters "
            "(a scheme-less URL such as example.com/log)",
            field="origin",
        )
    assert isinstance(origin, str)
    return origin


@attrs.frozen(repr=False)
class _Ed25519Key:
    """An Ed25519 key of one signed-note signature type with its key name, written as Go's signer
    key string. The seed never appears in ``repr``, ``str`` or an error message; :attr:`skey` is
    the one way to get it back out."""

    SIGNATURE_TYPE: ClassVar[int]
    """The signature type byte in the key ID, the verifier key and the signer key."""
    KIND: ClassVar[str]
    """What the key signs, in error messages."""

    name: str = attrs.field()
    _seed: bytes = attrs.field(alias="seed")
    _private: Ed25519PrivateKey = attrs.field(init=False, eq=False)
    public_key: bytes = attrs.field(init=False)

    @name.validator
    def _check_name(self, _attribute: object, value: object) -> None:
        if not valid_key_name(value):
            raise ValidationError("a note key name is non-empty, without spaces or '+'", field="name")

    @_private.default
    def _load_private(self) -> Ed25519PrivateKey:
        if not isinstance(self._seed, bytes) or len(self._seed) != 32:
            raise ValidationError("an Ed25519 seed is 32 bytes", field="seed")
        return Ed25519PrivateKey.from_private_bytes(self._seed)

    @public_key.default
    def _derive_public(self) -> bytes:
        return self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, key_id={self.key_id:08x})"

    @classmethod
    def generate(cls, name: str) -> Self:
        """A new random key named ``name``."""
        return cls(name=name, seed=os.urandom(32))

    @classmethod
    def from_skey(cls, skey: str) -> Self:
        """Parse a signer key ``PRIVATE+KEY+<name>+<key ID hex>+<base64(type byte || seed)>`` of this
        key's signature type; the key ID must be that of the public key. Raises
        :class:`ValidationError` (without the key in it)."""
        if not isinstance(skey, str) or not skey.startswith(SIGNER_KEY_PREFIX):
            raise ValidationError(f"a signer key starts with {SIGNER_KEY_PREFIX}", field="signer key")
        parts = skey[len(SIGNER_KEY_PREFIX) :].split("+", 2)  # the base64 part may hold '+'
        if len(parts) != 3:
            raise ValidationError(
                f"a signer key is {SIGNER_KEY_PREFIX}<name>+<key ID>+<base64 key>", field="signer key"
            )
        name, hex_id, b64 = parts
        if not valid_key_name(name):
            raise ValidationError("the signer key's name is empty or holds a space or '+'", field="signer key")
        if _KEY_ID_HEX.fullmatch(hex_id) is None:
            raise ValidationError("the signer key's key ID is not 8 lowercase hex digits", field="signer key")
        try:
            material = b64decode_strict(b64, "the signer key's key")
        except MalformedNoteError as err:
            raise ValidationError(str(err), field="signer key") from None
        if len(material) != 33 or material[0] != cls.SIGNATURE_TYPE:
            raise ValidationError(
                f"the signer key is not an Ed25519 {cls.KIND} key (type 0x{cls.SIGNATURE_TYPE:02x}, 32-byte seed)",
                field="signer key",
            )
        signer = cls(name=name, seed=material[1:])
        if signer.key_id != int(hex_id, 16):
            raise ValidationError("the signer key's key ID does not match its name and key", field="signer key")
        return signer

    @property
    def key_id(self) -> int:
        """The signed-note key ID: ``SHA-256(name || 0x0A || type byte || public key)[:4]``, big-endian."""
        return key_id(self.name, bytes([self.SIGNATURE_TYPE]) + self.public_key)

    @property
    def vkey(self) -> str:
        """The verifier key string to publish: ``<name>+<key ID hex>+<base64(type byte || public key)>``."""
        material = bytes([self.SIGNATURE_TYPE]) + self.public_key
        return f"{self.name}+{self.key_id:08x}+{base64.b64encode(material).decode('ascii')}"

    @property
    def skey(self) -> str:
        """The signer key string (secret: store it in a file or an environment variable)."""
        material = bytes([self.SIGNATURE_TYPE]) + self._seed
        return f"{SIGNER_KEY_PREFIX}{self.name}+{self.key_id:08x}+{base64.b64encode(material).decode('ascii')}"


@attrs.frozen(repr=False)
class NoteSigner(_Ed25519Key):
    """An Ed25519 note signing key (signature type ``0x01``) with its key name: a log's checkpoint key."""

    SIGNATURE_TYPE: ClassVar[int] = SIGNATURE_TYPE_ED25519
    KIND: ClassVar[str] = "note"

    @property
    def verifier(self) -> NoteVerifier:
        """The matching verifier (what a client is configured with)."""
        return NoteVerifier(name=self.name, key_id=self.key_id, public_key=self.public_key)

    def sign(self, text: str) -> NoteSignature:
        """This key's signature of the note text ``text`` (Ed25519 over its UTF-8 bytes)."""
        return NoteSignature(name=self.name, key_id=self.key_id, signature=self._private.sign(text.encode("utf-8")))


@attrs.frozen(repr=False)
class CosignatureSigner(_Ed25519Key):
    """A witness's Ed25519 cosignature key (signature type ``0x04``, c2sp.org/tlog-cosignature) with
    its key name, the witness's name. Its signer key string is Go's with the type byte ``0x04``, as
    transparency-dev/formats reads cosigner keys; C2SP defines no signer key format."""

    SIGNATURE_TYPE: ClassVar[int] = SIGNATURE_TYPE_COSIGNATURE_V1
    KIND: ClassVar[str] = "cosignature"

    @property
    def verifier(self) -> CosignatureVerifier:
        """The matching verifier (what a log and its clients are configured with)."""
        return CosignatureVerifier(name=self.name, key_id=self.key_id, public_key=self.public_key)

    def cosign(self, checkpoint_text: str, timestamp: int) -> Cosignature:
        """This key's ``cosignature/v1`` of the checkpoint note text ``checkpoint_text`` at
        ``timestamp`` (POSIX seconds): :meth:`Cosignature.line` is the line to answer with."""
        try:
            message = cosignature_message(checkpoint_text, timestamp)
        except VerificationError as err:
            raise ValidationError(str(err), field="checkpoint") from None
        return Cosignature(
            name=self.name, key_id=self.key_id, timestamp=timestamp, signature=self._private.sign(message)
        )


_KeyT = TypeVar("_KeyT", bound=_Ed25519Key)


def sign_note(text: str, signers: Iterable[NoteSigner]) -> str:
    """The signed note of ``text`` (which ends with a newline) by every one of ``signers``, in
    their order. Two signers with one name and key ID are refused (a verifier could not tell them
    apart)."""
    signers = list(signers)
    if not signers:
        raise ValidationError("a note needs at least one signer", field="signers")
    seen = set()
    for signer in signers:
        key = (signer.name, signer.key_id)
        if key in seen:
            raise ValidationError(f"two signers are named {signer.name}+{signer.key_id:08x}", field="signers")
        seen.add(key)
    if not isinstance(text, str) or not text.endswith("\n"):
        raise ValidationError("a note text ends with a newline", field="text")
    note = text + "\n" + "".join(signer.sign(text).line() for signer in signers)
    try:
        parse_note(note)  # the text is valid UTF-8 without control characters (the split is always right)
    except VerificationError as err:
        raise ValidationError(str(err), field="text") from None
    return note


def checkpoint_text(origin: str, size: int, root_hash: bytes) -> str:
    """The checkpoint note text of the tree of ``size`` leaves with ``root_hash``, for ``origin``."""
    text = Checkpoint(origin=validate_origin(origin), size=size, root_hash=root_hash).text()
    try:
        parse_checkpoint(text)
    except VerificationError as err:
        raise ValidationError(str(err), field="checkpoint") from None
    return text


def sign_checkpoint(origin: str, size: int, root_hash: bytes, signers: Iterable[NoteSigner]) -> str:
    """The signed checkpoint note for the tree of ``size`` leaves with ``root_hash``."""
    return sign_note(checkpoint_text(origin, size, root_hash), signers)


def _insecure_mode(mode: int) -> bool:
    """Whether a key file's mode lets anyone but its owner read or write it (POSIX only: elsewhere
    the bits do not say who may read the file)."""
    return os.name == "posix" and bool(mode & 0o077)


def read_key_file(path: str | os.PathLike[str], *, insecure_permissions: bool = False) -> NoteSigner:
    """The note signer key in the file ``path``: :func:`read_signer_key_file` with :class:`NoteSigner`."""
    return read_signer_key_file(path, NoteSigner, insecure_permissions=insecure_permissions)


def read_signer_key_file(
    path: str | os.PathLike[str], kind: type[_KeyT], *, insecure_permissions: bool = False
) -> _KeyT:
    """The signer key in the file ``path`` (one key; surrounding whitespace, such as the final
    newline, is ignored). Like ssh with a private key, a file that its group or others may read or
    write is refused on POSIX unless ``insecure_permissions``; the mode is that of the file opened
    (a symbolic link, as Kubernetes mounts secrets, is followed). Raises
    :class:`ConfigurationError` naming the file, never the key."""
    where = f"signer key file {os.fspath(path)!r}"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise ConfigurationError(f"{where}: cannot be read ({type(err).__name__})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ConfigurationError(f"{where}: not a regular file")
    with os.fdopen(fd, "rb") as handle:
        if _insecure_mode(info.st_mode) and not insecure_permissions:
            raise ConfigurationError(
                f"{where}: its permissions {stat.S_IMODE(info.st_mode):04o} let others than its owner read or "
                "write it; make it private (chmod 600), or accept that explicitly (insecure_key_permissions)"
            )
        try:
            text = handle.read(64 * 1024).decode("utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigurationError(f"{where}: cannot be read ({type(err).__name__})") from None
    try:
        return kind.from_skey(text.strip())
    except ValidationError as err:
        raise ConfigurationError(f"{where}: {err}") from None


def write_key_file(path: str | os.PathLike[str], signer: NoteSigner | CosignatureSigner) -> None:
    """Write ``signer``'s key string to a new file ``path``, readable and writable by its owner only
    (mode 0600 from its creation: there is no moment when others may read it). An existing file,
    or a dangling symbolic link, is never overwritten: :class:`ConfigurationError`."""
    where = f"signer key file {os.fspath(path)!r}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise ConfigurationError(f"{where}: already exists; refusing to overwrite a key") from None
    except OSError as err:
        raise ConfigurationError(f"{where}: cannot be created ({type(err).__name__})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            if os.name == "posix":
                os.fchmod(handle.fileno(), 0o600)  # the umask may have taken bits away, never added any
            handle.write(signer.skey + "\n")
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise ConfigurationError(f"{where}: cannot be written ({type(err).__name__})") from None


def signers_from_text(text: str, where: str) -> list[NoteSigner]:
    """The signer keys in ``text``, one per line (blank lines ignored): the value of an environment
    variable holding several keys. Errors name ``where`` and the line, never the key."""
    signers = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            signers.append(NoteSigner.from_skey(line.strip()))
        except ValidationError as err:
            raise ConfigurationError(f"{where}, line {number}: {err}") from None
    if not signers:
        raise ConfigurationError(f"{where}: holds no signer key")
    return signers


def load_signer(
    *,
    path: str | os.PathLike[str] | None = None,
    env: str | None = None,
    environ: Mapping[str, str] | None = None,
    insecure_permissions: bool = False,
) -> NoteSigner:
    """Read a signer key (:meth:`NoteSigner.from_skey`) from the file ``path``
    (:func:`read_key_file`, which refuses a file others may read unless ``insecure_permissions``)
    or from the environment variable ``env`` (exactly one of the two; surrounding whitespace, such
    as the file's final newline, is ignored). Raises :class:`ConfigurationError` naming the file or
    the variable, never the key."""
    if (path is None) == (env is None):
        raise ConfigurationError("a signer key comes from a file or from an environment variable (one of the two)")
    if path is not None:
        return read_key_file(path, insecure_permissions=insecure_permissions)
    assert env is not None
    where = f"signer key variable {env}"
    value = (os.environ if environ is None else environ).get(env)
    if value is None:
        raise ConfigurationError(f"{where}: not set")
    try:
        return NoteSigner.from_skey(value.strip())
    except ValidationError as err:
        raise ConfigurationError(f"{where}: {err}") from None
