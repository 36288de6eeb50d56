/**
 * Module handles over HTTP (`client.runtime`): the typed, read-only queries a ledger's modules
 * offer (docs/MODULES.md), as the Python `RemoteLedger.runtime` gives them. The server lists each
 * module's operations (`GET /modules`: name, parameters, result schema) and answers each at
 * `GET /modules/<id>/<operation>?<param>=<value>`, as the requester (the bearer token), under the
 * same access rules as in process.
 *
 * The four built-in modules have typed handles ({@link ProofHandle}, {@link AssetHandle},
 * {@link ConnectGrantHandle}, {@link TokenHandle}) whose answers are checked against the types
 * this client declares; any other module gets a generic handle built from the operations the
 * server lists, its answers checked against the result schemas the server gives. Everything a
 * module defines keeps its Python name: operation names (`by_subject`), optional arguments
 * (`{now_ms}`) and result fields (`token_id`). Entries in an answer are rebuilt and their hashes
 * recomputed, and, when the client verifies, proven in a trusted checkpoint, as `client.get`
 * does; derived answers (a balance, a status, an owner) carry no proof: they are the server's word.
 */

import { AnswerMismatchError, ModuleError, NucleusError, QueryError, ValidationError } from "./errors.js";
import type { Entry } from "./entry.js";

/** A JSON Schema (2020-12) document as the server sends it. */
export type JsonSchema = { readonly [keyword: string]: unknown };

export interface ParamInfo {
  readonly name: string;
  readonly required: boolean;
  readonly schema: JsonSchema;
}

/** One handle operation a module offers (`GET /modules/<id>/<name>`). */
export interface OperationInfo {
  readonly name: string;
  readonly summary: string;
  readonly path: string;
  /** Required ones first, in declared order, then the optional ones. */
  readonly params: readonly ParamInfo[];
  readonly result: JsonSchema;
}

/** What the server says about one of its ledger's modules (`GET /modules`). */
export interface ModuleInfo {
  readonly id: string;
  readonly version: string;
  readonly state: string;
  readonly streams: readonly string[];
  readonly dependsOn: readonly string[];
  readonly resourceKind: string | null;
  /** Qualified names (`<python module>.<class>`) of the module's classes, most derived first. */
  readonly handleTypes: readonly string[];
  readonly operations: readonly OperationInfo[];
}

/** A proof's status (`ProofStatus` of nucleus_module_proof). */
export const ProofStatus = { ISSUED: "issued", REVOKED: "revoked", EXPIRED: "expired" } as const;
export type ProofStatus = (typeof ProofStatus)[keyof typeof ProofStatus];

/** A proof as derived from the chain (nucleus_module_proof.ProofInfo). */
export interface ProofInfo {
  readonly proof_id: string;
  readonly subject: string;
  readonly issuer: string;
  readonly proof_type: string;
  readonly target: string;
  readonly expires_at: number | null;
  readonly revoked: boolean;
  /** The entry that issued it. */
  readonly seq: number;
}

/** An asset as derived from the chain (nucleus_module_asset.AssetInfo); `status`: `active` or `revoked`. */
export interface AssetInfo {
  readonly asset_id: string;
  readonly issuer: string;
  readonly owner: string;
  readonly asset_type: string | null;
  readonly status: string;
  readonly seq: number;
}

/** A connect grant as derived from the chain (nucleus_module_connect_grant.GrantInfo). */
export interface GrantInfo {
  readonly grant_id: string;
  readonly subject: string;
  readonly app: string;
  readonly scopes: readonly string[];
  readonly expires_at: number | null;
  readonly revoked: boolean;
  readonly seq: number;
}

/** A token as derived from the chain (nucleus_module_token.TokenInfo); `supply`: minted minus burned. */
export interface TokenInfo {
  readonly token_id: string;
  readonly issuer: string;
  readonly symbol: string;
  readonly decimals: number;
  readonly cap: number | null;
  readonly supply: number;
  readonly seq: number;
}

/** A required argument of an operation. */
export type HandleArgument = string | number | boolean;

/** What a runtime needs from its client (built by NucleusClient). */
export interface HandleTransport {
  readonly verifying: boolean;
  /** GET `path` as the requester, the answer parsed (errors rebuilt into their classes). */
  get(path: string): Promise<unknown>;
  /** The entries these server documents are, rebuilt, hashes recomputed, proven when verifying. */
  entries(docs: unknown[]): Promise<Entry[]>;
}

// Shapes: what an answer must look like ----------------------------------------------------------

/** @internal What an answer must look like. */
export type Shape =
  | { readonly kind: "any" | "null" | "string" | "integer" | "boolean" | "entry" }
  | { readonly kind: "enum"; readonly values: readonly string[] }
  | { readonly kind: "object"; readonly fields: ReadonlyMap<string, { shape: Shape; required: boolean }>; readonly strict: boolean }
  | { readonly kind: "array"; readonly items: Shape }
  | { readonly kind: "map"; readonly values: Shape }
  | { readonly kind: "optional"; readonly inner: Shape };

const ANY: Shape = { kind: "any" };
const NULL: Shape = { kind: "null" };
const STRING: Shape = { kind: "string" };
const INTEGER: Shape = { kind: "integer" };
const BOOLEAN: Shape = { kind: "boolean" };
const ENTRY: Shape = { kind: "entry" };
const optional = (inner: Shape): Shape => ({ kind: "optional", inner });
const listOf = (items: Shape): Shape => ({ kind: "array", items });
const mapOf = (values: Shape): Shape => ({ kind: "map", values });
const attrsOf = (fields: Record<string, Shape>): Shape => ({
  kind: "object", strict: true,
  fields: new Map(Object.entries(fields).map(([name, shape]) => [name, { shape, required: true }])),
});

const ENTRY_KEYS = ["seq", "hash", "prev_hash", "version", "appender", "auth_source", "committed_at", "record"];
const MAX_SCHEMA_DEPTH = 32;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * An entry in a result schema: the server's `{"$ref": "#/components/schemas/Entry"}`, or an inline
 * object schema with exactly the entry JSON's properties (and no other title than `Entry`).
 */
function isEntrySchema(schema: Record<string, unknown>): boolean {
  const ref = schema["$ref"];
  if (typeof ref === "string") return /(^|\/)Entry$/.test(ref);
  if (schema["title"] !== undefined && schema["title"] !== "Entry") return false;
  const properties = schema["properties"];
  if (!isObject(properties)) return false;
  const keys = Object.keys(properties);
  return keys.length === ENTRY_KEYS.length && ENTRY_KEYS.every((k) => k in properties);
}

/**
 * The shape a server's result schema describes (the closed set of types the server's handle
 * operations may return); a construct this client does not know is taken as any JSON value.
 */
function shapeOf(schema: unknown, depth = 0): Shape {
  if (!isObject(schema) || depth > MAX_SCHEMA_DEPTH) return ANY;
  if (isEntrySchema(schema)) return ENTRY;
  const alternatives = schema["anyOf"] ?? schema["oneOf"];
  if (Array.isArray(alternatives)) {
    const others = alternatives.filter((s) => !(isObject(s) && s["type"] === "null"));
    if (others.length === 1) {
      const inner = shapeOf(others[0], depth + 1);
      return others.length === alternatives.length ? inner : optional(inner);
    }
    return ANY;
  }
  const type = schema["type"];
  if (Array.isArray(type)) {
    const others = type.filter((t) => t !== "null");
    if (others.length !== 1) return ANY;
    const inner = shapeOf({ ...schema, type: others[0] }, depth + 1);
    return others.length === type.length ? inner : optional(inner);
  }
  const values = schema["enum"];
  if (Array.isArray(values)) {
    const strings = values.filter((v): v is string => typeof v === "string");
    if (strings.length === values.length) return { kind: "enum", values: strings };
    if (strings.length === values.length - 1 && values.includes(null)) return optional({ kind: "enum", values: strings });
    return ANY;
  }
  switch (type) {
    case "null": return NULL;
    case "string": return STRING;
    case "integer": return INTEGER;
    case "boolean": return BOOLEAN;
    case "array": return listOf(shapeOf(schema["items"], depth + 1));
    case "object": {
      const properties = schema["properties"];
      const extra = schema["additionalProperties"];
      if (isObject(properties)) {
        const required = Array.isArray(schema["required"]) ? schema["required"] : [];
        return {
          kind: "object", strict: extra === false,
          fields: new Map(Object.entries(properties).map(([name, s]) => [
            name, { shape: shapeOf(s, depth + 1), required: required.includes(name) },
          ])),
        };
      }
      return isObject(extra) ? mapOf(shapeOf(extra, depth + 1)) : ANY;
    }
    default: return ANY;
  }
}

/** `value` checked against `shape`; the entry documents in it collected in traversal order. */
function check(shape: Shape, value: unknown, where: string, entries: unknown[]): void {
  const wrong = (what: string): never => {
    throw new NucleusError(`the server's answer to ${where} is not ${what}`);
  };
  switch (shape.kind) {
    case "any": return;
    case "null": if (value !== null) wrong("null"); return;
    case "string": if (typeof value !== "string") wrong("a string"); return;
    case "integer": if (!Number.isSafeInteger(value)) wrong("an integer"); return;
    case "boolean": if (typeof value !== "boolean") wrong("a boolean"); return;
    case "entry": entries.push(value); return;
    case "enum":
      if (typeof value !== "string" || !shape.values.includes(value)) wrong(`one of ${shape.values.join(", ")}`);
      return;
    case "optional": if (value !== null) check(shape.inner, value, where, entries); return;
    case "array":
      if (!Array.isArray(value)) wrong("a list");
      (value as unknown[]).forEach((item, i) => check(shape.items, item, `${where}[${i}]`, entries));
      return;
    case "map":
      if (!isObject(value)) wrong("an object");
      for (const [key, item] of Object.entries(value as object)) check(shape.values, item, `${where}[${JSON.stringify(key)}]`, entries);
      return;
    case "object": {
      if (!isObject(value)) wrong("an object");
      const doc = value as Record<string, unknown>;
      for (const [name, field] of shape.fields) {
        if (!Object.hasOwn(doc, name)) {
          if (field.required) wrong(`an object with a field ${JSON.stringify(name)}`);
          continue;
        }
        check(field.shape, doc[name], `${where}.${name}`, entries);
      }
      if (shape.strict) {
        const extra = Object.keys(doc).find((k) => !shape.fields.has(k));
        if (extra !== undefined) {
          throw new NucleusError(`the server's answer to ${where} has a field ${JSON.stringify(extra)} its type does not have`);
        }
      }
      return;
    }
  }
}

/** `value` (checked) rebuilt with its entries replaced by the verified ones, in traversal order. */
function build(shape: Shape, value: unknown, entries: Iterator<Entry>): unknown {
  switch (shape.kind) {
    case "entry": return entries.next().value as Entry;
    case "optional": return value === null ? null : build(shape.inner, value, entries);
    case "array": return (value as unknown[]).map((item) => build(shape.items, item, entries));
    case "map":
      return Object.fromEntries(Object.entries(value as object).map(([k, v]) => [k, build(shape.values, v, entries)]));
    case "object":
      return Object.fromEntries(
        Object.entries(value as Record<string, unknown>).map(([k, v]) => {
          const field = shape.fields.get(k);
          return [k, field === undefined ? v : build(field.shape, v, entries)];
        }),
      );
    default: return value;
  }
}

// Operations ---------------------------------------------------------------------------------------

/** @internal */
export type ArgumentKind = "string" | "integer" | "boolean" | "any";

/** @internal */
export interface Param {
  readonly name: string;
  readonly kind: ArgumentKind;
  readonly required: boolean;
}

/** An answer check of a built-in operation (run when the client verifies): AnswerMismatchError if it fails. */
/** @internal */
export type AnswerCheck = (args: ReadonlyMap<string, HandleArgument>, result: unknown) => void;

/** @internal One operation as a handle calls it: its parameters and the shape of its answer. */
export interface Operation {
  readonly name: string;
  readonly params: readonly Param[];
  readonly result: Shape;
  readonly check?: AnswerCheck | undefined;
}

function argumentKind(schema: unknown): ArgumentKind {
  if (!isObject(schema)) return "any";
  const shape = shapeOf(schema);
  const inner = shape.kind === "optional" ? shape.inner : shape;
  return inner.kind === "string" || inner.kind === "integer" || inner.kind === "boolean" ? inner.kind : "any";
}

function checkArgument(where: string, param: Param, value: unknown): HandleArgument {
  const problem =
    param.kind === "string" ? (typeof value === "string" ? null : "must be a string")
      : param.kind === "integer" ? (Number.isSafeInteger(value) && (value as number) >= 0 ? null : "must be a non-negative integer")
        : param.kind === "boolean" ? (typeof value === "boolean" ? null : "must be true or false")
          : ["string", "number", "boolean"].includes(typeof value) ? null : "must be a string, a number or a boolean";
  if (problem !== null) throw new QueryError(`${where}: ${problem}`, { field: param.name });
  return value as HandleArgument;
}

/** The query arguments of one call: required ones positionally, then an optional options object. */
function callArguments(moduleId: string, operation: Operation, args: readonly unknown[]): Map<string, HandleArgument> {
  const where = `${moduleId}.${operation.name}`;
  const required = operation.params.filter((p) => p.required);
  const optionalParams = operation.params.filter((p) => !p.required);
  let positional = args;
  let options: Record<string, unknown> = {};
  const last = args[args.length - 1];
  if (args.length > required.length && (isObject(last) || last === undefined)) {
    positional = args.slice(0, -1);
    options = last ?? {};
  }
  const names = operation.params.map((p) => p.name).join(", ") || "nothing";
  if (positional.length !== required.length) {
    const missing = required[positional.length];
    throw new ValidationError(
      `${where} takes ${required.length} argument${required.length === 1 ? "" : "s"} (${required.map((p) => p.name).join(", ")}` +
      `${optionalParams.length ? `, then {${optionalParams.map((p) => p.name).join(", ")}}` : ""}), got ${positional.length}`,
      { field: missing?.name ?? "arguments" },
    );
  }
  const out = new Map<string, HandleArgument>();
  required.forEach((param, i) => out.set(param.name, checkArgument(where, param, positional[i])));
  for (const [name, value] of Object.entries(options)) {
    const param = optionalParams.find((p) => p.name === name);
    if (param === undefined) {
      throw new QueryError(`${where} has no optional argument ${JSON.stringify(name)} (it takes: ${names})`, { field: name });
    }
    if (value !== null && value !== undefined) out.set(name, checkArgument(where, param, value));
  }
  return out;
}

function queryString(args: ReadonlyMap<string, HandleArgument>): string {
  const parts = [...args].map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(String(value))}`);
  return parts.length ? `?${parts.join("&")}` : "";
}

/** `value` as one URL path segment. */
export function segment(value: string): string {
  return value === "." || value === ".." ? value.replaceAll(".", "%2E") : encodeURIComponent(value);
}

/** Python's repr of a plain string, as the Python error texts quote ids. */
function pyRepr(value: string): string {
  return /^[\x20-\x7e]*$/.test(value) && !value.includes("'") && !value.includes("\\") ? `'${value}'` : JSON.stringify(value);
}

function moduleError(moduleId: string, message: string): ModuleError {
  return new ModuleError(`module ${pyRepr(moduleId)}: ${message}`, { moduleId });
}

const shortName = (qualified: string): string => qualified.slice(qualified.lastIndexOf(".") + 1);

/**
 * A module's handle: its operations as methods (required arguments positionally, in declared
 * order, then an options object of the optional ones), each one `GET /modules/<id>/<name>`.
 */
export class ModuleHandle {
  readonly moduleId: string;
  /** What the server listed about the module when the handle was made. */
  readonly moduleInfo: ModuleInfo;
  readonly #transport: HandleTransport;
  readonly #operations: ReadonlyMap<string, Operation>;

  /** @internal Made by `client.runtime.getModule`. */
  constructor(info: ModuleInfo, transport: HandleTransport, operations: readonly Operation[]) {
    this.moduleId = info.id;
    this.moduleInfo = info;
    this.#transport = transport;
    this.#operations = new Map(operations.map((op) => [op.name, op]));
  }

  /** The names of the operations this handle can call (those the server lists). */
  get operationNames(): string[] {
    return [...this.#operations.keys()];
  }

  /**
   * Call operation `name` (`handle.callOperation("balance", "t1", "oid:acme:user:alice")`). An
   * operation the server does not list is a ModuleError naming those it does; ill-typed or
   * missing arguments are refused before anything is sent.
   */
  async callOperation(name: string, ...args: unknown[]): Promise<unknown> {
    const operation = this.#operations.get(name);
    if (operation === undefined) {
      const known = [...this.#operations.keys()].sort().join(", ") || "none";
      throw moduleError(this.moduleId, `the server lists no handle operation ${pyRepr(String(name))} (it offers: ${known})`);
    }
    const query = callArguments(this.moduleId, operation, args);
    const where = `${this.moduleId}.${operation.name}`;
    const doc = await this.#transport.get(`/modules/${segment(this.moduleId)}/${segment(operation.name)}${queryString(query)}`);
    if (!isObject(doc) || !Object.hasOwn(doc, "result") || Object.keys(doc).length !== 1) {
      throw new NucleusError(`the server's answer to ${where} is not {"result": ...}`);
    }
    const found: unknown[] = [];
    check(operation.result, doc["result"], where, found);
    const entries = found.length ? await this.#transport.entries(found) : [];
    const result = build(operation.result, doc["result"], entries[Symbol.iterator]());
    if (this.#transport.verifying && operation.check !== undefined) operation.check(query, result);
    return result;
  }
}

/** The handle of a module this client has no types for: its methods are the operations the server lists. */
export type GenericHandle = ModuleHandle & { readonly [operation: string]: unknown };

const RESERVED = new Set(["moduleId", "moduleInfo", "operationNames", "callOperation", "constructor", "then"]);

function genericHandle(info: ModuleInfo, transport: HandleTransport): GenericHandle {
  const operations: Operation[] = info.operations.map((op) => ({
    name: op.name,
    params: op.params.map((p) => ({ name: p.name, required: p.required, kind: argumentKind(p.schema) })),
    result: shapeOf(op.result),
  }));
  const handle = new ModuleHandle(info, transport, operations);
  for (const op of operations) {
    // A name the handle itself uses stays reachable through callOperation only.
    if (RESERVED.has(op.name) || op.name in handle) continue;
    Object.defineProperty(handle, op.name, {
      value: (...args: unknown[]) => handle.callOperation(op.name, ...args), enumerable: true,
    });
  }
  return handle as GenericHandle;
}

// Built-in modules -------------------------------------------------------------------------------

const PROOF_INFO = attrsOf({
  proof_id: STRING, subject: STRING, issuer: STRING, proof_type: STRING, target: STRING,
  expires_at: optional(INTEGER), revoked: BOOLEAN, seq: INTEGER,
});
const ASSET_INFO = attrsOf({
  asset_id: STRING, issuer: STRING, owner: STRING, asset_type: optional(STRING), status: STRING, seq: INTEGER,
});
const GRANT_INFO = attrsOf({
  grant_id: STRING, subject: STRING, app: STRING, scopes: listOf(STRING), expires_at: optional(INTEGER),
  revoked: BOOLEAN, seq: INTEGER,
});
const TOKEN_INFO = attrsOf({
  token_id: STRING, issuer: STRING, symbol: STRING, decimals: INTEGER, cap: optional(INTEGER), supply: INTEGER,
  seq: INTEGER,
});

const req = (name: string, kind: ArgumentKind = "string"): Param => ({ name, kind, required: true });
const opt = (name: string, kind: ArgumentKind): Param => ({ name, kind, required: false });
const op = (name: string, params: Param[], result: Shape, answerCheck?: AnswerCheck): Operation => ({
  name, params, result, check: answerCheck,
});

function payloadOf(entry: Entry): Record<string, unknown> {
  return isObject(entry.record.payload) ? entry.record.payload : {};
}

/**
 * The entries of a history must be in seq order, in `stream`, of the resource asked for (the
 * payload's `key` equal to the argument `key`), and pass `also`.
 */
function historyCheck(where: string, stream: string, key: string, also?: (entry: Entry, args: ReadonlyMap<string, HandleArgument>) => string | null): AnswerCheck {
  return (args, result) => {
    let last = 0;
    for (const entry of result as Entry[]) {
      const asked = args.get(key);
      const payload = payloadOf(entry);
      const why =
        entry.seq <= last ? `it comes after entry ${last}`
          : entry.record.stream !== stream ? `its stream is ${JSON.stringify(entry.record.stream)}`
            : payload[key] !== asked ? `its ${key} is ${JSON.stringify(payload[key])}, not ${JSON.stringify(asked)}`
              : also?.(entry, args) ?? null;
      if (why !== null) {
        throw new AnswerMismatchError(`the server's answer to ${where} holds entry ${entry.seq}, which is not one asked for: ${why}`, {
          seq: entry.seq,
        });
      }
      last = entry.seq;
    }
  };
}

/** The principals a token event involves (nucleus_module_token's `_parties`). */
function tokenParties(payload: Record<string, unknown>): unknown[] {
  switch (payload["type"]) {
    case "created": return [payload["issuer"]];
    case "minted": return [payload["to"]];
    case "transferred": return [payload["from"], payload["to"]];
    default: return [payload["from"]];
  }
}

const BUILT_IN = {
  proof: {
    handleType: "nucleus_module_proof.module.ProofModule",
    operations: [
      op("get", [req("proof_id")], optional(PROOF_INFO)),
      op("status", [req("proof_id"), opt("now_ms", "integer")], optional({ kind: "enum", values: Object.values(ProofStatus) })),
      op("by_subject", [req("subject")], listOf(PROOF_INFO)),
      op("by_issuer", [req("issuer")], listOf(PROOF_INFO)),
    ],
  },
  asset: {
    handleType: "nucleus_module_asset.module.AssetModule",
    operations: [
      op("get", [req("asset_id")], optional(ASSET_INFO)),
      op("owner", [req("asset_id")], optional(STRING)),
      op("history", [req("asset_id")], listOf(ENTRY), historyCheck("asset.history", "asset", "asset_id")),
      op("assets_of", [req("owner")], listOf(ASSET_INFO)),
    ],
  },
  connect_grant: {
    handleType: "nucleus_module_connect_grant.module.ConnectGrantModule",
    operations: [
      op("get", [req("grant_id")], optional(GRANT_INFO)),
      op("active_for_subject", [req("subject"), opt("now_ms", "integer")], listOf(GRANT_INFO)),
      op("active_for_app", [req("app"), opt("now_ms", "integer")], listOf(GRANT_INFO)),
    ],
  },
  token: {
    handleType: "nucleus_module_token.module.TokenModule",
    operations: [
      op("token", [req("token_id")], optional(TOKEN_INFO)),
      op("balance", [req("token_id"), req("holder")], INTEGER),
      op("holders", [req("token_id")], mapOf(INTEGER)),
      op("history", [req("token_id"), opt("holder", "string")], listOf(ENTRY), historyCheck(
        "token.history", "token", "token_id", (entry, args) => {
          const holder = args.get("holder");
          return holder === undefined || tokenParties(payloadOf(entry)).includes(holder)
            ? null : `it does not involve ${JSON.stringify(holder)}`;
        },
      )),
      op("transaction", [req("tx_id")], optional(ENTRY), (args, result) => {
        const entry = result as Entry | null;
        if (entry === null) return;
        const payload = payloadOf(entry);
        if (entry.record.stream !== "token" || payload["tx_id"] !== args.get("tx_id")) {
          throw new AnswerMismatchError(
            `asked for transaction ${JSON.stringify(args.get("tx_id"))}, the server answered entry ${entry.seq} of ` +
            `transaction ${JSON.stringify(payload["tx_id"])}`, { seq: entry.seq },
          );
        }
      }),
    ],
  },
} as const satisfies Record<string, { handleType: string; operations: readonly Operation[] }>;

type BuiltInId = keyof typeof BUILT_IN;

/** The proof module's handle (nucleus_module_proof.ProofModule). */
export class ProofHandle extends ModuleHandle {
  /** The proof, or null when unknown or unreadable. */
  get(proofId: string): Promise<ProofInfo | null> {
    return this.callOperation("get", proofId) as Promise<ProofInfo | null>;
  }

  /** The proof's status (at `now_ms`, default: the server's now), or null when unknown or unreadable. */
  status(proofId: string, options: { now_ms?: number | null } = {}): Promise<ProofStatus | null> {
    return this.callOperation("status", proofId, options) as Promise<ProofStatus | null>;
  }

  /** Readable proofs about `subject`, oldest first (revoked ones included). */
  by_subject(subject: string): Promise<ProofInfo[]> {
    return this.callOperation("by_subject", subject) as Promise<ProofInfo[]>;
  }

  /** Readable proofs issued by `issuer`, oldest first. */
  by_issuer(issuer: string): Promise<ProofInfo[]> {
    return this.callOperation("by_issuer", issuer) as Promise<ProofInfo[]>;
  }
}

/** The asset module's handle (nucleus_module_asset.AssetModule). */
export class AssetHandle extends ModuleHandle {
  /** The asset (issuer, owner, type, status), or null when unknown or unreadable. */
  get(assetId: string): Promise<AssetInfo | null> {
    return this.callOperation("get", assetId) as Promise<AssetInfo | null>;
  }

  /** The current owner's OID (also for a revoked asset), or null when unknown or unreadable. */
  owner(assetId: string): Promise<string | null> {
    return this.callOperation("owner", assetId) as Promise<string | null>;
  }

  /** The asset's readable entries in seq order, verified. */
  history(assetId: string): Promise<Entry[]> {
    return this.callOperation("history", assetId) as Promise<Entry[]>;
  }

  /** The active assets `owner` holds now (readable ones), by asset id. */
  assets_of(owner: string): Promise<AssetInfo[]> {
    return this.callOperation("assets_of", owner) as Promise<AssetInfo[]>;
  }
}

/** The connect grant module's handle (nucleus_module_connect_grant.ConnectGrantModule). */
export class ConnectGrantHandle extends ModuleHandle {
  /** The grant, or null when unknown or unreadable. */
  get(grantId: string): Promise<GrantInfo | null> {
    return this.callOperation("get", grantId) as Promise<GrantInfo | null>;
  }

  /** Readable grants `subject` gave that are neither revoked nor expired (at `now_ms`), oldest first. */
  active_for_subject(subject: string, options: { now_ms?: number | null } = {}): Promise<GrantInfo[]> {
    return this.callOperation("active_for_subject", subject, options) as Promise<GrantInfo[]>;
  }

  /** Readable grants given to `app` that are neither revoked nor expired (at `now_ms`), oldest first. */
  active_for_app(app: string, options: { now_ms?: number | null } = {}): Promise<GrantInfo[]> {
    return this.callOperation("active_for_app", app, options) as Promise<GrantInfo[]>;
  }
}

/** The token module's handle (nucleus_module_token.TokenModule). */
export class TokenHandle extends ModuleHandle {
  /** The token (issuer, symbol, decimals, cap, supply), or null. */
  token(tokenId: string): Promise<TokenInfo | null> {
    return this.callOperation("token", tokenId) as Promise<TokenInfo | null>;
  }

  /** `holder`'s balance of `tokenId` in the smallest unit (0 for an unknown or unreadable token). */
  balance(tokenId: string, holder: string): Promise<number> {
    return this.callOperation("balance", tokenId, holder) as Promise<number>;
  }

  /** Every holder with a positive balance, with the balance. */
  holders(tokenId: string): Promise<Record<string, number>> {
    return this.callOperation("holders", tokenId) as Promise<Record<string, number>>;
  }

  /** The token's readable entries in seq order (only those involving `holder` if given), verified. */
  history(tokenId: string, options: { holder?: string | null } = {}): Promise<Entry[]> {
    return this.callOperation("history", tokenId, options) as Promise<Entry[]>;
  }

  /** The entry that applied transaction `txId`, verified, or null. */
  transaction(txId: string): Promise<Entry | null> {
    return this.callOperation("transaction", txId) as Promise<Entry | null>;
  }
}

const HANDLE_CLASSES: Record<BuiltInId, typeof ModuleHandle> = {
  proof: ProofHandle, asset: AssetHandle, connect_grant: ConnectGrantHandle, token: TokenHandle,
};

// The runtime ------------------------------------------------------------------------------------

function strings(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === "string");
}

function operationFrom(doc: unknown): OperationInfo | null {
  if (!isObject(doc) || typeof doc["name"] !== "string" || !Array.isArray(doc["params"]) || !isObject(doc["result"])) return null;
  const params: ParamInfo[] = [];
  for (const p of doc["params"]) {
    if (!isObject(p) || typeof p["name"] !== "string" || typeof p["required"] !== "boolean") return null;
    params.push({ name: p["name"], required: p["required"], schema: isObject(p["schema"]) ? p["schema"] : {} });
  }
  return {
    name: doc["name"], summary: typeof doc["summary"] === "string" ? doc["summary"] : "",
    path: typeof doc["path"] === "string" ? doc["path"] : "", params, result: doc["result"],
  };
}

function moduleFrom(doc: unknown): ModuleInfo {
  const bad = (): never => {
    throw new NucleusError("the server's GET /modules answered a malformed module document");
  };
  if (!isObject(doc)) return bad();
  const { id, version, state, streams, depends_on: dependsOn, resource_kind: resourceKind } = doc;
  const handleTypes = doc["handle_types"] ?? [];
  const operations = (doc["operations"] ?? []) as unknown;
  if (
    typeof id !== "string" || typeof version !== "string" || typeof state !== "string" || !strings(streams) ||
    !strings(dependsOn) || !(resourceKind === null || typeof resourceKind === "string") || !strings(handleTypes) ||
    !Array.isArray(operations)
  ) return bad();
  const ops = operations.map(operationFrom);
  if (ops.includes(null)) return bad();
  return { id, version, state, streams, dependsOn, resourceKind, handleTypes, operations: ops as OperationInfo[] };
}

/** Options of {@link ModuleRuntime.getModule}. */
export interface GetModuleOptions {
  /**
   * The qualified class name (`<python module>.<class>`) the module must be, or derive from
   * (ModuleError "is a X, not a Y" otherwise), as Python's `runtime.get(id, Kind)`.
   */
  handleType?: string;
}

/**
 * The ledger's modules, read-only (`client.runtime`): their metadata and their handles. There is
 * no registration on the client: a server's modules are those its configuration enables.
 */
export class ModuleRuntime {
  readonly #transport: HandleTransport;

  /** @internal Made by NucleusClient. */
  constructor(transport: HandleTransport) {
    this.#transport = transport;
  }

  /** Every module of the served ledger, with its handle types and operations (`GET /modules`). */
  async listModules(): Promise<ModuleInfo[]> {
    const doc = await this.#transport.get("/modules");
    if (!isObject(doc) || !Array.isArray(doc["modules"])) throw new NucleusError("the server's GET /modules answered no module list");
    return doc["modules"].map(moduleFrom);
  }

  /** The ids of the served ledger's modules. */
  async list(): Promise<string[]> {
    return (await this.listModules()).map((m) => m.id);
  }

  /**
   * The handle of module `id`: typed for the built-in modules (a ModuleError "is a X, not a Y"
   * when the server's module of that id is another class), generic for any other. An id the
   * ledger does not enable is a ModuleError listing the known ones, as in Python.
   */
  getModule(id: "proof", options?: GetModuleOptions): Promise<ProofHandle>;
  getModule(id: "asset", options?: GetModuleOptions): Promise<AssetHandle>;
  getModule(id: "connect_grant", options?: GetModuleOptions): Promise<ConnectGrantHandle>;
  getModule(id: "token", options?: GetModuleOptions): Promise<TokenHandle>;
  getModule<T = GenericHandle>(id: string, options?: GetModuleOptions): Promise<T>;
  async getModule(id: string, options: GetModuleOptions = {}): Promise<unknown> {
    if (typeof id !== "string" || !id) throw new ValidationError("must be a non-empty module id", { field: "module_id" });
    if (!isObject(options)) throw new ValidationError("getModule's options must be an object", { field: "options" });
    const modules = await this.listModules();
    const info = modules.find((m) => m.id === id);
    if (info === undefined) {
      const known = modules.map((m) => m.id).sort().join(", ") || "none";
      throw moduleError(id, `is not enabled on this ledger (known modules: ${known})`);
    }
    const builtIn = Object.hasOwn(BUILT_IN, id) ? BUILT_IN[id as BuiltInId] : undefined;
    const wanted = [options.handleType, builtIn?.handleType].filter((t): t is string => t !== undefined);
    for (const kind of wanted) {
      if (!info.handleTypes.includes(kind)) {
        const actual = info.handleTypes[0];
        throw moduleError(
          id, actual === undefined
            ? `the server lists no handle types for it (a server without module handles), not a ${shortName(kind)}`
            : `is a ${shortName(actual)}, not a ${shortName(kind)}`,
        );
      }
    }
    if (builtIn === undefined) return genericHandle(info, this.#transport);
    // The client's own declaration of each operation, for those the server lists.
    const listed = new Set(info.operations.map((o) => o.name));
    const Handle = HANDLE_CLASSES[id as BuiltInId];
    return new Handle(info, this.#transport, builtIn.operations.filter((o) => listed.has(o.name)));
  }
}
