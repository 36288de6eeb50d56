/**
 * `createClient`: a Nucleus ledger server used from TypeScript (Node 18+ and browsers; `fetch`
 * only). Every entry received is rebuilt and its hash recomputed (docs/FORMAT.md). Given the
 * ledger's checkpoint verifier keys (`verifierKeys`, obtained from the operator, not from the
 * server) the client trusts the math, not the server, as the Python RemoteLedger does: it keeps
 * the last checkpoint it verified in `trustedState`, accepts a checkpoint only when a trusted key
 * signed it for the expected origin and it extends the trusted one (a consistency proof), and
 * returns an entry only with an inclusion proof in a trusted checkpoint (a query page's proof
 * comes with the page; other reads fetch the proofs in one `POST /proof/inclusion`). It throws
 * CheckpointSignatureError, InconsistentLogError, RollbackError, InclusionProofError,
 * EntryContentError or AnswerMismatchError (all LogVerificationError) and never returns what it
 * could not verify.
 */

import { hexToBytes, isHash, equalBytes } from "./bytes.js";
import { canonicalBytes } from "./canonical.js";
import {
  AnswerMismatchError, ConfigurationError, InclusionProofError, InconsistentLogError, LogVerificationError,
  NotFoundError, NucleusError, QueryError, StorageUnavailableError, ValidationError, CheckpointSignatureError,
  WitnessPolicyError, rebuildError,
} from "./errors.js";
import { checkRecord, entryFromJson, type Entry, type LedgerRecord } from "./entry.js";
import { leafHash, ProofError, verifyInclusion, verifyMultiInclusion } from "./merkle.js";
import { NoteError, parseVkey, type Checkpoint, type NoteVerifier } from "./note.js";
import { MemoryTrustedState, TrustedLog, type NotePolicy, type TrustedStateStore } from "./trusted.js";
import { CosignaturePolicy } from "./cosignature.js";
import { ModuleRuntime, segment } from "./handles.js";

/** Most entries whose proofs one `POST /proof/inclusion` asks for (the server's limit). */
export const MAX_PROOF_BATCH = 1000;
/** Seconds a verifying client waits for a checkpoint covering an entry newer than the latest one. */
export const DEFAULT_CHECKPOINT_WAIT = 10;
const DEFAULT_QUERY_LIMIT = 100;
const MAX_QUERY_LIMIT = 1000;
const MAX_FILTER_VALUES = 1000;
const POLL_FIRST_MS = 20;
const POLL_MAX_MS = 500;
const CURSOR = /^s[0-9]{1,19}$/;
const SIGNS_NO_CHECKPOINTS = "signs no checkpoints"; // the server's 404 for a ledger without a checkpoint key

export interface ClientOptions {
  /** The server's base URL (http:// or https://). */
  url: string;
  /** The bearer token of the requester. */
  token?: string;
  /** The ledger's checkpoint verifier keys; giving them turns verification on. */
  verifierKeys?: readonly string[];
  /** Where the last verified checkpoint is kept (default: in memory, for the client's life). */
  trustedState?: TrustedStateStore;
  /** The ledger id when known (otherwise asked from the server once). */
  ledgerId?: string;
  /** The log's origin line (default `nucleus.invalid/<ledger id>`). */
  origin?: string;
  /** Seconds to wait for a checkpoint covering a new entry before refusing (default 10). */
  checkpointWait?: number;
  /** A fetch implementation (default: the global one). */
  fetch?: typeof globalThis.fetch;
  /** k of n witnesses that must have cosigned every checkpoint received (WitnessPolicyError otherwise). */
  witnessPolicy?: CosignaturePolicy;
}

/** Query filters (`POST /entries/query`). */
export interface QueryFilters {
  stream?: string | string[];
  recordIds?: string[];
  since?: number;
  until?: number;
  limit?: number;
  cursor?: string;
}

export interface QueryPage {
  entries: Entry[];
  /** The cursor of the next page; null on the last page. */
  nextCursor: string | null;
}

export interface VerificationReport {
  ok: boolean;
  entriesChecked: number;
  firstBadSeq: number | null;
  reason: string | null;
  headHash: string | null;
}

interface InclusionProof {
  leafIndex: number;
  treeSize: number;
  hashes: Uint8Array[];
}

interface AskedQuery {
  streams: string[] | null;
  recordIds: string[] | null;
  since: number | null;
  until: number | null;
  afterSeq: number;
  limit: number;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function hexList(value: unknown): Uint8Array[] | null {
  if (!Array.isArray(value) || !value.every(isHash)) return null;
  return value.map((h) => hexToBytes(h as string));
}

function inclusionProofFrom(doc: unknown): InclusionProof | null {
  if (!isObject(doc) || Object.keys(doc).length !== 3) return null;
  const { leaf_index: leafIndex, tree_size: treeSize } = doc;
  const hashes = hexList(doc["hashes"]);
  if (!Number.isSafeInteger(leafIndex) || !Number.isSafeInteger(treeSize) || hashes === null) return null;
  return { leafIndex: leafIndex as number, treeSize: treeSize as number, hashes };
}

function decodeCursor(cursor: string | null | undefined): number {
  if (cursor === null || cursor === undefined) return 0;
  if (typeof cursor !== "string" || !CURSOR.test(cursor)) {
    throw new QueryError("is not a cursor returned by this ledger", { field: "cursor" });
  }
  return Number(cursor.slice(1));
}

function askedFrom(filters: QueryFilters): AskedQuery {
  const { stream, recordIds, since, until } = filters;
  const limit = filters.limit ?? DEFAULT_QUERY_LIMIT;
  let streams: string[] | null = null;
  if (stream !== undefined) {
    streams = typeof stream === "string" ? [stream] : stream;
    if (!Array.isArray(streams) || !streams.length || streams.length > MAX_FILTER_VALUES) {
      throw new QueryError(`must be a stream name or a list of 1-${MAX_FILTER_VALUES}`, { field: "stream" });
    }
  }
  if (recordIds !== undefined && (!Array.isArray(recordIds) || !recordIds.length || recordIds.length > MAX_FILTER_VALUES)) {
    throw new QueryError(`must be a list of 1-${MAX_FILTER_VALUES} record ids`, { field: "record_ids" });
  }
  for (const [name, value] of [["since", since], ["until", until]] as const) {
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) {
      throw new QueryError("must be a non-negative integer (Unix milliseconds)", { field: name });
    }
  }
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_QUERY_LIMIT) {
    throw new QueryError(`must be an integer from 1 to ${MAX_QUERY_LIMIT}`, { field: "limit" });
  }
  return {
    streams, recordIds: recordIds ?? null, since: since ?? null, until: until ?? null,
    afterSeq: decodeCursor(filters.cursor), limit,
  };
}

function filtersBody(filters: QueryFilters): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (filters.stream !== undefined) body["stream"] = filters.stream;
  if (filters.recordIds !== undefined) body["record_ids"] = filters.recordIds;
  if (filters.since !== undefined) body["since"] = filters.since;
  if (filters.until !== undefined) body["until"] = filters.until;
  if (filters.limit !== undefined) body["limit"] = filters.limit;
  if (filters.cursor !== undefined) body["cursor"] = filters.cursor;
  return body;
}

/** A page must match what the client can check of the query asked (Python `_check_page`). */
function checkPage(entries: readonly Entry[], nextCursor: unknown, asked: AskedQuery): void {
  if (entries.length > asked.limit) {
    throw new AnswerMismatchError(`asked for at most ${asked.limit} entries, the server answered ${entries.length}`);
  }
  for (const entry of entries) {
    const { record } = entry;
    let why: string | null = null;
    if (entry.seq <= asked.afterSeq) why = `its seq is not after the cursor's entry ${asked.afterSeq}`;
    else if (asked.streams !== null && !asked.streams.includes(record.stream)) {
      why = `its stream ${JSON.stringify(record.stream)} is not one asked for`;
    } else if (asked.recordIds !== null && !asked.recordIds.includes(record.id)) {
      why = `its record id ${JSON.stringify(record.id)} is not one asked for`;
    } else if ((asked.since !== null && record.timestamp < asked.since) || (asked.until !== null && record.timestamp >= asked.until)) {
      why = `its timestamp ${record.timestamp} is outside the range asked for`;
    }
    if (why !== null) {
      throw new AnswerMismatchError(`the server's query page holds entry ${entry.seq}, which ${why}`, { seq: entry.seq });
    }
  }
  if (nextCursor !== null) {
    let after: number;
    try {
      if (typeof nextCursor !== "string") throw new QueryError("not a string");
      after = decodeCursor(nextCursor);
    } catch {
      throw new AnswerMismatchError(`the server's next_cursor ${JSON.stringify(nextCursor)} is not a cursor`);
    }
    const last = entries[entries.length - 1];
    const floor = last !== undefined ? last.seq : asked.afterSeq;
    if (after < floor || (last === undefined && after === floor)) {
      throw new AnswerMismatchError(
        `the server's next_cursor ${JSON.stringify(nextCursor)} does not move past its page (entry ${floor})`,
      );
    }
  }
}

function checkAscending(entries: readonly Entry[]): void {
  for (let i = 1; i < entries.length; i++) {
    const before = (entries[i - 1] as Entry).seq;
    const after = (entries[i] as Entry).seq;
    if (after <= before) {
      throw new LogVerificationError(`the server answered a page out of seq order (${before}, then ${after})`);
    }
  }
}

/** An append's answer must be the records sent, in order, in consecutive entries. */
function checkRecords(entries: readonly Entry[], records: readonly LedgerRecord[]): void {
  if (entries.length !== records.length) {
    throw new LogVerificationError(`appended ${records.length} records, the server answered ${entries.length} entries`);
  }
  entries.forEach((entry, i) => {
    const record = records[i] as LedgerRecord;
    if (!equalBytes(entry.canonical, canonicalBytes(record))) {
      throw new LogVerificationError(
        `the server answered the append of record ${JSON.stringify(record.id)} with entry ${entry.seq} of another record`,
        { seq: entry.seq },
      );
    }
    if (i && entry.seq !== (entries[i - 1] as Entry).seq + 1) {
      throw new LogVerificationError("the server answered a batch append with entries that are not consecutive");
    }
  });
}

function checkInclusion(entry: Entry, proof: InclusionProof | null, checkpoint: Checkpoint): void {
  const { seq } = entry;
  if (proof === null) {
    throw new InclusionProofError(
      `entry ${seq}: the server returned it but gives no inclusion proof of it in the tree of ${checkpoint.size} entries`,
      { seq },
    );
  }
  if (proof.leafIndex !== seq - 1 || proof.treeSize !== checkpoint.size) {
    throw new InclusionProofError(
      `entry ${seq}: the server's inclusion proof is for leaf ${proof.leafIndex} of a tree of ${proof.treeSize}, not leaf ` +
      `${seq - 1} of the trusted tree of ${checkpoint.size}`, { seq },
    );
  }
  try {
    verifyInclusion(leafHash(hexToBytes(entry.hash)), seq - 1, checkpoint.size, proof.hashes, checkpoint.rootHash);
  } catch (err) {
    if (!(err instanceof ProofError)) throw err;
    throw new InclusionProofError(
      `entry ${seq} (hash ${entry.hash}) is not in the trusted tree of ${checkpoint.size} entries: ${err.message}`, { seq },
    );
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A client of one Nucleus ledger server. Create it with {@link createClient}. */
export class NucleusClient {
  readonly url: string;
  /** True when checkpoints and entries are verified (verifier keys were given). */
  readonly verifying: boolean;
  readonly #token: string | undefined;
  readonly #fetch: typeof globalThis.fetch;
  readonly #verifiers: readonly NoteVerifier[];
  readonly #store: TrustedStateStore;
  readonly #origin: string | undefined;
  readonly #checkpointWaitMs: number;
  /** The k-of-n witness policy every checkpoint must meet (undefined: none). */
  readonly witnessPolicy: CosignaturePolicy | undefined;
  /** The ledger's modules and their handles, read-only (`listModules()`, `getModule(id)`). */
  readonly runtime: ModuleRuntime;
  #askCosigned = true;
  #ledgerId: string | undefined;
  #log: TrustedLog | undefined;

  constructor(options: ClientOptions) {
    if (!isObject(options)) throw new ConfigurationError("createClient takes an options object");
    const { url, token, verifierKeys, trustedState, ledgerId, origin, checkpointWait, witnessPolicy } = options;
    if (typeof url !== "string" || !/^https?:\/\//.test(url)) {
      throw new ConfigurationError(`url must be an http:// or https:// URL, got ${JSON.stringify(url)}`);
    }
    if (token !== undefined && (typeof token !== "string" || !token)) throw new ConfigurationError("token must be a non-empty string");
    if (verifierKeys !== undefined && (typeof verifierKeys === "string" || !Array.isArray(verifierKeys))) {
      throw new ConfigurationError("verifierKeys is a list of verifier key strings, not one string");
    }
    this.verifying = verifierKeys !== undefined && verifierKeys.length > 0;
    if (!this.verifying && (trustedState !== undefined || witnessPolicy !== undefined)) {
      throw new ConfigurationError("trustedState and witnessPolicy are used by a verifying client only (give verifierKeys)");
    }
    if (witnessPolicy !== undefined && !(witnessPolicy instanceof CosignaturePolicy)) {
      throw new ConfigurationError("witnessPolicy must be a CosignaturePolicy");
    }
    this.witnessPolicy = witnessPolicy;
    const wait = checkpointWait ?? DEFAULT_CHECKPOINT_WAIT;
    if (typeof wait !== "number" || !(wait >= 0)) throw new ConfigurationError("checkpointWait must be a non-negative number of seconds");
    this.#verifiers = (verifierKeys ?? []).map((vkey) => {
      try {
        return parseVkey(vkey);
      } catch (err) {
        throw new ConfigurationError(`verifier key ${JSON.stringify(vkey)}: ${(err as Error).message}`);
      }
    });
    if (trustedState !== undefined && (typeof trustedState.load !== "function" || typeof trustedState.save !== "function")) {
      throw new ConfigurationError("trustedState must be a TrustedStateStore (load and save)");
    }
    this.#store = trustedState ?? new MemoryTrustedState();
    this.url = url.replace(/\/+$/, "");
    this.#token = token;
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#ledgerId = ledgerId;
    this.#origin = origin;
    this.#checkpointWaitMs = wait * 1000;
    this.runtime = new ModuleRuntime({
      verifying: this.verifying,
      get: (path) => this.#json("GET", path),
      entries: async (docs) => this.#verified(await this.#entries(docs)),
    });
  }

  // plumbing -------------------------------------------------------------------------------
  async #send(method: string, path: string, body?: unknown, auth = true): Promise<Response> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (auth && this.#token !== undefined) headers["authorization"] = `Bearer ${this.#token}`;
    const init: RequestInit = { method, headers, redirect: "manual" };
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response: Response;
    try {
      response = await this.#fetch(`${this.url}${path}`, init);
    } catch (err) {
      throw new StorageUnavailableError(`cannot reach the ledger server at ${this.url}: ${(err as Error).message}`);
    }
    if (response.status >= 400) {
      let doc: unknown;
      try {
        doc = JSON.parse(await response.text());
      } catch {
        doc = undefined;
      }
      throw rebuildError(doc, response.status);
    }
    return response;
  }

  async #json(method: string, path: string, body?: unknown): Promise<unknown> {
    const response = await this.#send(method, path, body);
    const text = await response.text();
    try {
      return text ? JSON.parse(text) : null;
    } catch {
      throw new NucleusError(`the server's ${path} did not answer JSON`);
    }
  }

  async #text(path: string): Promise<string> {
    const response = await this.#send("GET", path);
    if (!(response.headers.get("content-type") ?? "").startsWith("text/plain")) {
      throw new NucleusError(`the server's ${path.split("?")[0]} did not answer text/plain`);
    }
    const raw = new Uint8Array(await response.arrayBuffer());
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(raw);
    } catch {
      throw new (this.verifying ? CheckpointSignatureError : NucleusError)("the server's checkpoint is not UTF-8");
    }
  }

  /** The ledger id (asked from the server once). */
  async ledgerId(): Promise<string> {
    if (this.#ledgerId === undefined) {
      const doc = await this.#json("GET", "/ledger");
      if (!isObject(doc) || typeof doc["ledger_id"] !== "string") throw new NucleusError("the server's /ledger has no ledger_id");
      this.#ledgerId = doc["ledger_id"];
    }
    return this.#ledgerId;
  }

  async #entries(docs: unknown): Promise<Entry[]> {
    if (!Array.isArray(docs)) throw new NucleusError("the server sent no entry list");
    const id = await this.ledgerId();
    return docs.map((doc) => entryFromJson(doc, id));
  }

  #requireVerifying(): void {
    if (!this.verifying) throw new ConfigurationError("this client does not verify (it was given no verifierKeys)");
  }

  // verification ---------------------------------------------------------------------------
  async #trustedLog(): Promise<TrustedLog> {
    if (this.#log === undefined) {
      const origin = this.#origin ?? `nucleus.invalid/${await this.ledgerId()}`;
      this.#log ??= new TrustedLog(this.#verifiers, origin, this.#store, this.#notePolicy());
    }
    return this.#log;
  }

  #notePolicy(): NotePolicy | undefined {
    const policy = this.witnessPolicy;
    if (policy === undefined) return undefined;
    return (note, checkpoint) => {
      try {
        policy.check(note);
      } catch (err) {
        if (!(err instanceof NoteError)) throw err;
        throw new WitnessPolicyError(
          `the checkpoint of ${JSON.stringify(checkpoint.origin)} at size ${checkpoint.size} is refused: ${err.message}`,
        );
      }
    };
  }

  /**
   * The server's latest checkpoint; with a witness policy the latest one cosigned by the policy's
   * quorum (`GET /checkpoint?cosigned=K`), null when there is none yet. A server refusing that
   * parameter (or with fewer witnesses than the quorum) is asked for its latest one instead, from
   * then on: the policy then decides.
   */
  async #latestNote(): Promise<string | null> {
    const policy = this.witnessPolicy;
    if (policy === undefined || !this.#askCosigned) return this.#text("/checkpoint");
    try {
      return await this.#text(`/checkpoint?cosigned=${policy.quorum}`);
    } catch (err) {
      if (err instanceof NotFoundError) {
        if (err.message.includes(SIGNS_NO_CHECKPOINTS)) throw err;
        return null;
      }
      if (err instanceof ValidationError && (err.field === "query" || err.field === "cosigned")) {
        this.#askCosigned = false;
        return this.#text("/checkpoint");
      }
      throw err;
    }
  }

  #noneCosigned(): string {
    return `the server has no checkpoint cosigned by ${this.witnessPolicy?.quorum ?? 0} of its witnesses yet (the policy's quorum)`;
  }

  /** The checkpoint this client trusts now (null before the first one). */
  async trustedCheckpoint(): Promise<Checkpoint | null> {
    this.#requireVerifying();
    return (await this.#trustedLog()).checkpoint();
  }

  /** Fetch the server's latest checkpoint, verify it against the trusted state and move that forward. */
  async refresh(): Promise<Checkpoint> {
    this.#requireVerifying();
    const log = await this.#trustedLog();
    const note = await this.#latestNote();
    if (note === null) throw new WitnessPolicyError(this.#noneCosigned());
    return this.#accept(log, note, true);
  }

  #accept(log: TrustedLog, note: string, latest: boolean): Promise<Checkpoint> {
    return log.accept(note, (from, to) => this.#consistencyHashes(from, to), latest);
  }

  async #consistencyHashes(from: number, to: number): Promise<Uint8Array[]> {
    let doc: unknown;
    try {
      doc = await this.#json("GET", `/proof/consistency?from=${from}&to=${to}`);
    } catch (err) {
      if (err instanceof ValidationError || err instanceof NotFoundError) {
        throw new InconsistentLogError(
          `the server gives no consistency proof from its tree of ${from} entries to ${to}: ${err.message}`,
        );
      }
      throw err;
    }
    const hashes = isObject(doc) && Object.keys(doc).length === 3 ? hexList(doc["hashes"]) : null;
    if (!isObject(doc) || hashes === null || !Number.isSafeInteger(doc["from"]) || !Number.isSafeInteger(doc["to"])) {
      throw new InconsistentLogError(`the server's consistency proof from ${from} to ${to} is malformed`);
    }
    if (doc["from"] !== from || doc["to"] !== to) {
      throw new InconsistentLogError(
        `asked for the consistency proof from ${from} to ${to}, the server answered one from ${String(doc["from"])} to ` +
        `${String(doc["to"])}`,
      );
    }
    return hashes;
  }

  /** A trusted checkpoint covering entry `seq`: the trusted one, or a newer one issued within checkpointWait. */
  async #covering(seq: number): Promise<Checkpoint> {
    const log = await this.#trustedLog();
    const trusted = await log.checkpoint();
    if (trusted !== null && trusted.size >= seq) return trusted;
    const deadline = Date.now() + this.#checkpointWaitMs;
    let delay = POLL_FIRST_MS;
    for (;;) {
      const note = await this.#latestNote();
      const latest = note === null ? null : await this.#accept(log, note, true);
      if (latest !== null && latest.size >= seq) return latest;
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        const cosigned = this.witnessPolicy === undefined ? "" : " cosigned as the policy requires";
        const size = latest === null ? "none" : `of size ${latest.size}`;
        throw new InclusionProofError(
          `entry ${seq} cannot be verified: no checkpoint covers it (the server's latest${cosigned} is ${size}, after ` +
          `waiting ${this.#checkpointWaitMs / 1000} s); the server issues checkpoints at most once per its checkpoint ` +
          "interval, and never on a read-only ledger", { seq, reason: "no_covering_checkpoint" },
        );
      }
      await sleep(Math.min(delay, remaining));
      delay = Math.min(delay * 2, POLL_MAX_MS);
    }
  }

  /** `entries`, each proven by an inclusion proof in a trusted checkpoint (unchanged when not verifying). */
  async #verified(entries: Entry[]): Promise<Entry[]> {
    if (!this.verifying || !entries.length) return entries;
    const checkpoint = await this.#covering(Math.max(...entries.map((e) => e.seq)));
    const seqs = [...new Set(entries.map((e) => e.seq))].sort((a, b) => a - b);
    const proofs = new Map<number, InclusionProof | null>();
    for (let start = 0; start < seqs.length; start += MAX_PROOF_BATCH) {
      const chunk = seqs.slice(start, start + MAX_PROOF_BATCH);
      const answered = await this.#inclusionBatch(chunk, checkpoint.size);
      chunk.forEach((seq, i) => proofs.set(seq, answered[i] ?? null));
    }
    for (const entry of entries) checkInclusion(entry, proofs.get(entry.seq) ?? null, checkpoint);
    return entries;
  }

  async #inclusionBatch(seqs: number[], treeSize: number): Promise<(InclusionProof | null)[]> {
    let doc: unknown;
    try {
      doc = await this.#json("POST", "/proof/inclusion", { tree_size: treeSize, seqs });
    } catch (err) {
      if (err instanceof ValidationError) return this.#cannotProve(treeSize, err);
      throw err;
    }
    const items = isObject(doc) ? doc["proofs"] : undefined;
    if (!isObject(doc) || !Array.isArray(items) || doc["tree_size"] !== treeSize || items.length !== seqs.length) {
      throw new InclusionProofError(
        `the server's POST /proof/inclusion did not answer ${seqs.length} proofs in the tree of ${treeSize}`,
      );
    }
    return items.map((item: unknown, i) => {
      if (item === null) return null;
      const proof = inclusionProofFrom(item);
      if (proof === null) {
        throw new InclusionProofError(`entry ${seqs[i]}: the server sent a malformed inclusion proof`, { seq: seqs[i] });
      }
      return proof;
    });
  }

  /** The server refused to prove anything in the trusted tree: a rollback shows in its latest checkpoint. */
  async #cannotProve(treeSize: number, err: Error): Promise<never> {
    const log = await this.#trustedLog();
    const note = await this.#latestNote();
    if (note !== null) await this.#accept(log, note, true);
    throw new InclusionProofError(`the server gives no inclusion proofs in the trusted tree of ${treeSize} entries: ${err.message}`);
  }

  // writes ---------------------------------------------------------------------------------
  /** Append one record; returns its entry (verified when the client verifies). */
  async append(record: LedgerRecord): Promise<Entry> {
    checkRecord(record);
    const entries = await this.#entries([await this.#json("POST", "/entries", record)]);
    if (this.verifying) checkRecords(entries, [record]);
    return (await this.#verified(entries))[0] as Entry;
  }

  /** Append records atomically, in order: all are committed or none is. */
  async appendBatch(records: readonly LedgerRecord[]): Promise<Entry[]> {
    if (!Array.isArray(records)) throw new ValidationError("appendBatch takes a list of records", { field: "records" });
    records.forEach(checkRecord);
    const doc = await this.#json("POST", "/entries/batch", { records });
    const entries = await this.#entries(isObject(doc) ? doc["entries"] : undefined);
    if (this.verifying) checkRecords(entries, records);
    return this.#verified(entries);
  }

  // reads ----------------------------------------------------------------------------------
  /** The entry with this hash, or null when absent or not readable by the requester. */
  async get(hash: string): Promise<Entry | null> {
    if (typeof hash !== "string" || !hash) throw new ValidationError("must be 64 lowercase hex characters", { field: "hash" });
    const entry = await this.#getOne(`/entries/${segment(hash)}`);
    if (entry !== null && this.verifying && entry.hash !== hash) {
      throw new LogVerificationError(`asked for entry ${hash}, the server answered entry ${entry.hash}`);
    }
    return entry;
  }

  /** The entry of this record id, or null when absent or not readable by the requester. */
  async getById(recordId: string): Promise<Entry | null> {
    if (typeof recordId !== "string" || !recordId) throw new ValidationError("must be a non-empty string", { field: "record_id" });
    const entry = await this.#getOne(`/records/${segment(recordId)}`);
    if (entry !== null && this.verifying && entry.record.id !== recordId) {
      throw new LogVerificationError(
        `asked for record ${JSON.stringify(recordId)}, the server answered record ${JSON.stringify(entry.record.id)}`,
      );
    }
    return entry;
  }

  async #getOne(path: string): Promise<Entry | null> {
    let doc: unknown;
    try {
      doc = await this.#json("GET", path);
    } catch (err) {
      if (err instanceof NotFoundError) return null;
      throw err;
    }
    return ((await this.#verified(await this.#entries([doc])))[0] as Entry);
  }

  /**
   * One page of the entries matching `filters` that the requester may read, in seq order. A
   * verifying client checks the page against the filters (AnswerMismatchError) and proves it with
   * the multi-proof that comes with it in the trusted tree (newer entries by POST /proof/inclusion).
   */
  async queryPage(filters: QueryFilters = {}): Promise<QueryPage> {
    if (!isObject(filters)) throw new QueryError("filters must be an object", { field: "filters" });
    const asked = askedFrom(filters);
    let body = filtersBody(filters);
    const trusted = this.verifying ? await (await this.#trustedLog()).checkpoint() : null;
    if (trusted !== null && trusted.size > 0) body = { ...body, proof_tree_size: trusted.size };
    let doc: unknown;
    try {
      doc = await this.#json("POST", "/entries/query", body);
    } catch (err) {
      if (trusted !== null && err instanceof ValidationError && err.field === "proof_tree_size") {
        return this.#cannotProve(trusted.size, err);
      }
      throw err;
    }
    if (!isObject(doc)) throw new NucleusError("the server's query answer is not an object");
    const entries = await this.#entries(doc["entries"]);
    const nextCursor = doc["next_cursor"] ?? null;
    if (this.verifying) {
      checkAscending(entries);
      checkPage(entries, nextCursor, asked);
      await this.#verifiedPage(entries, doc["proof"], trusted);
    }
    if (nextCursor !== null && typeof nextCursor !== "string") throw new NucleusError("the server's next_cursor is not a string");
    return { entries, nextCursor };
  }

  async #verifiedPage(entries: Entry[], proof: unknown, trusted: Checkpoint | null): Promise<void> {
    const covered = trusted === null ? [] : entries.filter((e) => e.seq <= trusted.size);
    if (covered.length && trusted !== null) {
      const seqs = covered.map((e) => e.seq);
      const first = seqs[0] as number;
      const sentSeqs = isObject(proof) ? proof["seqs"] : undefined;
      if (
        !isObject(proof) || proof["tree_size"] !== trusted.size || !Array.isArray(sentSeqs) ||
        sentSeqs.length !== seqs.length || !sentSeqs.every((s, i) => s === seqs[i])
      ) {
        throw new InclusionProofError(
          `the server's page came without the proof of entries ${first}..${seqs[seqs.length - 1]} in the trusted tree of ` +
          `${trusted.size} entries`, { seq: first },
        );
      }
      const hashes = hexList(proof["hashes"]);
      if (hashes === null) throw new InclusionProofError("the server's page proof is malformed", { seq: first });
      try {
        verifyMultiInclusion(
          covered.map((e) => leafHash(hexToBytes(e.hash))), seqs.map((s) => s - 1), trusted.size, hashes, trusted.rootHash,
        );
      } catch (err) {
        if (!(err instanceof ProofError)) throw err;
        throw new InclusionProofError(
          `entries ${first}..${seqs[seqs.length - 1]} of the page are not all in the trusted tree of ${trusted.size} ` +
          `entries: ${err.message}`, { seq: first },
        );
      }
    }
    await this.#verified(entries.filter((e) => trusted === null || e.seq > trusted.size));
  }

  /**
   * The pages of the entries matching `filters`, following the cursor to the last page
   * (`for await (const page of client.query({stream: "notes"}))`). A verifying client refuses a
   * page whose seqs do not rise past the previous page's (AnswerMismatchError).
   */
  query(filters: QueryFilters = {}): AsyncIterable<QueryPage> {
    const client = this;
    return {
      async *[Symbol.asyncIterator](): AsyncGenerator<QueryPage> {
        let cursor = filters.cursor;
        let last = decodeCursor(cursor);
        for (;;) {
          const page = await client.queryPage({ ...filters, ...(cursor === undefined ? {} : { cursor }) });
          const head = page.entries[0];
          if (client.verifying && head !== undefined && head.seq <= last) {
            throw new AnswerMismatchError(
              `the server sent entry ${head.seq} after entry ${last} (entries again)`, { seq: head.seq },
            );
          }
          yield page;
          if (page.nextCursor === null) return;
          const tail = page.entries[page.entries.length - 1];
          if (tail !== undefined) last = tail.seq;
          cursor = page.nextCursor;
        }
      },
    };
  }

  // checkpoints and the server's verification ----------------------------------------------
  /**
   * The server's latest signed checkpoint (`GET /checkpoint`), or the one issued at `size`, as
   * text. A verifying client returns it only verified against its trusted state (the latest moves
   * it forward; an older one must be a prefix of the trusted tree; one of another size than
   * `size` is an AnswerMismatchError).
   */
  async checkpoint(size?: number): Promise<string> {
    if (size !== undefined && (!Number.isSafeInteger(size) || size < 0)) {
      throw new ValidationError(`size must be a non-negative integer, not ${String(size)}`, { field: "size" });
    }
    const note = await this.#text(size === undefined ? "/checkpoint" : `/checkpoint?size=${size}`);
    if (this.verifying) {
      const log = await this.#trustedLog();
      if (size !== undefined) {
        const presented = log.verifyNote(note);
        if (presented.size !== size) {
          throw new AnswerMismatchError(
            `asked for the checkpoint issued at size ${size}, the server answered one of size ${presented.size}`,
          );
        }
      }
      await this.#accept(log, note, size === undefined);
    }
    return note;
  }

  /** The server's checkpoint verifier keys (`GET /checkpoint/key`): compare them with keys obtained another way. */
  async checkpointKeys(): Promise<string[]> {
    const text = await this.#text("/checkpoint/key");
    const keys = text.split("\n").filter((line) => line);
    for (const key of keys) {
      try {
        parseVkey(key);
      } catch (err) {
        if (err instanceof NoteError) throw new NucleusError(`the server sent a malformed verifier key: ${err.message}`);
        throw err;
      }
    }
    return keys;
  }

  /** Have the server re-verify its whole stored chain (`GET /verify`). */
  async verify(): Promise<VerificationReport> {
    const doc = await this.#json("GET", "/verify");
    if (!isObject(doc) || typeof doc["ok"] !== "boolean" || !Number.isSafeInteger(doc["entries_checked"])) {
      throw new NucleusError("the server's /verify answered no verification report");
    }
    return {
      ok: doc["ok"], entriesChecked: doc["entries_checked"] as number,
      firstBadSeq: (doc["first_bad_seq"] as number | null | undefined) ?? null,
      reason: (doc["reason"] as string | null | undefined) ?? null,
      headHash: (doc["head_hash"] as string | null | undefined) ?? null,
    };
  }
}

/** A client of the Nucleus server at `options.url` (see {@link ClientOptions}). */
export function createClient(options: ClientOptions): NucleusClient {
  return new NucleusClient(options);
}
