"""The Nucleus error tree.

Every error raised by Nucleus or a well-behaved plugin derives from :class:`NucleusError`.
Each class carries a stable machine-readable ``code`` (used by the HTTP server and the CLI's
``--json`` output) so callers never have to match on message text. Messages never contain
secrets (tokens, key material, session ids).
"""

from __future__ import annotations

from typing import ClassVar


def prefixed(prefix: str, message: str) -> str:
    """``message`` behind ``prefix: ``, once: a message that already starts with that prefix (an
    error re-raised by a caller naming the same place) is returned as it is. Every error that names
    where it happened (a field, a plugin, a module, a CLI input) builds its text with this."""
    return message if message.startswith(f"{prefix}: ") else f"{prefix}: {message}"


class NucleusError(Exception):
    """Root of every Nucleus error."""

    code: ClassVar[str] = "nucleus_error"


class ConfigurationError(NucleusError):
    """The ledger or a plugin was configured wrongly (bad URL, unknown option, bad path...)."""

    code = "configuration_error"


class LedgerNotFoundError(ConfigurationError):
    """Opening an existing ledger (a read, :func:`~nucleus_core.open_ledger`) found no such ledger:
    the storage does not exist or holds other ledgers only. ``ledger_ids``: the ids it holds."""

    code = "ledger_not_found"

    def __init__(
        self, ledger_id: str, ledger_ids: tuple[str, ...] | list[str] = (), *, where: str, detail: str | None = None
    ) -> None:
        if detail is not None:
            held = detail
        elif ledger_ids:
            held = f"it holds the ledger(s) {', '.join(repr(i) for i in ledger_ids)}"
        else:
            held = "it holds no ledger"
        super().__init__(
            f"no ledger {ledger_id!r} in {where}: {held}; create one with 'nucleus init' or "
            "create_ledger(), or name an existing one (--ledger-id)"
        )
        self.ledger_id = ledger_id
        self.ledger_ids = tuple(ledger_ids)


class NotFoundError(NucleusError):
    """What was asked for does not exist, or is not visible to the requester: an HTTP route, an
    entry, a record, a module, a checkpoint at a size none was issued at."""

    code = "not_found"


class PluginError(NucleusError):
    """A plugin could not be found, imported or validated."""

    code = "plugin_error"

    def __init__(self, message: str, *, plugin_name: str, distribution: str | None = None) -> None:
        dist = f" (distribution {distribution})" if distribution else ""
        super().__init__(prefixed(f"plugin {plugin_name!r}{dist}", message))
        self.plugin_name = plugin_name
        self.distribution = distribution


class ValidationError(NucleusError, ValueError):
    """An input value is not acceptable. ``field`` names the offending field."""

    code = "validation_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(prefixed(field, message) if field else message)
        self.field = field


class RecordValidationError(ValidationError):
    """A record (id, stream, timestamp, payload or meta) is not acceptable."""

    code = "invalid_record"


class RecordTooLargeError(RecordValidationError):
    """A record's canonical encoding is larger than the ledger allows."""

    code = "record_too_large"


class QueryError(ValidationError):
    """A query's filters, limit or cursor are not acceptable."""

    code = "invalid_query"


class StorageError(NucleusError):
    """The storage backend failed."""

    code = "storage_error"


class StorageUnavailableError(StorageError):
    """The storage backend cannot be reached (server down, file not openable)."""

    code = "storage_unavailable"


class IntegrityError(StorageError):
    """Stored history does not verify. ``seq`` is the first bad sequence number."""

    code = "integrity_error"

    def __init__(self, message: str, *, seq: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.seq = seq
        self.reason = reason or message


class CheckpointRefusedError(IntegrityError):
    """A signed checkpoint given to check a ledger against does not verify: it is malformed, no
    trusted key signed it, a trusted key's signature fails, or it is another log's (origin). Nothing
    is known about the ledger from it."""

    code = "checkpoint_refused"


class CheckpointMismatchError(IntegrityError):
    """The ledger, or an entry with its inclusion proof, does not match a verified checkpoint: fewer
    entries than it covers, another root at its size, a consistency or inclusion proof that fails,
    or a checkpoint of the ledger's own that contradicts it. ``seq`` is the first entry concerned
    when one is known."""

    code = "checkpoint_mismatch"


class ConflictError(StorageError):
    """A write conflicted with another writer or with existing data."""

    code = "conflict"


class DuplicateRecordError(ConflictError):
    """A record id already exists in the ledger (ids are unique and never overwritten)."""

    code = "duplicate_record"

    def __init__(self, record_id: str) -> None:
        super().__init__(f"record id {record_id!r} already exists in this ledger")
        self.record_id = record_id


class ReadOnlyLedgerError(StorageError):
    """A write was attempted on a ledger opened read-only (for example without verification)."""

    code = "read_only"


class LedgerClosedError(NucleusError):
    """The ledger was used after ``close()``."""

    code = "ledger_closed"


class AuthenticationError(NucleusError):
    """Who is asking could not be established."""

    code = "unauthenticated"


class MissingRequesterError(AuthenticationError):
    """A read or write did not name its requester (no context, or an empty principal)."""

    code = "missing_requester"


class TokenInvalidError(AuthenticationError):
    """A token is of a parser's kind but is not valid. The message never contains the token."""

    code = "invalid_token"


class TokenExpiredError(TokenInvalidError):
    """A token is of a parser's kind, was valid, and has expired."""

    code = "token_expired"


class AuthorizationError(NucleusError):
    """The requester is known but not allowed to do this."""

    code = "forbidden"


class AccessDeniedError(AuthorizationError):
    """Access control refused an action on a resource."""

    code = "access_denied"


class InsufficientScopeError(AuthorizationError):
    """The requester's credential does not carry the scope the operation needs (an API key created
    with ``--scope read`` appending, for example). ``scope`` names the missing scope."""

    code = "insufficient_scope"

    def __init__(self, message: str, *, scope: str) -> None:
        super().__init__(message)
        self.scope = scope


class ModuleError(NucleusError):
    """A module failed in a lifecycle hook or refused a record. ``module_id`` names it."""

    code = "module_error"

    def __init__(self, message: str, *, module_id: str) -> None:
        super().__init__(prefixed(f"module {module_id!r}", message))
        self.module_id = module_id


class RecordRejectedError(ModuleError, ValidationError):
    """A module refused a record in one of its streams; nothing was written. ``record_id`` and
    ``field`` (the payload field at fault) are given when known; a ``field`` is named in the message."""

    code = "record_rejected"

    def __init__(
        self, message: str, *, module_id: str, record_id: str | None = None, field: str | None = None
    ) -> None:
        ModuleError.__init__(self, prefixed(field, message) if field else message, module_id=module_id)
        self.field = field
        self.record_id = record_id


class LogVerificationError(IntegrityError):
    """What a ledger server presented does not verify against the verifier keys and the trusted
    state of a verifying client (:class:`~nucleus_server.client.RemoteLedger` given keys,
    docs/TRANSPARENCY.md "Verifying clients"): the server, or something between it and the
    client, is not showing the history the client trusts. Nothing it sent was returned or trusted."""

    code = "log_verification_failed"


class CheckpointSignatureError(LogVerificationError):
    """A checkpoint is not signed by a trusted key (a trusted key's signature fails, or none is
    there), is malformed, or is the checkpoint of another log (origin) than the one expected."""

    code = "checkpoint_signature_invalid"


class InconsistentLogError(LogVerificationError):
    """A validly signed checkpoint does not extend the trusted one: a newer one whose consistency
    proof fails, or one of the same size with another root hash. The log forked or was rewritten,
    or the server shows different histories to different clients (a split view)."""

    code = "log_inconsistent"


class RollbackError(LogVerificationError):
    """The server presented a smaller tree than the client already trusts (an older copy of the
    ledger, or entries removed). ``trusted_size`` and ``presented_size`` are both in the message."""

    code = "log_rollback"

    def __init__(
        self,
        message: str,
        *,
        trusted_size: int | None = None,
        presented_size: int | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason or "rollback")
        self.trusted_size = trusted_size
        self.presented_size = presented_size


class InclusionProofError(LogVerificationError):
    """An entry the server returned is not proven to be in the trusted tree: its inclusion proof
    fails, is for another leaf or tree, or the server gave none. ``seq`` is the entry's."""

    code = "inclusion_proof_invalid"


class EntryContentError(LogVerificationError):
    """An entry given to a verifying client (or sent by the server) does not hash to its own
    ``hash``: its record, seq, previous hash or appender fields were changed while the hash was
    kept, its record is not its canonical form, or its derived columns differ from the record.
    ``seq`` is the entry's."""

    code = "entry_content_invalid"


class AnswerMismatchError(LogVerificationError):
    """The server answered something other than what was asked, in a way the client can check
    locally: a query page holding entries outside the filters asked for (another stream or record
    id, a seq before the cursor), a cursor that does not move past its page, a checkpoint of
    another size than the one asked for."""

    code = "answer_mismatch"


class WitnessPolicyError(LogVerificationError):
    """A checkpoint does not carry the valid witness cosignatures the client's policy requires
    (k of its n witnesses)."""

    code = "witness_policy_unmet"


class TrustedStateError(StorageError):
    """A verifying client's trusted state (the last verified checkpoint, in a file or a store)
    cannot be read or written, or holds something that is not a valid checkpoint of the expected
    log. It is never reset silently: restore it, or remove it knowingly (the next checkpoint is then
    trusted on its signature alone)."""

    code = "trusted_state_error"
