/**
 * Records, entries and the entry hash of docs/FORMAT.md (sections 2, 3 and 5), for both entry
 * format versions: every entry the server sends is rebuilt and its hash recomputed here.
 */

import { blake3 } from "@noble/hashes/blake3.js";

import { canonicalBytes, type JsonValue } from "./canonical.js";
import { IntegrityError, ValidationError } from "./errors.js";
import { bytesToHex, hexToBytes, isHash, utf8 } from "./bytes.js";

/** A record: what is appended (docs/FORMAT.md section 2). `meta` absent is not `meta: {}`. */
export interface LedgerRecord {
  id: string;
  stream: string;
  timestamp: number;
  payload: { [key: string]: JsonValue } | JsonValue[];
  meta?: { [key: string]: JsonValue };
}

/** An entry: a record at its place in the chain, with the fields its hash covers. */
export interface Entry {
  seq: number;
  hash: string;
  prevHash: string;
  version: 1 | 2;
  /** Version 2: the OID of the principal whose request appended it; null for version 1. */
  appender: string | null;
  /** Version 2: how that principal was authenticated; null for version 1. */
  authSource: string | null;
  /** Version 2: Unix milliseconds of the write; null for version 1. */
  committedAt: number | null;
  record: LedgerRecord;
  /** The record's canonical bytes (RFC 8785), which the hash covers. */
  canonical: Uint8Array;
}

const STREAM = /^_?[a-z][a-z0-9_.-]{0,63}$/;
const OID = /^oid:[a-z0-9][a-z0-9_-]{0,63}:[a-z0-9][a-z0-9_-]{0,63}:[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$/;
const AUTH_SOURCE = /^[a-z][a-z0-9_.-]{0,63}$/;
const ID_CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const SPACE = "[\\t\\n\\v\\f\\r \\u001c-\\u001f\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
const EDGE_SPACE = new RegExp(`^${SPACE}|${SPACE}$`, "u");
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const TAG_V1 = utf8("nucleus/entry/v1\u0000");
const TAG_V2 = utf8("nucleus/entry/v2\u0000");
const RECORD_KEYS = new Set(["id", "stream", "timestamp", "payload", "meta"]);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Why `value` is not a valid record (docs/FORMAT.md section 2), or null when it is one. */
export function recordProblem(value: unknown): string | null {
  if (!isPlainObject(value)) return "a record is a JSON object";
  for (const key of Object.keys(value)) {
    if (!RECORD_KEYS.has(key)) return `unknown record key ${JSON.stringify(key)}`;
  }
  const { id, stream, timestamp, payload } = value;
  if (typeof id !== "string") return "id must be a string";
  // Code points: counted only when the UTF-16 length could exceed 256 of them.
  const points = id.length <= 256 ? id.length : [...id].length;
  if (id.length < 1 || points > 256) return "id must be 1-256 characters";
  if (ID_CONTROL.test(id)) return "id must not hold control characters";
  if (EDGE_SPACE.test(id)) return "id must not start or end with whitespace";
  if (typeof stream !== "string" || !STREAM.test(stream)) return "stream must match [a-z][a-z0-9_.-]{0,63} (or _ and 62)";
  if (typeof timestamp !== "number" || !Number.isInteger(timestamp) || timestamp < 1 || timestamp > MAX_SAFE) {
    return "timestamp must be an integer from 1 to 2^53-1 (Unix milliseconds)";
  }
  if (typeof payload !== "object" || payload === null) return "payload must be an object or an array";
  if ("meta" in value && !isPlainObject(value["meta"])) return "meta must be an object when present";
  return null;
}

/**
 * `value` checked to be a record whose payload and meta are I-JSON (no NaN, infinities, lone
 * surrogates, `undefined` or non-plain objects, which JSON.stringify would silently change), so
 * nothing is sent that the client could not check the answer to; ValidationError otherwise.
 */
export function checkRecord(value: unknown): LedgerRecord {
  const why = recordProblem(value);
  if (why !== null) throw new ValidationError(why, { field: "record" });
  canonicalBytes(value);
  return value as LedgerRecord;
}

/** The entry hash of docs/FORMAT.md section 3 for `version` (1 or 2), as lowercase hex. */
export function entryHash(
  ledgerId: string, seq: number, prevHash: string, canonical: Uint8Array, version: 1 | 2,
  appender: string | null = null, authSource: string | null = null, committedAt: number | null = null,
): string {
  return bytesToHex(blake3(entryPreimage(ledgerId, seq, prevHash, canonical, version, appender, authSource, committedAt)));
}

/** The BLAKE3 preimage of an entry hash (docs/FORMAT.md section 3), written into one buffer. */
export function entryPreimage(
  ledgerId: string, seq: number, prevHash: string, canonical: Uint8Array, version: 1 | 2,
  appender: string | null = null, authSource: string | null = null, committedAt: number | null = null,
): Uint8Array {
  const id = utf8(ledgerId);
  let who: Uint8Array | null = null;
  let how: Uint8Array | null = null;
  if (version === 2) {
    if (appender === null || authSource === null || committedAt === null) {
      throw new ValidationError("a version-2 entry has an appender, an auth source and a commit time");
    }
    who = utf8(appender);
    how = utf8(authSource);
  }
  const middle = who === null || how === null ? 0 : 8 + 2 + who.length + 2 + how.length;
  const out = new Uint8Array(17 + 2 + id.length + 8 + 32 + middle + 8 + canonical.length);
  const view = new DataView(out.buffer);
  let at = 0;
  out.set(version === 1 ? TAG_V1 : TAG_V2, at);
  at += 17;
  view.setUint16(at, id.length);
  out.set(id, at + 2);
  at += 2 + id.length;
  writeU64(view, at, seq);
  out.set(hexToBytes(prevHash), at + 8);
  at += 40;
  if (who !== null && how !== null) {
    writeU64(view, at, committedAt as number);
    view.setUint16(at + 8, who.length);
    out.set(who, at + 10);
    at += 10 + who.length;
    view.setUint16(at, how.length);
    out.set(how, at + 2);
    at += 2 + how.length;
  }
  writeU64(view, at, canonical.length);
  out.set(canonical, at + 8);
  return out;
}

/** `n` (a non-negative safe integer) as 8 big-endian bytes at `at`. */
function writeU64(view: DataView, at: number, n: number): void {
  view.setUint32(at, Math.floor(n / 2 ** 32));
  view.setUint32(at + 4, n >>> 0);
}

/** Why an entry's format fields are malformed (null when they are well formed). */
function columnsProblem(version: unknown, appender: unknown, authSource: unknown, committedAt: unknown): string | null {
  if (version === 1) {
    return appender === null && authSource === null && committedAt === null
      ? null : "a version-1 entry has no appender, auth source or commit time";
  }
  if (version !== 2) return `unknown entry format version ${JSON.stringify(version)}`;
  if (typeof appender !== "string" || !OID.test(appender)) return "the appender is not an OID";
  if (typeof authSource !== "string" || !AUTH_SOURCE.test(authSource)) return "the auth source is malformed";
  if (typeof committedAt !== "number" || !Number.isInteger(committedAt) || committedAt < 1 || committedAt > MAX_SAFE) {
    return "committed_at is not an integer from 1 to 2^53-1";
  }
  return null;
}

const ENTRY_KEYS = ["seq", "hash", "prev_hash", "version", "appender", "auth_source", "committed_at", "record"];

/**
 * Rebuild an entry the server sent (`{"seq", "hash", "prev_hash", "version", "appender",
 * "auth_source", "committed_at", "record"}`) and check that its hash is the one its fields and
 * its record's canonical bytes give under `ledgerId`. IntegrityError otherwise (a server or a
 * proxy changed something).
 */
export function entryFromJson(doc: unknown, ledgerId: string): Entry {
  if (!isPlainObject(doc) || Object.keys(doc).length !== ENTRY_KEYS.length || !ENTRY_KEYS.every((k) => k in doc)) {
    throw new IntegrityError("the server sent something that is not an entry");
  }
  const { seq, hash, prev_hash: prevHash, version, appender, auth_source: authSource, committed_at: committedAt } = doc;
  if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1 || !isHash(hash) || !isHash(prevHash)) {
    throw new IntegrityError("the server sent an entry with a malformed seq or hash");
  }
  const why = recordProblem(doc["record"]);
  if (why !== null) throw new IntegrityError(`entry ${seq}: the server sent an invalid record (${why})`, { seq });
  const record = doc["record"] as LedgerRecord;
  const columns = columnsProblem(version, appender, authSource, committedAt);
  if (columns !== null) {
    throw new IntegrityError(`entry ${seq}: the server sent malformed fields (${columns})`, { seq, reason: columns });
  }
  let canonical: Uint8Array;
  try {
    canonical = canonicalBytes(record);
  } catch (err) {
    throw new IntegrityError(`entry ${seq}: the server sent a record that is not I-JSON (${(err as Error).message})`, { seq });
  }
  const v = version as 1 | 2;
  const expected = entryHash(
    ledgerId, seq, prevHash, canonical, v, appender as string | null, authSource as string | null,
    committedAt as number | null,
  );
  if (expected !== hash) {
    throw new IntegrityError(`entry ${seq}: hash does not match the record the server sent`, { seq, reason: "hash mismatch" });
  }
  return {
    seq, hash, prevHash, version: v, appender: appender as string | null, authSource: authSource as string | null,
    committedAt: committedAt as number | null, record, canonical,
  };
}
