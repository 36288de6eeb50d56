/**
 * The ledger explorer served by `nucleus serve` at `/explorer` (docs/SERVER.md, "The explorer"):
 * sign in with a bearer token, browse the entries the requester may read, open one and see it
 * verified here with this package's client (its hash recomputed, its inclusion proven in the latest
 * signed checkpoint, that checkpoint's signature and consistency with the ones this browser saw
 * before), the witnesses' cosignatures, and the checkpoints this browser verified. Anything that
 * does not verify is shown in red, naming the check that failed. Built into one ES module by
 * `npm run build:explorer` (scripts/build-explorer.mjs). Every value from the server is written
 * with `textContent`, never as HTML.
 */

import {
  AuthenticationError, LocalStorageTrustedState, NucleusError, bytesToHex, canonicalBytes, countCosignatures, createClient,
  entryHash, hexToBytes, leafHash, parseCosignatureVkey, parseVkey, rebuildError, verifyCheckpoint, verifyConsistency,
  verifyInclusion, type Checkpoint, type NucleusClient, type QueryFilters,
} from "../src/index.js";

const PAGE_SIZE = 50;
const HISTORY_LIMIT = 200;
const COVER_WAIT_MS = 10_000;
const TOKEN_KEY = "nucleus-explorer:token";
const PINNED_KEY = "nucleus-explorer:pinned-keys";
const trustedKey = (ledgerId: string): string => `nucleus-explorer:trusted:${ledgerId}`;
const historyKey = (ledgerId: string): string => `nucleus-explorer:history:${ledgerId}`;

/** The server's base URL: the explorer is served at `<base>/explorer`. */
const BASE = new URL(".", window.location.href).href.replace(/\/+$/, "");

type State = "ok" | "bad" | "pending" | "info";

interface Session {
  token: string;
  oid: string;
  ledgerId: string;
  origin: string;
  serverKeys: string[];
  keys: string[];
  pinned: boolean;
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
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// HTTP (the client does the verified reads; these are the raw ones shown before verification) --
async function call(path: string, token: string | null, init: { method?: string; body?: unknown } = {}): Promise<Response> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (token !== null) headers["authorization"] = `Bearer ${token}`;
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

async function getJson(path: string, token: string | null, init: { method?: string; body?: unknown } = {}): Promise<unknown> {
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
    serverKeys = (await (await call("/checkpoint/key", null)).text()).split("\n").filter((line) => line);
  } catch (err) {
    if (!(err instanceof NucleusError && err.status === 404)) throw err;
  }
  session = makeSession(token, oid, ledgerId, serverKeys);
  sessionStorage.setItem(TOKEN_KEY, token);
  byId("whoami").textContent = oid;
  byId("ledger-id").textContent = ledgerId;
  show("signin", false);
  show("session", true);
  renderKeys();
  await route();
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

function pinnedKeys(): string[] | null {
  const text = localStorage.getItem(PINNED_KEY);
  if (text === null) return null;
  const keys = text.split("\n").map((line) => line.trim()).filter((line) => line);
  return keys.length ? keys : null;
}

function makeSession(token: string, oid: string, ledgerId: string, serverKeys: string[]): Session {
  const pinned = pinnedKeys();
  const keys = pinned ?? serverKeys;
  const store = new LocalStorageTrustedState(trustedKey(ledgerId));
  const client = createClient({
    url: BASE, token, ledgerId, verifierKeys: keys, ...(keys.length ? { trustedState: store } : {}),
  });
  return { token, oid, ledgerId, origin: `nucleus.invalid/${ledgerId}`, serverKeys, keys, pinned: pinned !== null, store, client };
}

function renderKeys(): void {
  if (session === null) return;
  const source = byId("key-source");
  const same = session.keys.length === session.serverKeys.length && session.keys.every((k) => session?.serverKeys.includes(k));
  if (!session.keys.length) {
    setStatus(source, "bad", "none: this ledger signs no checkpoints, so nothing can be verified");
  } else if (session.pinned) {
    setStatus(source, same ? "ok" : "bad", same
      ? `${session.keys.length} pinned key(s), the same the server says it signs with`
      : `${session.keys.length} pinned key(s), NOT the ones the server says it signs with`);
  } else {
    setStatus(source, "info", "fetched from this server (proves consistency with what it says only; pin your operator's keys)");
  }
  byId("server-keys").textContent = session.serverKeys.join("\n") || "(none)";
  byId<HTMLTextAreaElement>("pinned-keys").value = session.pinned ? session.keys.join("\n") : "";
}

function rebuildSession(): void {
  if (session === null) return;
  session = makeSession(session.token, session.oid, session.ledgerId, session.serverKeys);
  renderKeys();
  void route();
}

function pinKeys(): void {
  const error = byId("keys-error");
  error.hidden = true;
  const keys = byId<HTMLTextAreaElement>("pinned-keys").value.split("\n").map((line) => line.trim()).filter((line) => line);
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
    error.hidden = false;
    error.textContent = (err as Error).message;
    return;
  }
  localStorage.setItem(PINNED_KEY, keys.join("\n"));
  rebuildSession();
}

// checkpoint history --------------------------------------------------------------------------
function loadHistory(ledgerId: string): Seen[] {
  try {
    const doc: unknown = JSON.parse(localStorage.getItem(historyKey(ledgerId)) ?? "[]");
    return Array.isArray(doc) ? (doc as Seen[]) : [];
  } catch {
    return [];
  }
}

/** Add the client's trusted checkpoint to the history, when it is a new one. */
async function recordTrusted(s: Session): Promise<Checkpoint | null> {
  const checkpoint = await s.client.trustedCheckpoint();
  const note = s.store.load();
  if (checkpoint === null || note === null) return checkpoint;
  const history = loadHistory(s.ledgerId);
  const last = history[history.length - 1];
  if (last === undefined || last.size !== checkpoint.size) {
    history.push({ size: checkpoint.size, root: bytesToHex(checkpoint.rootHash), note, seen: Date.now() });
    localStorage.setItem(historyKey(s.ledgerId), JSON.stringify(history.slice(-HISTORY_LIMIT)));
  }
  return checkpoint;
}

// entries -------------------------------------------------------------------------------------
function askedFilters(): QueryFilters {
  return { limit: PAGE_SIZE, ...(filters.stream ? { stream: filters.stream } : {}), ...(filters.cursor ? { cursor: filters.cursor } : {}) };
}

async function showEntries(): Promise<void> {
  const s = session;
  if (s === null) return;
  const mine = ++generation;
  const status = byId("page-status");
  const rows = byId("entry-rows");
  setStatus(status, "pending", "loading…");
  rows.replaceChildren();
  const body: Record<string, unknown> = { limit: PAGE_SIZE };
  if (filters.stream) body["stream"] = filters.stream;
  if (filters.cursor) body["cursor"] = filters.cursor;
  let doc: unknown;
  try {
    doc = await getJson("/entries/query", s.token, { method: "POST", body });
  } catch (err) {
    setStatus(status, "bad", `the server refused the query: ${describe(err)}`);
    return;
  }
  if (mine !== generation) return;
  const entries = (isObject(doc) && Array.isArray(doc["entries"]) ? doc["entries"] : []) as RawEntry[];
  nextCursor = isObject(doc) && typeof doc["next_cursor"] === "string" ? doc["next_cursor"] : null;
  for (const entry of entries) {
    streamsSeen.add(entry.record.stream);
    const link = el("a", { href: `#/entry/${entry.hash}`, "data-testid": "entry-link" }, entry.record.id);
    rows.append(el(
      "tr", { "data-testid": "entry-row", "data-record-id": entry.record.id, "data-seq": String(entry.seq) },
      el("td", {}, String(entry.seq)), el("td", {}, entry.record.stream), el("td", {}, link),
      el("td", {}, new Date(entry.record.timestamp).toISOString()), el("td", {}, el("code", {}, short(entry.hash))),
    ));
  }
  renderStreams();
  byId<HTMLButtonElement>("next-page").disabled = nextCursor === null;
  if (!entries.length) {
    setStatus(status, "info", "no entries you may read here");
    return;
  }
  setStatus(status, "pending", "verifying this page…");
  try {
    const page = await s.client.queryPage(askedFilters());
    const checkpoint = await recordTrusted(s);
    if (mine !== generation) return;
    setStatus(status, "ok",
      `verified: the ${page.entries.length} entries of this page, each hash recomputed and proven in the signed ` +
      `checkpoint of ${checkpoint?.size ?? "?"} entries`);
  } catch (err) {
    if (mine !== generation) return;
    setStatus(status, "bad", `this page failed to verify: ${describe(err)}`);
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
  byId("entry-witnesses").replaceChildren();
  const failed: string[] = [];
  const fail = (c: Check, what: string, detail: string): void => {
    c.set("bad", detail);
    failed.push(what);
  };
  const finish = (): void => {
    if (mine !== generation) return;
    if (failed.length) setStatus(status, "bad", `verification FAILED: ${failed.join("; ")}`);
    else setStatus(status, "ok", "verified");
  };

  // 1. The entry as the server stores it (raw, before any check).
  const found = check("entry", "entry read");
  let raw: RawEntry;
  try {
    raw = (await getJson(`/entries/${encodeURIComponent(hash)}`, s.token)) as RawEntry;
  } catch (err) {
    fail(found, "the entry could not be read", describe(err));
    finish();
    return;
  }
  if (mine !== generation) return;
  found.set("ok", `entry ${raw.seq} of stream ${raw.record.stream}, readable by ${s.oid}`);
  byId("entry-record").textContent = JSON.stringify(raw.record, null, 2);
  const { record: _record, ...fields } = raw;
  byId("entry-fields").textContent = JSON.stringify(fields, null, 2);

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

  // 3. The latest signed checkpoint, verified and related to the ones this browser trusted before.
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
        `tree of ${checkpoint.size} entries, root ${bytesToHex(checkpoint.rootHash)}, signed by ` +
        `${s.pinned ? "a pinned key" : "the server's key"} and consistent with this browser's earlier checkpoints`);
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

  // 5. The client's own verified read, which refuses anything above that does not hold.
  const client = check("client", "client read");
  try {
    const entry = await s.client.get(hash);
    if (entry === null) throw new NucleusError("the verified read found no such entry");
    await recordTrusted(s);
    client.set("ok", "createClient(...).get(hash) returned it verified");
  } catch (err) {
    fail(client, "client read", describe(err));
  }

  // 6. The witnesses' cosignatures on that checkpoint, as the server serves it now.
  const witnessed = check("witnesses", "witness cosignatures");
  try {
    const note = checkpoint === null ? null : await s.client.checkpoint(checkpoint.size);
    const problem = await renderWitnesses(byId("entry-witnesses"), note);
    if (problem === null) witnessed.set("info", byId("entry-witnesses").dataset["summary"] ?? "");
    else fail(witnessed, "witness cosignature", problem);
  } catch (err) {
    fail(witnessed, "witnesses", describe(err));
  }
  finish();
}

/**
 * The witness policy, each witness's state and whether it validly cosigned `note` (a verified
 * checkpoint note); a failure's text, or null.
 */
async function renderWitnesses(into: HTMLElement, note: string | null): Promise<string | null> {
  into.replaceChildren();
  let doc: unknown;
  try {
    doc = await getJson("/checkpoint/witnesses", null);
  } catch (err) {
    if (err instanceof NucleusError && err.status === 404) {
      into.dataset["summary"] = "this ledger has no witnesses configured";
      into.append(el("p", { "data-testid": "witness-summary" }, into.dataset["summary"]));
      return null;
    }
    throw err;
  }
  const quorum = isObject(doc) && typeof doc["quorum"] === "number" ? doc["quorum"] : 0;
  const witnesses = (isObject(doc) && Array.isArray(doc["witnesses"]) ? doc["witnesses"] : []) as Record<string, unknown>[];
  const rows = el("tbody");
  let cosigned = 0;
  let problem: string | null = null;
  for (const w of witnesses) {
    let state: State = "info";
    let text = "no cosignature on the checkpoint";
    try {
      if (note !== null && countCosignatures(note, [parseCosignatureVkey(String(w["vkey"]))]) === 1) {
        state = "ok";
        text = "cosigned the checkpoint";
        cosigned++;
      }
    } catch (err) {
      state = "bad";
      text = `its cosignature does not verify: ${(err as Error).message}`;
      problem ??= `${String(w["name"])}: ${text}`;
    }
    rows.append(el(
      "tr", { "data-testid": "witness-row" }, el("td", {}, String(w["name"])), el("td", { class: `status ${state}` }, text),
      el("td", {}, `cosigned up to ${String(w["cosigned_size"])}`),
      el("td", {}, w["last_error"] ? `last error: ${String(w["last_error"])}` : ""),
    ));
  }
  into.dataset["summary"] = `${cosigned} of ${witnesses.length} witnesses cosigned the checkpoint (quorum ${quorum}; ` +
    "witness keys as the server lists them)";
  into.append(el("p", { "data-testid": "witness-summary" }, into.dataset["summary"]), el("table", {}, rows));
  return problem;
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
  const problems: string[] = [];
  let latest: string | null = null;
  try {
    if (!s.keys.length) throw new NucleusError("this ledger signs no checkpoints");
    latest = await s.client.checkpoint(); // verified, and the trusted state moved forward to it
    await recordTrusted(s);
    byId("latest-note").textContent = latest;
  } catch (err) {
    problems.push(`the latest checkpoint: ${describe(err)}`);
  }
  if (mine !== generation) return;
  const history = loadHistory(s.ledgerId);
  const verifiers = s.keys.map((key) => parseVkey(key));
  const checks: string[] = [];
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
          const doc = await getJson(`/proof/consistency?from=${before.size}&to=${seen.size}`, null);
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
    checks.push(text);
    rows.prepend(el(
      "tr", { "data-testid": "history-row", "data-size": String(seen.size), "data-state": state },
      el("td", {}, String(seen.size)), el("td", {}, el("code", {}, seen.root)), el("td", {}, new Date(seen.seen).toISOString()),
      el("td", { class: `status ${state}` }, text),
    ));
  }
  try {
    const problem = await renderWitnesses(byId("history-witnesses"), latest);
    if (problem !== null) problems.push(problem);
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
  byId("forget-trusted").addEventListener("click", () => {
    if (session === null) return;
    localStorage.removeItem(trustedKey(session.ledgerId));
    localStorage.removeItem(historyKey(session.ledgerId));
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
