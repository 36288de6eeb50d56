/**
 * Error classes named as the Python ones (nucleus_core.errors, nucleus_server.errors), each with
 * the server's error `code`. A server error document `{"error": {"code", "message", ...}}` is
 * rebuilt into the class of its code ({@link rebuildError}), so `catch (e) { if (e instanceof
 * DuplicateRecordError) ... }` works as it does against the Python client.
 */

export interface ErrorDetails {
  field?: string | undefined;
  seq?: number | undefined;
  reason?: string | undefined;
  recordId?: string | undefined;
  moduleId?: string | undefined;
  trustedSize?: number | undefined;
  presentedSize?: number | undefined;
  status?: number | undefined;
}

export class NucleusError extends Error {
  static readonly code: string = "nucleus_error";
  readonly code: string;
  readonly field: string | undefined;
  readonly seq: number | undefined;
  readonly reason: string | undefined;
  readonly recordId: string | undefined;
  readonly moduleId: string | undefined;
  readonly trustedSize: number | undefined;
  readonly presentedSize: number | undefined;
  /** The HTTP status of the response this error was rebuilt from, if any. */
  readonly status: number | undefined;

  constructor(message: string, details: ErrorDetails = {}) {
    super(message);
    this.name = new.target.name;
    this.code = (new.target as unknown as { code: string }).code;
    this.field = details.field;
    this.seq = details.seq;
    this.reason = details.reason;
    this.recordId = details.recordId;
    this.moduleId = details.moduleId;
    this.trustedSize = details.trustedSize;
    this.presentedSize = details.presentedSize;
    this.status = details.status;
  }
}

export class ConfigurationError extends NucleusError { static override readonly code: string = "configuration_error"; }
export class LedgerNotFoundError extends ConfigurationError { static override readonly code: string = "ledger_not_found"; }
export class NotFoundError extends NucleusError { static override readonly code: string = "not_found"; }
export class PluginError extends NucleusError { static override readonly code: string = "plugin_error"; }
export class ValidationError extends NucleusError { static override readonly code: string = "validation_error"; }
export class RecordValidationError extends ValidationError { static override readonly code: string = "invalid_record"; }
export class RecordTooLargeError extends RecordValidationError { static override readonly code: string = "record_too_large"; }
export class QueryError extends ValidationError { static override readonly code: string = "invalid_query"; }
export class MalformedRequestError extends ValidationError { static override readonly code: string = "malformed_request"; }
export class RequestTooLargeError extends ValidationError { static override readonly code: string = "request_too_large"; }
export class StorageError extends NucleusError { static override readonly code: string = "storage_error"; }
export class StorageUnavailableError extends StorageError { static override readonly code: string = "storage_unavailable"; }
export class IntegrityError extends StorageError { static override readonly code: string = "integrity_error"; }
export class CheckpointRefusedError extends IntegrityError { static override readonly code: string = "checkpoint_refused"; }
export class CheckpointMismatchError extends IntegrityError { static override readonly code: string = "checkpoint_mismatch"; }
export class ConflictError extends StorageError { static override readonly code: string = "conflict"; }
export class DuplicateRecordError extends ConflictError { static override readonly code: string = "duplicate_record"; }
export class ReadOnlyLedgerError extends StorageError { static override readonly code: string = "read_only"; }
export class TrustedStateError extends StorageError { static override readonly code: string = "trusted_state_error"; }
export class LedgerClosedError extends NucleusError { static override readonly code: string = "ledger_closed"; }
export class MethodNotAllowedError extends NucleusError { static override readonly code: string = "method_not_allowed"; }
export class AuthenticationError extends NucleusError { static override readonly code: string = "unauthenticated"; }
export class MissingRequesterError extends AuthenticationError { static override readonly code: string = "missing_requester"; }
export class TokenInvalidError extends AuthenticationError { static override readonly code: string = "invalid_token"; }
export class TokenExpiredError extends TokenInvalidError { static override readonly code: string = "token_expired"; }
export class AuthorizationError extends NucleusError { static override readonly code: string = "forbidden"; }
export class AccessDeniedError extends AuthorizationError { static override readonly code: string = "access_denied"; }
export class InsufficientScopeError extends AuthorizationError { static override readonly code: string = "insufficient_scope"; }
export class ModuleError extends NucleusError { static override readonly code: string = "module_error"; }
export class RecordRejectedError extends ModuleError { static override readonly code: string = "record_rejected"; }

/** What a verifying client was told does not verify (an IntegrityError, as in Python). */
export class LogVerificationError extends IntegrityError { static override readonly code: string = "log_verification_failed"; }
export class CheckpointSignatureError extends LogVerificationError { static override readonly code: string = "checkpoint_signature_invalid"; }
export class InconsistentLogError extends LogVerificationError { static override readonly code: string = "log_inconsistent"; }
export class RollbackError extends LogVerificationError { static override readonly code: string = "log_rollback"; }
export class InclusionProofError extends LogVerificationError { static override readonly code: string = "inclusion_proof_invalid"; }
export class EntryContentError extends LogVerificationError { static override readonly code: string = "entry_content_invalid"; }
export class AnswerMismatchError extends LogVerificationError { static override readonly code: string = "answer_mismatch"; }
export class WitnessPolicyError extends LogVerificationError { static override readonly code: string = "witness_policy_unmet"; }

type ErrorClass = (new (message: string, details?: ErrorDetails) => NucleusError) & { readonly code: string };

const CLASSES: readonly ErrorClass[] = [
  NucleusError, ConfigurationError, LedgerNotFoundError, NotFoundError, PluginError, ValidationError,
  RecordValidationError, RecordTooLargeError, QueryError, MalformedRequestError, RequestTooLargeError, StorageError,
  StorageUnavailableError, IntegrityError, CheckpointRefusedError, CheckpointMismatchError, ConflictError,
  DuplicateRecordError, ReadOnlyLedgerError, TrustedStateError, LedgerClosedError, MethodNotAllowedError,
  AuthenticationError, MissingRequesterError, TokenInvalidError, TokenExpiredError, AuthorizationError,
  AccessDeniedError, InsufficientScopeError, ModuleError, RecordRejectedError, LogVerificationError,
  CheckpointSignatureError, InconsistentLogError, RollbackError, InclusionProofError, EntryContentError,
  AnswerMismatchError, WitnessPolicyError,
];

const BY_CODE = new Map<string, ErrorClass>(CLASSES.map((cls) => [cls.code, cls]));

/** The error class of a server error code; NucleusError for a code this client does not know. */
export function errorClass(code: string): ErrorClass {
  return BY_CODE.get(code) ?? NucleusError;
}

function str(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function int(value: unknown): number | undefined {
  return typeof value === "number" && Number.isInteger(value) ? value : undefined;
}

/** The error a server response describes (`document` is its parsed body, or undefined). */
export function rebuildError(document: unknown, status: number): NucleusError {
  const error = typeof document === "object" && document !== null ? (document as { error?: unknown }).error : undefined;
  if (typeof error !== "object" || error === null || typeof (error as { code?: unknown }).code !== "string") {
    const message = `the server answered ${status} without an error document`;
    return status === 503 ? new StorageUnavailableError(message, { status }) : new NucleusError(message, { status });
  }
  const doc = error as Record<string, unknown>;
  const code = doc["code"] as string;
  const message = str(doc["message"]) ?? code;
  const cls = errorClass(code);
  const reason = str(doc["reason"]);
  const rebuilt = new cls(message, {
    field: str(doc["field"]), seq: int(doc["seq"]),
    reason: reason === undefined && (cls === IntegrityError || cls.prototype instanceof IntegrityError) ? message : reason,
    recordId: str(doc["record_id"]), moduleId: str(doc["module_id"]),
    trustedSize: int(doc["trusted_size"]), presentedSize: int(doc["presented_size"]), status,
  });
  return rebuilt;
}
