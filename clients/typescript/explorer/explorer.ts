/**
 * The ledger explorer served by `nucleus serve` at `/explorer` (docs/SERVER.md, "The explorer"):
 * sign in with a bearer token, browse the entries the requester may read, open one and see it
 * verified here with this package's client (its hash recomputed, its inclusion proven in the latest
 * signed checkpoint, that checkpoint's signature and consistency with the ones this browser saw
 * before, the witness quorum), and the checkpoints this browser verified. What is shown as an entry
 * is what the client's verified reads returned, never a separate raw answer. Anything that does not
 * verify is shown in red, naming the check that failed. Built into one ES module by
 * `npm run build:explorer` (scripts/build-explorer.mjs). Every value from the server is written
 * with `textContent`, never as HTML.
 */

import { blake3 } from "@noble/hashes/blake3.js";

import {
  AuthenticationError, CosignaturePolicy, LocalStorageTrustedState, NucleusError, bytesToHex, canonicalBytes,
  countCosignatures, createClient, entryHash, hexToBytes, leafHash, parseCosignatureVkey, parseVkey, rebuildError,
  verifyCheckpoint, verifyConsistency, verifyInclusion, type Checkpoint, type CosignatureVerifier, type Entry,
  type NucleusClient, type QueryFilters,
} from "../src/index.js";

const PAGE_SIZE = 50;
const HISTORY_LIMIT = 200;
const COVER_WAIT_MS = 10_000;
const TOKEN_KEY = "nucleus-explorer:token";
const PINNED_KEY = "nucleus-explorer:pinned-keys";
const ORIGIN_KEY = "nucleus-explorer:pinned-origin";
const WITNESSES_KEY = "nucleus-explorer:pinned-witnesses";
/** A short digest naming what was pinned (or given): the localStorage keys of what was trusted with it. */
const digest = (...parts: string[]): string => bytesToHex(blake3(new TextEncoder().encode(JSON.stringify(parts)))).slice(0, 32);
/** The trusted checkpoint and history are kept per (origin, verifier keys): what the notes are verified against. */
const trustId = (origin: string, keys: readonly string[]): string => digest(origin, ...[...keys].sort());
const trustedKey = (trust: string): string => `nucleus-explorer:trusted:${trust}`;
const historyKey = (trust: string): string => `nucleus-explorer:history:${trust}`;
/** Which ledger (id, origin) this browser trusted at this server address with these keys. */
const identityKey = (keys: readonly string[]): string => `nucleus-explorer:identity:${digest(BASE, ...[...keys].sort())}`;
const defaultOrigin = (ledgerId: string): string => `nucleus.invalid/${ledgerId}`;
/** Record timestamps go up to 2^53-1 ms; a Date holds 8.64e15 ms at most (toISOString throws above). */
const MAX_DATE_MS = 8.64e15;

/** The server's base URL: the explorer is served at `<base>/explorer`. */
const BASE = new URL(".", window.location.href).href.replace(/\/+$/, "");

type State = "ok" | "bad" | "pending" | "info";

/** What the server said at sign-in. */
interface ServerSide {
  token: string;
  oid: string;
  ledgerId: string;
  serverKeys: string[];
  /** GET /checkpoint/witnesses: null when the server configures none (404). */
  serverWitnesses: ServerWitnesses | null;
  /** Why the server's witness list could not be read, or null. */
  witnessesError: string | null;
}

interface ServerWitnesses {
  quorum: unknown;
  witnesses: Record<string, unknown>[];
}

interface PinnedWitnesses {
  quorum: number;
  vkeys: string[];
}

interface Session extends ServerSide {
  origin: string;
  originPinned: boolean;
  keys: string[];
  pinned: boolean;
  /** The k-of-n witness policy every checkpoint must meet (pinned, else the server's stated one); null: none. */
  policy: CosignaturePolicy | null;
  policySource: "pinned" | "server" | "none";
  /** Failures that make nothing verifiable in this session (a changed ledger identity, a bad witness policy). */
  problems: string[];
  trust: string;
  store: LocalStorageTrustedState;
  client: NucleusClient;
}

interface Seen {
  size: number;
  root: string;
  note: string;
  seen: number;
}

interface RawEntry {
  seq: number;
  hash: string;
  prev_hash: string;
  version: 1 | 2;
  appender: string | null;
  auth_source: string | null;
  committed_at: number | null;
  record: { id: string; stream: string; timestamp: number; payload: unknown; meta?: unknown };
}

let session: Session | null = null;
let filters: { stream?: string; cursor?: string } = {};
let nextCursor: string | null = null;
const streamsSeen = new Set<string>();
let generation = 0; // a view rendering bails out when a newer one started

// DOM -----------------------------------------------------------------------------------------
function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`the page has no #${id}`);
  return found as T;
}

function el(tag: string, props: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElement {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

function setStatus(node: HTMLElement, state: State, text: string): void {
  node.dataset["state"] = state;
  node.className = `status ${state}`;
  node.textContent = text;
}

function show(id: string, visible: boolean): void {
  byId(id).hidden = !visible;
}

function describe(err: unknown): string {
  if (err instanceof NucleusError) return `${err.name}: ${err.message}`;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

const short = (hex: string): string => `${hex.slice(0, 12)}…`;

/** A record timestamp (Unix ms) as ISO 8601, or the raw number when no Date holds it. */
function formatTime(ms: number): string {
  return Number.isSafeInteger(ms) && ms >= 0 && ms <= MAX_DATE_MS ? new Date(ms).toISOString() : `${String(ms)} (ms)`;
}
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// HTTP (the client does the verified reads; these are the raw ones of the per-check diagnosis) --
// Every request carries the token: the server authenticates it on public paths too, and a
// deployment may make none of the transparency paths public.
async function call(path: string, token: string, init: { method?: string; body?: unknown } = {}): Promise<Response> {
  const headers: Record<string, string> = { accept: "application/json", authorization: `Bearer ${token}` };
  const request: RequestInit = { method: init.method ?? "GET", headers, redirect: "manual", credentials: "omit" };
  if (init.body !== undefined) {
    headers["content-type"] = "application/json";
    request.body = JSON.stringify(init.body);
  }
  const response = await fetch(`${BASE}${path}`, request);
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

async function getJson(path: string, token: string, init: { method?: string; body?: unknown } = {}): Promise<unknown> {
  return (await call(path, token, init)).json();
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// sign-in -------------------------------------------------------------------------------------
async function signIn(token: string): Promise<void> {
  const error = byId("signin-error");
  error.hidden = true;
  let who: unknown;
  try {
    who = await getJson("/whoami", token);
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    error.hidden = false;
    error.textContent = err instanceof AuthenticationError
      ? `Sign-in failed: the server refused this token (${err.message}).`
      : `Sign-in failed: ${describe(err)}`;
    return;
  }
  const info = await getJson("/ledger", token);
  const oid = isObject(who) && typeof who["oid"] === "string" ? who["oid"] : "?";
  const ledgerId = isObject(info) && typeof info["ledger_id"] === "string" ? info["ledger_id"] : null;
  if (ledgerId === null) throw new NucleusError("the server's /ledger has no ledger_id");
  let serverKeys: string[] = [];
  try {
    serverKeys = (await (await call("/checkpoint/key", token)).text()).split("\n").filter((line) => line);
  } catch (err) {
    if (!(err instanceof NucleusError && err.status === 404)) throw err;
  }
  let serverWitnesses: ServerWitnesses | null = null;
  let witnessesError: string | null = null;
  try {
    serverWitnesses = serverWitnessesFrom(await getJson("/checkpoint/witnesses", token));
  } catch (err) {
    if (!(err instanceof NucleusError && err.status === 404)) witnessesError = describe(err);
  }
  session = makeSession({ token, oid, ledgerId, serverKeys, serverWitnesses, witnessesError });
  sessionStorage.setItem(TOKEN_KEY, token);
  byId("whoami").textContent = oid;
  byId("ledger-id").textContent = ledgerId;
  show("signin", false);
  show("session", true);
  renderKeys();
  await route();
}

function serverWitnessesFrom(doc: unknown): ServerWitnesses {
  if (!isObject(doc) || !Array.isArray(doc["witnesses"]) || !doc["witnesses"].every(isObject)) {
    throw new NucleusError("the server's /checkpoint/witnesses is not a witness list");
  }
  return { quorum: doc["quorum"], witnesses: doc["witnesses"] as Record<string, unknown>[] };
}

/** {@link signIn}, any failure shown as a sign-in error (and the token forgotten). */
function trySignIn(token: string): void {
  signIn(token).catch((err: unknown) => {
    sessionStorage.removeItem(TOKEN_KEY);
    const error = byId("signin-error");
    error.hidden = false;
    error.textContent = `Sign-in failed: ${describe(err)}`;
  });
}

function signOut(): void {
  sessionStorage.removeItem(TOKEN_KEY);
  session = null;
  filters = {};
  nextCursor = null;
  streamsSeen.clear();
  generation++;
  show("session", false);
  show("signin", true);
  byId<HTMLInputElement>("token").value = "";
}

function lines(text: string): string[] {
  return text.split("\n").map((line) => line.trim()).filter((line) => line);
}

function pinnedKeys(): string[] | null {
  const keys = lines(localStorage.getItem(PINNED_KEY) ?? "");
  return keys.length ? keys : null;
}

function pinnedOrigin(): string | null {
  const origin = (localStorage.getItem(ORIGIN_KEY) ?? "").trim();
  return origin ? origin : null;
}

function pinnedWitnesses(): PinnedWitnesses | null {
  try {
    const doc: unknown = JSON.parse(localStorage.getItem(WITNESSES_KEY) ?? "null");
    if (!isObject(doc) || typeof doc["quorum"] !== "number" || !Array.isArray(doc["vkeys"])) return null;
    return { quorum: doc["quorum"], vkeys: (doc["vkeys"] as unknown[]).map(String) };
  } catch {
    return null;
  }
}

interface Identity {
  ledgerId: string;
  origin: string;
}

function loadIdentity(keys: readonly string[]): Identity | null {
  try {
    const doc: unknown = JSON.parse(localStorage.getItem(identityKey(keys)) ?? "null");
    if (isObject(doc) && typeof doc["ledgerId"] === "string" && typeof doc["origin"] === "string") {
      return { ledgerId: doc["ledgerId"], origin: doc["origin"] };
    }
  } catch {
    // unreadable: as if none
  }
  return null;
}

function saveIdentity(keys: readonly string[], identity: Identity): void {
  localStorage.setItem(identityKey(keys), JSON.stringify(identity));
}

/** The witness policy of a session: the pinned one, else the one the server states, else none. */
function witnessPolicy(server: ServerSide): { policy: CosignaturePolicy | null; source: Session["policySource"]; problem: string | null } {
  const pinned = pinnedWitnesses();
  if (pinned !== null) {
    try {
      return { policy: CosignaturePolicy.fromVkeys(pinned.quorum, pinned.vkeys), source: "pinned", problem: null };
    } catch (err) {
      return { policy: null, source: "pinned", problem: `the pinned witness policy is not valid: ${(err as Error).message}` };
    }
  }
  if (server.witnessesError !== null) {
    return { policy: null, source: "server", problem: `the server's witness list could not be read: ${server.witnessesError}` };
  }
  const listed = server.serverWitnesses;
  if (listed === null) return { policy: null, source: "none", problem: null };
  try {
    const quorum = typeof listed.quorum === "number" ? listed.quorum : NaN;
    return { policy: CosignaturePolicy.fromVkeys(quorum, listed.witnesses.map((w) => String(w["vkey"]))), source: "server", problem: null };
  } catch (err) {
    return { policy: null, source: "server", problem: `the witness policy the server states is not valid: ${(err as Error).message}` };
  }
}

function makeSession(server: ServerSide): Session {
  const pinned = pinnedKeys();
  const keys = pinned ?? server.serverKeys;
  const fixedOrigin = pinnedOrigin();
  let origin = fixedOrigin ?? defaultOrigin(server.ledgerId);
  const problems: string[] = [];
  // Trust on first use of a ledger's identity at this address with these keys: a server that
  // later says it is another ledger is red, not a fresh start.
  const known = keys.length ? loadIdentity(keys) : null;
  if (keys.length && known === null) saveIdentity(keys, { ledgerId: server.ledgerId, origin });
  if (known !== null && (known.ledgerId !== server.ledgerId || known.origin !== origin)) {
    problems.push(
      `the server now says it is another ledger: this browser trusted ledger ${JSON.stringify(known.ledgerId)} (origin ` +
      `${JSON.stringify(known.origin)}) at this address with these keys, the server now says ${JSON.stringify(server.ledgerId)} ` +
      `(origin ${JSON.stringify(origin)}); "Forget what this browser trusted" to accept it as a new ledger`,
    );
    if (fixedOrigin === null) origin = known.origin; // keep verifying against what was trusted
  }
  const witnesses = witnessPolicy(server);
  if (witnesses.problem !== null) problems.push(witnesses.problem);
  const trust = trustId(origin, keys);
  const store = new LocalStorageTrustedState(trustedKey(trust));
  const client = createClient({
    url: BASE, token: server.token, ledgerId: server.ledgerId, origin, verifierKeys: keys,
    ...(keys.length ? { trustedState: store } : {}),
    ...(keys.length && witnesses.policy !== null ? { witnessPolicy: witnesses.policy } : {}),
  });
  return {
    ...server, origin, originPinned: fixedOrigin !== null, keys, pinned: pinned !== null, policy: witnesses.policy,
    policySource: witnesses.source, problems, trust, store, client,
  };
}

function renderKeys(): void {
  const s = session;
  if (s === null) return;
  const source = byId("key-source");
  const same = s.keys.length === s.serverKeys.length && s.keys.every((k) => s.serverKeys.includes(k));
  if (!s.keys.length) {
    setStatus(source, "bad", "none: this ledger signs no checkpoints, so nothing can be verified");
  } else if (s.pinned) {
    setStatus(source, same ? "ok" : "bad", same
      ? `${s.keys.length} pinned key(s), the same the server says it signs with`
      : `${s.keys.length} pinned key(s), NOT the ones the server says it signs with`);
  } else {
    setStatus(source, "info", "fetched from this server (proves consistency with what it says only; pin your operator's keys)");
  }
  byId("server-keys").textContent = s.serverKeys.join("\n") || "(none)";
  byId<HTMLTextAreaElement>("pinned-keys").value = s.pinned ? s.keys.join("\n") : "";
  setStatus(byId("origin-source"), "info", s.originPinned
    ? `${s.origin} (pinned)`
    : `${s.origin} (the default for the ledger id${s.origin === defaultOrigin(s.ledgerId) ? " the server states" : " this browser trusted"})`);
  byId<HTMLInputElement>("origin-input").value = s.originPinned ? s.origin : "";
  byId<HTMLInputElement>("origin-input").placeholder = defaultOrigin(s.ledgerId);
  const witnessSource = byId("witness-source");
  const policy = s.policy;
  if (policy === null && s.policySource === "none") setStatus(witnessSource, "info", "none configured by the server or pinned");
  else if (policy === null) setStatus(witnessSource, "bad", s.problems[s.problems.length - 1] ?? "no valid witness policy");
  else if (s.policySource === "pinned") setStatus(witnessSource, "ok", `${policy.quorum} of ${policy.witnesses.length} pinned witness key(s)`);
  else {
    setStatus(witnessSource, "info",
      `${policy.quorum} of ${policy.witnesses.length} witnesses, as the server states it (its claim: pin your witnesses' keys)`);
  }
  const pinnedW = pinnedWitnesses();
  byId<HTMLTextAreaElement>("pinned-witnesses").value = pinnedW === null ? "" : pinnedW.vkeys.join("\n");
  byId<HTMLInputElement>("witness-quorum").value = pinnedW === null ? "" : String(pinnedW.quorum);
  const identity = byId("identity-status");
  const changed = s.problems.find((p) => p.startsWith("the server now says it is another ledger"));
  identity.hidden = changed === undefined;
  if (changed !== undefined) setStatus(identity, "bad", changed);
}

function rebuildSession(): void {
  if (session === null) return;
  session = makeSession(session);
  renderKeys();
  void route();
}

function formError(id: string, message: string | null): void {
  const error = byId(id);
  error.hidden = message === null;
  error.textContent = message ?? "";
}

function pinKeys(): void {
  formError("keys-error", null);
  const keys = lines(byId<HTMLTextAreaElement>("pinned-keys").value);
  try {
    if (!keys.length) throw new Error("paste at least one key");
    for (const key of keys) {
      try {
        parseVkey(key);
      } catch (err) {
        throw new Error(`${JSON.stringify(key)} is not a checkpoint verifier key: ${(err as Error).message}`);
      }
    }
  } catch (err) {
    formError("keys-error", (err as Error).message);
    return;
  }
  localStorage.setItem(PINNED_KEY, keys.join("\n"));
  rebuildSession();
}

/** The user sets the origin (empty: the default): what this browser trusted with these keys follows. */
function pinOrigin(): void {
  const s = session;
  if (s === null) return;
  formError("origin-error", null);
  const origin = byId<HTMLInputElement>("origin-input").value.trim();
  if (/[\s\u0000-\u001f]/.test(origin)) {
    formError("origin-error", "an origin is one line without spaces (e.g. example.com/log)");
    return;
  }
  if (origin) localStorage.setItem(ORIGIN_KEY, origin);
  else localStorage.removeItem(ORIGIN_KEY);
  const known = s.keys.length ? loadIdentity(s.keys) : null;
  if (known !== null) saveIdentity(s.keys, { ...known, origin: origin || defaultOrigin(known.ledgerId) });
  rebuildSession();
}

function pinWitnesses(): void {
  formError("witness-error", null);
  const vkeys = lines(byId<HTMLTextAreaElement>("pinned-witnesses").value);
  const quorum = Number(byId<HTMLInputElement>("witness-quorum").value.trim() || String(vkeys.length));
  try {
    if (!vkeys.length) throw new Error("paste at least one witness key");
    for (const key of vkeys) {
      try {
        parseCosignatureVkey(key);
      } catch (err) {
        throw new Error(`${JSON.stringify(key)} is not a witness cosignature key: ${(err as Error).message}`);
      }
    }
    CosignaturePolicy.fromVkeys(quorum, vkeys);
  } catch (err) {
    formError("witness-error", (err as Error).message);
    return;
  }
  localStorage.setItem(WITNESSES_KEY, JSON.stringify({ quorum, vkeys }));
  rebuildSession();
}

/** Red status text when the session has a problem, else null. */
function sessionProblem(s: Session): string | null {
  if (!s.keys.length) return "this ledger signs no checkpoints: nothing can be verified";
  return s.problems.length ? s.problems.join("; ") : null;
}

// checkpoint history --------------------------------------------------------------------------
function loadHistory(trust: string): Seen[] {
  try {
    const doc: unknown = JSON.parse(localStorage.getItem(historyKey(trust)) ?? "[]");
    return Array.isArray(doc) ? (doc as Seen[]) : [];
  } catch {
    return [];
  }
}

/** Add the client's trusted checkpoint to the history, when it is a new one. */
async function recordTrusted(s: Session): Promise<Checkpoint | null> {
  if (!s.client.verifying) return null;
  const checkpoint = await s.client.trustedCheckpoint();
  const note = s.store.load();
  if (checkpoint === null || note === null) return checkpoint;
  const history = loadHistory(s.trust);
  const last = history[history.length - 1];
  if (last === undefined || last.size !== checkpoint.size) {
    history.push({ size: checkpoint.size, root: bytesToHex(checkpoint.rootHash), note, seen: Date.now() });
    localStorage.setItem(historyKey(s.trust), JSON.stringify(history.slice(-HISTORY_LIMIT)));
  }
  return checkpoint;
}

// entries -------------------------------------------------------------------------------------
function askedFilters(): QueryFilters {
  return { limit: PAGE_SIZE, ...(filters.stream ? { stream: filters.stream } : {}), ...(filters.cursor ? { cursor: filters.cursor } : {}) };
}

/**
 * One page of entries, from ONE verified read (the client's queryPage): the rows shown are the
 * entries it returned verified, nothing else; a page that does not verify shows no rows.
 */
async function showEntries(): Promise<void> {
  const s = session;
  if (s === null) return;
  const mine = ++generation;
  const status = byId("page-status");
  const rows = byId("entry-rows");
  setStatus(status, "pending", "loading and verifying…");
  rows.replaceChildren();
  const problem = sessionProblem(s);
  let entries: Entry[];
  let checkpoint: Checkpoint | null = null;
  try {
    const page = await s.client.queryPage(askedFilters());
    checkpoint = await recordTrusted(s);
    entries = page.entries;
    nextCursor = page.nextCursor;
  } catch (err) {
    if (mine !== generation) return;
    nextCursor = null;
    byId<HTMLButtonElement>("next-page").disabled = true;
    setStatus(status, "bad",
      `${problem === null ? "" : `verification FAILED: ${problem}; `}this page failed to verify (nothing of it is shown): ${describe(err)}`);
    return;
  }
  if (mine !== generation) return;
  for (const entry of entries) {
    streamsSeen.add(entry.record.stream);
    const link = el("a", { href: `#/entry/${entry.hash}`, "data-testid": "entry-link" }, entry.record.id);
    rows.append(el(
      "tr", { "data-testid": "entry-row", "data-record-id": entry.record.id, "data-seq": String(entry.seq) },
      el("td", {}, String(entry.seq)), el("td", {}, entry.record.stream), el("td", {}, link),
      el("td", { "data-testid": "entry-time" }, formatTime(entry.record.timestamp)), el("td", {}, el("code", {}, short(entry.hash))),
    ));
  }
  renderStreams();
  byId<HTMLButtonElement>("next-page").disabled = nextCursor === null;
  if (problem !== null) setStatus(status, "bad", `verification FAILED: ${problem}`);
  else if (!entries.length) setStatus(status, "info", "no entries you may read here");
  else {
    setStatus(status, "ok",
      `verified: the ${entries.length} entries of this page, each hash recomputed and proven in the signed checkpoint of ` +
      `${checkpoint?.size ?? "?"} entries${s.policy === null ? "" : ` cosigned by ${s.policy.quorum} witness(es)`}`);
  }
}

function renderStreams(): void {
  const list = byId("streams");
  list.replaceChildren();
  for (const stream of [...streamsSeen].sort()) {
    const link = el("a", { href: "#/entries", "data-testid": "stream-link", "data-stream": stream }, stream);
    link.addEventListener("click", () => {
      byId<HTMLInputElement>("stream-filter").value = stream;
      filters = { stream };
      void showEntries();
    });
    list.append(link, " ");
  }
}

// one entry -----------------------------------------------------------------------------------
interface Check {
  row: HTMLElement;
  set(state: State, detail: string): void;
}

function check(name: string, label: string): Check {
  const result = el("td", { "data-testid": `check-${name}-state` });
  const detail = el("td", { "data-testid": `check-${name}-detail` });
  const row = el("tr", { "data-testid": `check-${name}` }, el("th", {}, label), result, detail);
  byId("entry-checks").append(row);
  const set = (state: State, text: string): void => {
    row.dataset["state"] = state;
    result.className = `status ${state}`;
    result.textContent = { ok: "verified", bad: "FAILED", pending: "…", info: "—" }[state];
    detail.textContent = text;
  };
  set("pending", "");
  return { row, set };
}

function isRawEntry(value: unknown): value is RawEntry {
  return isObject(value) && typeof value["hash"] === "string" && typeof value["seq"] === "number" && isObject(value["record"]);
}

/**
 * An entry: each check run on the server's answers (to say which one fails), and the record shown
 * only as the client's verified `get(hash)` returned it (its hash the one asked for, recomputed,
 * proven in a trusted checkpoint meeting the witness policy).
 */
async function showEntry(hash: string): Promise<void> {
  const s = session;
  if (s === null) return;
  const mine = ++generation;
  byId("entry-title").textContent = short(hash);
  const status = byId("entry-status");
  setStatus(status, "pending", "verifying…");
  byId("entry-checks").replaceChildren();
  byId("entry-record").textContent = "";
  byId("entry-fields").textContent = "";
  setStatus(byId("entry-shown"), "pending", "");
  byId("entry-witnesses").replaceChildren();
  const failed: string[] = [];
  const problem = sessionProblem(s);
  if (problem !== null) check("session", "this ledger").set("bad", problem);
  if (s.problems.length) failed.push(...s.problems);
  const fail = (c: Check, what: string, detail: string): void => {
    c.set("bad", detail);
    failed.push(what);
  };
  let verified: Entry | null = null;
  const finish = (): void => {
    if (mine !== generation) return;
    if (verified === null) setStatus(byId("entry-shown"), "bad", "nothing shown: the client's verified read of this entry failed");
    if (failed.length) setStatus(status, "bad", `verification FAILED: ${failed.join("; ")}`);
    else setStatus(status, "ok", "verified");
  };

  // 1. The entry as the server answers it (the raw answer, for the checks below; never shown as the entry).
  const found = check("entry", "entry read");
  let raw: RawEntry;
  try {
    const doc = await getJson(`/entries/${encodeURIComponent(hash)}`, s.token);
    if (!isRawEntry(doc)) throw new NucleusError("the server's answer is not an entry");
    raw = doc;
  } catch (err) {
    fail(found, "the entry could not be read", describe(err));
    finish();
    return;
  }
  if (mine !== generation) return;
  if (raw.hash !== hash) {
    fail(found, "the server answered another entry", `asked for entry ${hash}, the server answered entry ${raw.hash} (seq ${raw.seq})`);
  } else {
    found.set("ok", `entry ${raw.seq} of stream ${String(raw.record.stream)}, readable by ${s.oid}`);
  }

  // 2. Its hash, recomputed from its fields and its record's canonical bytes.
  const hashed = check("hash", "hash recomputed");
  let recomputed: string | null = null;
  try {
    recomputed = entryHash(
      s.ledgerId, raw.seq, raw.prev_hash, canonicalBytes(raw.record as never), raw.version, raw.appender, raw.auth_source,
      raw.committed_at,
    );
    if (recomputed === raw.hash) hashed.set("ok", `BLAKE3 of the record and fields gives ${raw.hash}`);
    else fail(hashed, "hash mismatch", `the record and fields give ${recomputed}, the server says ${raw.hash}: the entry was changed`);
  } catch (err) {
    fail(hashed, "hash not computable", describe(err));
  }

  // 3. The latest signed checkpoint (meeting the witness policy), verified and related to the ones this browser trusted before.
  const signed = check("checkpoint", "signed checkpoint");
  let checkpoint: Checkpoint | null = null;
  try {
    if (!s.keys.length) throw new NucleusError("this ledger signs no checkpoints: nothing proves the entry is in the log");
    const deadline = Date.now() + COVER_WAIT_MS;
    checkpoint = await s.client.refresh();
    while (checkpoint.size < raw.seq && Date.now() < deadline) {
      await sleep(250);
      checkpoint = await s.client.refresh();
    }
    await recordTrusted(s);
    if (checkpoint.size < raw.seq) {
      fail(signed, "no checkpoint covers the entry", `the latest checkpoint has ${checkpoint.size} entries, not yet ${raw.seq}`);
      checkpoint = null;
    } else {
      signed.set("ok",
        `tree of ${checkpoint.size} entries, root ${bytesToHex(checkpoint.rootHash)}, origin ${s.origin}, signed by ` +
        `${s.pinned ? "a pinned key" : "the server's key"}${policyWords(s)} and consistent with this browser's earlier checkpoints`);
    }
  } catch (err) {
    fail(signed, "checkpoint", describe(err));
    checkpoint = null;
  }

  // 4. The inclusion proof of the (recomputed) entry hash in that checkpoint's tree.
  const included = check("inclusion", "inclusion proof");
  if (checkpoint === null || recomputed === null) {
    fail(included, "inclusion not proven", "no trusted checkpoint or entry hash to check it against");
  } else {
    try {
      const proof = await getJson(`/proof/inclusion?seq=${raw.seq}&size=${checkpoint.size}`, s.token);
      if (!isObject(proof) || proof["leaf_index"] !== raw.seq - 1 || proof["tree_size"] !== checkpoint.size || !Array.isArray(proof["hashes"])) {
        throw new NucleusError(`the server's proof is not one of leaf ${raw.seq - 1} in the tree of ${checkpoint.size}`);
      }
      const path = (proof["hashes"] as string[]).map((h) => hexToBytes(h));
      verifyInclusion(leafHash(hexToBytes(recomputed)), raw.seq - 1, checkpoint.size, path, checkpoint.rootHash);
      included.set("ok", `${path.length} hashes lead from the entry to the root of the checkpoint of ${checkpoint.size} entries`);
    } catch (err) {
      fail(included, "inclusion proof", describe(err));
    }
  }

  // 5. The client's own verified read: what is shown as the entry.
  const client = check("client", "client read");
  try {
    if (!s.client.verifying) throw new NucleusError("no verifier keys: the client cannot verify");
    const entry = await s.client.get(hash);
    if (entry === null) throw new NucleusError("the verified read found no such entry");
    if (entry.hash !== hash) throw new NucleusError(`asked for entry ${hash}, the client read entry ${entry.hash}`);
    await recordTrusted(s);
    if (mine !== generation) return;
    verified = entry;
    client.set("ok", "createClient(...).get(hash) returned it verified: it is what is shown below");
    byId("entry-record").textContent = JSON.stringify(entry.record, null, 2);
    byId("entry-fields").textContent = JSON.stringify({
      seq: entry.seq, hash: entry.hash, prev_hash: entry.prevHash, version: entry.version, appender: entry.appender,
      auth_source: entry.authSource, committed_at: entry.committedAt,
    }, null, 2);
    setStatus(byId("entry-shown"), failed.length ? "bad" : "ok", failed.length
      ? "as the client's verified read returned it (but the checks above failed)"
      : `as the client's verified read returned it (timestamp ${formatTime(entry.record.timestamp)})`);
  } catch (err) {
    fail(client, "client read", describe(err));
  }

  // 6. The witnesses' cosignatures on that checkpoint, against the witness policy in use.
  const witnessed = check("witnesses", "witness cosignatures");
  try {
    const note = checkpoint === null || s.policy === null ? null : await s.client.checkpoint(checkpoint.size);
    const result = await renderWitnesses(byId("entry-witnesses"), note, s);
    if (result.state === "bad") fail(witnessed, "witness quorum", result.text);
    else witnessed.set(result.state, result.text);
  } catch (err) {
    fail(witnessed, "witnesses", describe(err));
  }
  finish();
}

function policyWords(s: Session): string {
  const policy = s.policy;
  if (policy === null) return "";
  return `, cosigned by ${policy.quorum} of ${policy.witnesses.length} witnesses (${policyLabel(s)})`;
}

function policyLabel(s: Session): string {
  return s.policySource === "pinned"
    ? "your pinned witness policy"
    : "the witness policy the server states: its claim, with the keys it lists; pin your witnesses' keys";
}

/**
 * The witness policy in use and whether `note` (a checkpoint note the client verified, null when
 * none was) meets it: each witness's cosignature checked with the policy's key, the server's
 * status of it (when it lists it); the check's state and text.
 */
async function renderWitnesses(into: HTMLElement, note: string | null, s: Session): Promise<{ state: State; text: string }> {
  into.replaceChildren();
  const summary = (state: State, text: string): { state: State; text: string } => {
    into.dataset["summary"] = text;
    into.prepend(el("p", { "data-testid": "witness-summary", class: `status ${state}` }, text));
    return { state, text };
  };
  const policy = s.policy;
  if (policy === null) {
    if (s.policySource === "none") return summary("info", "this ledger has no witnesses configured, and none are pinned here");
    return summary("bad", `no witness quorum can be checked: ${s.problems.join("; ")}`);
  }
  // The server's status of its witnesses (informational: cosigned size, last error), read again now.
  let listed: Record<string, unknown>[] = [];
  try {
    listed = serverWitnessesFrom(await getJson("/checkpoint/witnesses", s.token)).witnesses;
  } catch {
    listed = [];
  }
  const byKey = new Map(listed.map((w) => [String(w["vkey"]), w]));
  const rows = el("tbody");
  let cosigned = 0;
  const broken: string[] = [];
  const row = (name: string, state: State, text: string, status: Record<string, unknown> | undefined): void => {
    rows.append(el(
      "tr", { "data-testid": "witness-row", "data-state": state }, el("td", {}, name), el("td", { class: `status ${state}` }, text),
      el("td", {}, status === undefined ? "not listed by the server" : `cosigned up to ${String(status["cosigned_size"])}`),
      el("td", {}, status?.["last_error"] ? `last error: ${String(status["last_error"])}` : ""),
    ));
  };
  for (const w of policy.witnesses as readonly CosignatureVerifier[]) {
    const status = byKey.get(w.vkey);
    const name = status === undefined ? w.name : String(status["name"]);
    let state: State = "info";
    let text = "no cosignature on the checkpoint";
    if (note === null) text = "no checkpoint meeting the policy was verified";
    else {
      try {
        if (countCosignatures(note, [w]) === 1) {
          state = "ok";
          text = "cosigned the checkpoint";
          cosigned++;
        }
      } catch (err) {
        state = "bad";
        text = `its cosignature does not verify: ${(err as Error).message}`;
        broken.push(`${name}: ${text}`);
      }
    }
    row(name, state, text, status);
  }
  for (const w of listed) {
    if (!policy.witnesses.some((p) => p.vkey === String(w["vkey"]))) {
      row(String(w["name"]), "info", "listed by the server, not in the pinned policy (not counted)", w);
    }
  }
  into.append(el("table", {}, rows));
  const label = policyLabel(s);
  if (broken.length) return summary("bad", broken.join("; "));
  if (note === null || cosigned < policy.quorum) {
    return summary("bad",
      `quorum not met: ${note === null ? "no verified checkpoint" : `${cosigned} of the ${policy.witnesses.length} witnesses`} ` +
      `cosigned, ${policy.quorum} required (${label}); ${policy.quorum - cosigned} cosignature(s) short`);
  }
  return summary("ok", `${cosigned} of ${policy.witnesses.length} witnesses cosigned the checkpoint (quorum ${policy.quorum}: ${label})`);
}

// checkpoints ---------------------------------------------------------------------------------
async function showCheckpoints(): Promise<void> {
  const s = session;
  if (s === null) return;
  const mine = ++generation;
  const status = byId("history-status");
  const rows = byId("history-rows");
  setStatus(status, "pending", "verifying…");
  rows.replaceChildren();
  byId("latest-note").textContent = "";
  const problems: string[] = [...s.problems];
  let latest: string | null = null;
  try {
    if (!s.keys.length) throw new NucleusError("this ledger signs no checkpoints");
    // The latest meeting the witness policy, verified, the trusted state moved forward to it; its note as served.
    const checkpoint = await s.client.refresh();
    latest = await s.client.checkpoint(checkpoint.size);
    await recordTrusted(s);
    byId("latest-note").textContent = latest;
  } catch (err) {
    problems.push(`the latest checkpoint: ${describe(err)}`);
  }
  if (mine !== generation) return;
  const history = loadHistory(s.trust);
  const verifiers = s.keys.map((key) => parseVkey(key));
  for (let i = 0; i < history.length; i++) {
    const seen = history[i] as Seen;
    let text = "signed";
    let state: State = "ok";
    try {
      const checkpoint = verifyCheckpoint(seen.note, verifiers, s.origin);
      if (checkpoint.size !== seen.size || bytesToHex(checkpoint.rootHash) !== seen.root) throw new Error("the note is not the one recorded");
      const before = history[i - 1];
      if (before !== undefined) {
        if (before.size > 0) {
          const doc = await getJson(`/proof/consistency?from=${before.size}&to=${seen.size}`, s.token);
          const hashes = isObject(doc) && Array.isArray(doc["hashes"]) ? (doc["hashes"] as string[]).map((h) => hexToBytes(h)) : [];
          verifyConsistency(before.size, seen.size, hexToBytes(before.root), hexToBytes(seen.root), hashes);
        }
        text = `signed; extends the checkpoint of ${before.size} entries`;
      }
    } catch (err) {
      state = "bad";
      text = describe(err);
      problems.push(`the checkpoint of ${seen.size} entries: ${text}`);
    }
    rows.prepend(el(
      "tr", { "data-testid": "history-row", "data-size": String(seen.size), "data-state": state },
      el("td", {}, String(seen.size)), el("td", {}, el("code", {}, seen.root)), el("td", {}, formatTime(seen.seen)),
      el("td", { class: `status ${state}` }, text),
    ));
  }
  try {
    const result = await renderWitnesses(byId("history-witnesses"), latest, s);
    if (result.state === "bad") problems.push(result.text);
  } catch (err) {
    problems.push(`witnesses: ${describe(err)}`);
  }
  if (mine !== generation) return;
  if (problems.length) setStatus(status, "bad", `verification FAILED: ${problems.join("; ")}`);
  else setStatus(status, "ok", `verified: ${history.length} checkpoint(s) seen by this browser, each extending the one before`);
}

// routing -------------------------------------------------------------------------------------
async function route(): Promise<void> {
  if (session === null) return;
  const hash = window.location.hash;
  const entry = /^#\/entry\/([0-9a-f]{64})$/.exec(hash);
  show("entries-view", !entry && hash !== "#/checkpoints");
  show("entry-view", entry !== null);
  show("checkpoints-view", hash === "#/checkpoints");
  try {
    if (entry !== null) await showEntry(entry[1] as string);
    else if (hash === "#/checkpoints") await showCheckpoints();
    else await showEntries();
  } catch (err) {
    const status = byId(entry !== null ? "entry-status" : hash === "#/checkpoints" ? "history-status" : "page-status");
    setStatus(status, "bad", `verification FAILED: ${describe(err)}`);
  }
}

function start(): void {
  show("signin", true);
  byId("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    trySignIn(byId<HTMLInputElement>("token").value.trim());
  });
  byId("signout").addEventListener("click", signOut);
  byId("filter-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const stream = byId<HTMLInputElement>("stream-filter").value.trim();
    filters = stream ? { stream } : {};
    if (window.location.hash.startsWith("#/entries") || window.location.hash === "") void showEntries();
    else window.location.hash = "#/entries";
  });
  byId("first-page").addEventListener("click", () => {
    filters = { ...(filters.stream ? { stream: filters.stream } : {}) };
    void showEntries();
  });
  byId("next-page").addEventListener("click", () => {
    if (nextCursor === null) return;
    filters = { ...filters, cursor: nextCursor };
    void showEntries();
  });
  byId("pin-keys").addEventListener("click", pinKeys);
  byId("unpin-keys").addEventListener("click", () => {
    localStorage.removeItem(PINNED_KEY);
    rebuildSession();
  });
  byId("pin-origin").addEventListener("click", pinOrigin);
  byId("pin-witnesses").addEventListener("click", pinWitnesses);
  byId("unpin-witnesses").addEventListener("click", () => {
    localStorage.removeItem(WITNESSES_KEY);
    rebuildSession();
  });
  byId("forget-trusted").addEventListener("click", () => {
    const s = session;
    if (s === null) return;
    // What this browser trusted with these keys: the ledger's identity, its checkpoint and history.
    localStorage.removeItem(trustedKey(s.trust));
    localStorage.removeItem(historyKey(s.trust));
    if (s.keys.length) localStorage.removeItem(identityKey(s.keys));
    rebuildSession();
  });
  window.addEventListener("hashchange", () => void route());
  byId("loading").hidden = true;
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token !== null) {
    trySignIn(token);
  }
}

start();
