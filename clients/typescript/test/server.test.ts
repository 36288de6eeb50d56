// The client against a real `nucleus serve --dev` (see support/server.ts): reads and writes
// verified, and every tampering case the Python verifying client refuses, produced by a proxy
// rewriting the server's answers (or signing forged checkpoints with the server's own key).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";

import {
  AnswerMismatchError, CheckpointSignatureError, DuplicateRecordError, InclusionProofError, InconsistentLogError,
  IntegrityError, RollbackError, TokenInvalidError, AuthenticationError, ValidationError, ConfigurationError,
  createClient, entryHash, canonicalBytes, parseCheckpoint, parseNote, bytesToHex, MemoryTrustedState,
  CosignaturePolicy, WitnessPolicyError,
  type Entry, type LedgerRecord, type NucleusClient, type TrustedStateStore,
} from "../src/index.js";
import { FileTrustedState } from "../src/file-store.js";
import { nodeHttpFetch } from "../src/node-http.js";
import { makeWitness, startProxy, startServer, tamperEntry, type Answer, type Proxy, type Served } from "./support/server.js";

const TOKEN = "dev:oid:dev:user:alice";
let served: Served;
let proxy: Proxy;
let counter = 0;

const record = (stream = "notes", payload: LedgerRecord["payload"] = {}): LedgerRecord => ({
  id: `r${++counter}`, stream, timestamp: 1_700_000_000_000 + counter, payload,
});

before(async () => {
  served = await startServer();
  proxy = await startProxy(served.url);
});

after(async () => {
  await proxy?.close();
  await served?.stop();
});

function verifying(url = proxy.url, store: TrustedStateStore = new MemoryTrustedState()): NucleusClient {
  return createClient({ url, token: TOKEN, verifierKeys: [served.vkey], trustedState: store });
}

/** Rewrite the JSON answers of `method path` (path without query, exact or prefix with "*"). */
function rewriteJson(method: string, path: string, change: (doc: any) => unknown): void {
  proxy.rewrite = (m, p, answer): Answer => {
    const bare = p.split("?")[0] as string;
    const hit = path.endsWith("*") ? bare.startsWith(path.slice(0, -1)) : bare === path;
    if (m !== method || !hit || answer.status >= 400) return answer;
    return { ...answer, body: JSON.stringify(change(JSON.parse(answer.body))) };
  };
}

function rewriteCheckpoint(change: (note: string) => string): void {
  proxy.rewrite = (m, p, answer): Answer =>
    m === "GET" && p.split("?")[0] === "/checkpoint" && answer.status === 200 ? { ...answer, body: change(answer.body) } : answer;
}

const flip = (hex: string): string => (hex[0] === "0" ? "1" : "0") + hex.slice(1);

test("append, appendBatch, get, getById, query pages and checkpoints, verified against the real server", async () => {
  const client = verifying(served.url);
  assert.equal(client.verifying, true);
  const first = await client.append(record("notes", { text: "hello", n: 1.5, list: [1, "\u{1F600}", null] }));
  assert.equal(first.record.payload && (first.record.payload as { text: string }).text, "hello");
  assert.equal(first.version, 2);
  assert.equal(first.appender, "oid:dev:user:alice");
  const batch = await client.appendBatch(Array.from({ length: 60 }, (_, i) => record("notes", { i })));
  assert.equal(batch.length, 60);
  assert.deepEqual(batch.map((e) => e.seq), batch.map((_, i) => first.seq + 1 + i));
  assert.deepEqual(await client.get(first.hash), first);
  assert.deepEqual(await client.getById(batch[10]?.record.id as string), batch[10]);
  assert.equal(await client.get("0".repeat(64)), null);
  assert.equal(await client.getById("no-such-record"), null);

  const seen: Entry[] = [];
  let pages = 0;
  for await (const page of client.query({ stream: "notes", limit: 25 })) {
    pages++;
    assert.ok(page.entries.length <= 25);
    seen.push(...page.entries);
  }
  assert.equal(pages, 3);
  assert.deepEqual(seen.map((e) => e.hash), [first, ...batch].map((e) => e.hash));

  const note = await client.checkpoint();
  const trusted = await client.trustedCheckpoint();
  assert.equal(parseCheckpoint(parseNote(note).text).size, trusted?.size);
  assert.ok((trusted?.size ?? 0) >= 61);
  const report = await client.verify();
  assert.equal(report.ok, true);
  assert.ok(report.entriesChecked >= 61);

  // Without verifier keys: entry hashes still recomputed, no proofs asked.
  const plain = createClient({ url: served.url, token: TOKEN });
  assert.equal(plain.verifying, false);
  assert.deepEqual((await plain.queryPage({ recordIds: [first.record.id] })).entries, [first]);
  await assert.rejects(plain.trustedCheckpoint(), ConfigurationError);
});

test("over the node:http transport: the same reads verified, errors rebuilt, tampering refused", async () => {
  const client = createClient({ url: proxy.url, token: TOKEN, verifierKeys: [served.vkey], fetch: nodeHttpFetch() });
  const [a, b] = await client.appendBatch([record(), record()]);
  assert.deepEqual(await client.get(a?.hash as string), a);
  assert.deepEqual((await client.queryPage({ recordIds: [a?.record.id as string, b?.record.id as string] })).entries, [a, b]);
  await assert.rejects(client.append({ ...(a as Entry).record }), DuplicateRecordError);
  assert.equal(await client.getById("no-such-record"), null);
  rewriteJson("POST", "/proof/inclusion", (doc) => ({ ...doc, proofs: doc.proofs.map(() => null) }));
  await assert.rejects(client.getById(b?.record.id as string), InclusionProofError);
  proxy.rewrite = null;
});

test("the server's errors are rebuilt into the classes named as the Python ones", async () => {
  const client = verifying(served.url);
  const entry = await client.append(record());
  await assert.rejects(client.append({ ...entry.record }), (err: unknown) => {
    assert.ok(err instanceof DuplicateRecordError);
    assert.equal(err.code, "duplicate_record");
    assert.equal(err.recordId, entry.record.id);
    assert.equal(err.status, 409);
    return true;
  });
  const stranger = createClient({ url: served.url, token: "not-a-token" });
  await assert.rejects(stranger.getById(entry.record.id), (err: unknown) => err instanceof TokenInvalidError && err instanceof AuthenticationError);
  await assert.rejects(client.append({ ...record(), stream: "Bad Stream" }), ValidationError);
  // Refused before anything is sent (JSON.stringify would have sent null, undefined dropped):
  const before = (await client.verify()).entriesChecked;
  await assert.rejects(client.append(record("notes", { x: NaN })), ValidationError);
  await assert.rejects(client.append(record("notes", { x: undefined as unknown as number })), ValidationError);
  await assert.rejects(client.appendBatch([record(), record("notes", { when: new Date() as unknown as string })]), ValidationError);
  assert.equal((await client.verify()).entriesChecked, before);
  await assert.rejects(client.queryPage({ limit: 0 }), ValidationError);
  assert.throws(() => createClient({ url: "ftp://x", token: TOKEN }), ConfigurationError);
  assert.throws(() => createClient({ url: served.url, verifierKeys: ["nope"] }), ConfigurationError);
});

test("a file trusted state is kept across clients and holds the note as the Python client's does", async () => {
  const path = join(served.dir, "trusted.checkpoint");
  const one = verifying(served.url, new FileTrustedState(path));
  await one.append(record());
  const size = (await one.trustedCheckpoint())?.size;
  const saved = await readFile(path, "utf-8");
  assert.equal(parseCheckpoint(parseNote(saved).text).size, size);
  const two = createClient({ url: served.url, token: TOKEN, verifierKeys: [served.vkey], trustedState: new FileTrustedState(path) });
  assert.equal((await two.trustedCheckpoint())?.size, size);
  await two.refresh();
  // The Python client's FileTrustedState reads the same file.
  const python = process.env["NUCLEUS_PYTHON"] || "python3";
  const script = [
    "import sys",
    "from nucleus_core.trusted_state import FileTrustedState",
    "from nucleus_core.tlog_verify import parse_vkey, verify_checkpoint",
    "print(verify_checkpoint(FileTrustedState(sys.argv[1]).load(), [parse_vkey(sys.argv[2])]).size)",
  ].join("\n");
  const { stdout } = await promisify(execFile)(python, ["-c", script, path, served.vkey]);
  assert.equal(Number(stdout.trim()), (await two.trustedCheckpoint())?.size);
});

test("a changed entry is refused: its hash no longer matches", async () => {
  const client = verifying();
  const entry = await client.append(record("notes", { amount: 10 }));
  rewriteJson("GET", "/records/*", (doc) => ({ ...doc, record: { ...doc.record, payload: { amount: 1000 } } }));
  await assert.rejects(client.getById(entry.record.id), (err: unknown) => {
    assert.ok(err instanceof IntegrityError);
    assert.equal(err.reason, "hash mismatch");
    return true;
  });
  rewriteJson("GET", "/records/*", (doc) => ({ ...doc, seq: doc.seq + 1 }));
  await assert.rejects(client.getById(entry.record.id), IntegrityError);
  proxy.rewrite = null;
});

test("a changed entry with its hash recomputed is refused: it is in no trusted tree", async () => {
  const client = verifying();
  const entry = await client.append(record("notes", { amount: 10 }));
  const forged = { ...entry.record, payload: { amount: 1000 } };
  const hash = entryHash("default", entry.seq, entry.prevHash, canonicalBytes(forged), 2, entry.appender, entry.authSource, entry.committedAt);
  rewriteJson("GET", "/records/*", (doc) => ({ ...doc, hash, record: forged }));
  await assert.rejects(client.getById(entry.record.id), InclusionProofError);
  rewriteJson("POST", "/entries/query", (doc) => ({
    ...doc, entries: doc.entries.map((e: { seq: number }) => (e.seq === entry.seq ? { ...e, hash, record: forged } : e)),
  }));
  await assert.rejects(client.queryPage({ recordIds: [entry.record.id] }), InclusionProofError);
  proxy.rewrite = null;
  assert.equal((await client.getById(entry.record.id))?.hash, entry.hash);
});

test("a wrong inclusion proof (single reads) and a wrong page multi-proof are refused", async () => {
  const client = verifying();
  const entries = await client.appendBatch([record(), record(), record()]);
  const hashOf = entries[1]?.hash as string;
  rewriteJson("POST", "/proof/inclusion", (doc) => ({
    ...doc, proofs: doc.proofs.map((p: { hashes: string[] } | null) => p && { ...p, hashes: [flip(p.hashes[0] as string), ...p.hashes.slice(1)] }),
  }));
  await assert.rejects(client.get(hashOf), InclusionProofError);
  rewriteJson("POST", "/proof/inclusion", (doc) => ({ ...doc, proofs: doc.proofs.map(() => null) }));
  await assert.rejects(client.get(hashOf), InclusionProofError);
  rewriteJson("POST", "/entries/query", (doc) => ({ ...doc, proof: { ...doc.proof, hashes: doc.proof.hashes.map(flip) } }));
  await assert.rejects(client.queryPage({ recordIds: entries.map((e) => e.record.id) }), InclusionProofError);
  rewriteJson("POST", "/entries/query", (doc) => ({ ...doc, proof: undefined }));
  await assert.rejects(client.queryPage({ recordIds: entries.map((e) => e.record.id) }), InclusionProofError);
  proxy.rewrite = null;
  assert.equal((await client.queryPage({ recordIds: entries.map((e) => e.record.id) })).entries.length, 3);
});

test("a query page that does not match the query is refused", async () => {
  const client = verifying();
  const notes = await client.appendBatch([record("notes"), record("notes")]);
  const other = await createClient({ url: served.url, token: TOKEN }).append(record("other"));
  const otherDoc = await (await fetch(`${served.url}/records/${other.record.id}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json();
  const ids = [...notes.map((e) => e.record.id), other.record.id];
  rewriteJson("POST", "/entries/query", (doc) => ({ ...doc, entries: [...doc.entries, otherDoc] }));
  await assert.rejects(client.queryPage({ stream: "notes", recordIds: ids }), AnswerMismatchError);
  proxy.rewrite = null;
});

test("a bad checkpoint signature is refused and the trusted state stays", async () => {
  const client = verifying();
  await client.append(record());
  const before = await client.trustedCheckpoint();
  rewriteCheckpoint((note) => note.replace(/(\u2014 \S+ )(.)/, (_, head: string, c: string) => head + (c === "A" ? "B" : "A")));
  await assert.rejects(client.refresh(), CheckpointSignatureError);
  rewriteCheckpoint((note) => note.replace(/\n\n[\s\S]*$/, "\n\n") + "\u2014 someone-else AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n");
  await assert.rejects(client.refresh(), CheckpointSignatureError);
  proxy.rewrite = null;
  assert.deepEqual(await client.trustedCheckpoint(), before);
});

test("a rolled-back checkpoint (smaller than the trusted one) is refused", async () => {
  const client = verifying();
  await client.append(record());
  const old = await client.checkpoint();
  const oldSize = parseCheckpoint(parseNote(old).text).size;
  await client.append(record()); // waits for a checkpoint covering it: the trusted state moves forward
  const trusted = await client.trustedCheckpoint();
  assert.ok((trusted?.size ?? 0) > oldSize);
  rewriteCheckpoint(() => old);
  await assert.rejects(client.refresh(), (err: unknown) => {
    assert.ok(err instanceof RollbackError);
    assert.equal(err.trustedSize, trusted?.size);
    assert.equal(err.presentedSize, oldSize);
    return true;
  });
  proxy.rewrite = null;
  assert.deepEqual(await client.trustedCheckpoint(), trusted);
});

test("a forked checkpoint (validly signed, another history) is refused", async () => {
  const client = verifying();
  await client.append(record());
  const trusted = await client.trustedCheckpoint();
  assert.ok(trusted !== null);
  const forge = (size: number): string => {
    const root = Buffer.from(bytesToHex(new Uint8Array(32).fill(7)), "hex").toString("base64");
    const text = `${trusted.origin}\n${size}\n${root}\n`;
    return `${text}\n${served.signLine(text)}`;
  };
  rewriteCheckpoint(() => forge(trusted.size)); // same size, another root
  await assert.rejects(client.refresh(), InconsistentLogError);
  proxy.rewrite = null;
  // The real log grows behind the client's back; wait for the server's checkpoint of it.
  const other = createClient({ url: served.url, token: TOKEN });
  await other.appendBatch([record(), record()]);
  let real = parseCheckpoint(parseNote(await other.checkpoint()).text);
  for (let i = 0; i < 100 && real.size <= trusted.size; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    real = parseCheckpoint(parseNote(await other.checkpoint()).text);
  }
  assert.ok(real.size > trusted.size);
  assert.deepEqual(await client.trustedCheckpoint(), trusted);
  rewriteCheckpoint(() => forge(real.size)); // larger, but not an extension of the trusted tree
  await assert.rejects(client.refresh(), InconsistentLogError);
  // A genuine newer checkpoint with a wrong consistency proof is refused the same way.
  proxy.rewrite = (m, p, answer) => {
    if (m === "GET" && p.startsWith("/proof/consistency") && answer.status === 200) {
      const doc = JSON.parse(answer.body);
      return { ...answer, body: JSON.stringify({ ...doc, hashes: doc.hashes.map(flip) }) };
    }
    return answer;
  };
  await assert.rejects(client.refresh(), InconsistentLogError);
  proxy.rewrite = null;
  assert.equal((await client.refresh()).size >= real.size, true);
});

test("a witness policy: a checkpoint without the quorum's valid cosignatures is refused", async () => {
  const witness = makeWitness("witness.example");
  const stranger = makeWitness("stranger.example");
  const policy = CosignaturePolicy.fromVkeys(1, [witness.vkey]);
  const client = createClient({ url: proxy.url, token: TOKEN, verifierKeys: [served.vkey], witnessPolicy: policy });
  const cosigned = (by: typeof witness, textOf = (text: string) => text) => (note: string): string =>
    note + by.cosignLine(textOf(parseNote(note).text), 1_700_000_000);
  // The server has no witnesses: it refuses ?cosigned=1 and the client asks for its latest checkpoint.
  await assert.rejects(client.refresh(), WitnessPolicyError);
  rewriteCheckpoint(cosigned(stranger)); // cosigned, but not by a witness of the policy
  await assert.rejects(client.refresh(), WitnessPolicyError);
  rewriteCheckpoint(cosigned(witness, (text) => text.replace(/\n\d+\n/, "\n0\n"))); // a cosignature of another checkpoint
  await assert.rejects(client.refresh(), WitnessPolicyError);
  assert.equal(await client.trustedCheckpoint(), null);
  rewriteCheckpoint(cosigned(witness));
  const checkpoint = await client.refresh();
  const entry = await client.append(record()); // the checkpoint covering it must be cosigned too
  assert.ok(entry.seq > checkpoint.size);
  assert.ok(((await client.trustedCheckpoint())?.size ?? 0) >= entry.seq);
  assert.throws(() => createClient({ url: proxy.url, token: TOKEN, witnessPolicy: policy }), ConfigurationError);
  proxy.rewrite = null;
});

test("an entry changed in the database behind the server is refused, with or without its hash recomputed", async () => {
  // Last in this file: it leaves the server's ledger tampered with.
  const client = verifying(served.url);
  const [first, second] = await client.appendBatch([record("notes", { amount: 10 }), record("notes", { amount: 20 })]);
  const tamper = (entry: Entry, payload: LedgerRecord["payload"], rehash: boolean): Promise<void> =>
    tamperEntry(served, entry, payload, rehash);
  await tamper(first as Entry, { amount: 99 }, false);
  await assert.rejects(client.getById(first?.record.id as string), (err: unknown) => {
    assert.ok(err instanceof IntegrityError && err.reason === "hash mismatch");
    assert.equal(err.status, undefined); // found by the client, not reported by the server
    return true;
  });
  await tamper(second as Entry, { amount: 98 }, true); // the newest entry: no later prev_hash names it
  await assert.rejects(client.getById(second?.record.id as string), InclusionProofError);
  await assert.rejects(client.queryPage({ recordIds: [second?.record.id as string] }), InclusionProofError);
});
