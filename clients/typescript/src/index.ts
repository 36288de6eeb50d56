export * from "./errors.js";
export { canonicalize, canonicalBytes, type JsonValue } from "./canonical.js";
export { entryHash, entryPreimage, entryFromJson, checkRecord, recordProblem, type Entry, type LedgerRecord } from "./entry.js";
export { leafHash, nodeHash, verifyInclusion, verifyMultiInclusion, verifyConsistency, ProofError, EMPTY_ROOT } from "./merkle.js";
export {
  keyId, parseVkey, parseNote, verifyNote, parseCheckpoint, verifyCheckpoint, NoteError,
  type Checkpoint, type NoteVerifier, type NoteSignature,
} from "./note.js";
export {
  MemoryTrustedState, LocalStorageTrustedState, TrustedLog, sizeOf,
  type TrustedStateStore, type KeyValueStorage, type ConsistencyFetch,
} from "./trusted.js";
export {
  createClient, NucleusClient, MAX_PROOF_BATCH, DEFAULT_CHECKPOINT_WAIT,
  type ClientOptions, type QueryFilters, type QueryPage, type VerificationReport,
} from "./client.js";
export { bytesToHex, hexToBytes } from "./bytes.js";
export { CosignaturePolicy, parseCosignatureVkey, countCosignatures, type CosignatureVerifier } from "./cosignature.js";
export {
  ModuleRuntime, ModuleHandle, ProofHandle, AssetHandle, ConnectGrantHandle, TokenHandle, ProofStatus,
  type GenericHandle, type GetModuleOptions, type ModuleInfo, type OperationInfo, type ParamInfo, type JsonSchema,
  type ProofInfo, type AssetInfo, type GrantInfo, type TokenInfo, type HandleArgument,
  type HandleTransport,
} from "./handles.js";
