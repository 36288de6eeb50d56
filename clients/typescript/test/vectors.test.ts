// Unit tests against test/fixtures/vectors.json (made by scripts/make_fixtures.py from the Python
// code): FORMAT.md entry vectors (versions 1 and 2), RFC 8785 cases, RFC 9162 proofs, signed notes.
import { readFileSync } from "node:fs";
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  bytesToHex, canonicalize, canonicalBytes, entryFromJson, entryHash, entryPreimage, hexToBytes, leafHash,
  verifyConsistency, verifyInclusion, verifyMultiInclusion, ProofError, parseVkey, verifyCheckpoint, NoteError,
  IntegrityError, EMPTY_ROOT, nodeHash, MemoryTrustedState, TrustedLog, RollbackError, InconsistentLogError,
  CheckpointSignatureError, TrustedStateError, LocalStorageTrustedState, CosignaturePolicy, parseCosignatureVkey,
  type LedgerRecord,
} from "../src/index.js";

interface EntryVector {
  ledger_id: string; seq: number; version: 1 | 2; appender: string | null; auth_source: string | null;
  committed_at: number | null; record: LedgerRecord; canonical_hex: string; prev_hash: string; preimage_hex: string;
  hash: string;
}
interface Proof { index?: number; size: number; first?: number; second?: number; indices?: number[]; proof: string[] }
interface Vectors {
  format: { entries: EntryVector[] };
  canonical: { record: LedgerRecord; canonical_hex: string }[];
  merkle: { leaf_inputs: string[]; roots: Record<string, string>; inclusion: Proof[]; consistency: Proof[]; multi: Proof[] };
  cosignature: { witness_vkeys: string[]; log_vkey: string; notes: Record<string, string> };
  checkpoint: {
    origin: string; vkey: string; other_vkey: string; stranger_vkey: string; size: number; root_hex: string;
    good: string; good_with_stranger: string; refused: Record<string, string>;
  };
}

const vectors = JSON.parse(
  readFileSync(new URL("../../test/fixtures/vectors.json", import.meta.url), "utf-8"),
) as Vectors;
const hashes = (list: string[]): Uint8Array[] => list.map(hexToBytes);

test("FORMAT.md vectors: canonical bytes, preimage and hash of every entry, both versions", () => {
  const versions = new Set<number>();
  for (const v of vectors.format.entries) {
    versions.add(v.version);
    const canonical = canonicalBytes(v.record);
    assert.equal(bytesToHex(canonical), v.canonical_hex, `${v.ledger_id} seq ${v.seq}`);
    const pre = entryPreimage(v.ledger_id, v.seq, v.prev_hash, canonical, v.version, v.appender, v.auth_source, v.committed_at);
    assert.equal(bytesToHex(pre), v.preimage_hex);
    assert.equal(entryHash(v.ledger_id, v.seq, v.prev_hash, canonical, v.version, v.appender, v.auth_source, v.committed_at), v.hash);
  }
  assert.deepEqual([...versions].sort(), [1, 2]);
  assert.ok(vectors.format.entries.length >= 10);
});

test("FORMAT.md worked examples", () => {
  const basic = vectors.format.entries.find((v) => v.ledger_id === "vectors-basic" && v.seq === 1);
  assert.equal(basic?.hash, "7be5e9f892ed7f63d1b656268372afcf6ff93198e8a0033b52e98a9704c1d985");
  const v2 = vectors.format.entries.find((v) => v.ledger_id === "vectors-v2" && v.seq === 3);
  assert.equal(v2?.hash, "3a953e74e05b84a5942fde2cdcac9cb5cb591792e20367ad4b9719b9dfdb5c81");
});

test("entries as the server sends them are rebuilt; any changed field is refused", () => {
  for (const v of vectors.format.entries) {
    const doc = {
      seq: v.seq, hash: v.hash, prev_hash: v.prev_hash, version: v.version, appender: v.appender,
      auth_source: v.auth_source, committed_at: v.committed_at, record: v.record,
    };
    assert.equal(entryFromJson(doc, v.ledger_id).hash, v.hash);
    assert.throws(() => entryFromJson(doc, `${v.ledger_id}x`), IntegrityError);
    assert.throws(() => entryFromJson({ ...doc, seq: v.seq + 1 }, v.ledger_id), IntegrityError);
    assert.throws(() => entryFromJson({ ...doc, record: { ...v.record, timestamp: v.record.timestamp + 1 } }, v.ledger_id), IntegrityError);
    assert.throws(() => entryFromJson({ ...doc, extra: 1 }, v.ledger_id), IntegrityError);
    if (v.version === 2) {
      assert.throws(() => entryFromJson({ ...doc, appender: "oid:acme:user:mallory" }, v.ledger_id), IntegrityError);
      assert.throws(() => entryFromJson({ ...doc, committed_at: (v.committed_at ?? 0) + 1 }, v.ledger_id), IntegrityError);
      assert.throws(() => entryFromJson({ ...doc, version: 1 }, v.ledger_id), IntegrityError);
    } else {
      assert.throws(() => entryFromJson({ ...doc, version: 2 }, v.ledger_id), IntegrityError);
    }
  }
});

test("RFC 8785 canonical JSON matches the Python encoder", () => {
  for (const c of vectors.canonical) assert.equal(bytesToHex(canonicalBytes(c.record)), c.canonical_hex);
  assert.equal(canonicalize({ b: [1e21, 1e-7, -0, 0.1, 5e-324, 2.0, 1e16] }), '{"b":[1e+21,1e-7,0,0.1,5e-324,2,10000000000000000]}');
  assert.equal(canonicalize({ "\u{1F600}": 1, "\uFF61": 2 }), '{"\u{1F600}":1,"\uFF61":2}');
  assert.throws(() => canonicalize({ a: NaN }));
  assert.throws(() => canonicalize({ a: "\uD800" }));
});

test("RFC 9162 roots, inclusion, consistency and page multi-proofs from the Python tree", () => {
  const m = vectors.merkle;
  const leaves = m.leaf_inputs.map((h) => leafHash(hexToBytes(h)));
  const root = (n: number): Uint8Array => hexToBytes(m.roots[String(n)] as string);
  assert.deepEqual(root(0), EMPTY_ROOT);
  for (const p of m.inclusion) {
    const index = p.index as number;
    verifyInclusion(leaves[index] as Uint8Array, index, p.size, hashes(p.proof), root(p.size));
    if (p.proof.length) {
      const bad = hashes(p.proof);
      const b0 = bad[0] as Uint8Array;
      b0[0] = (b0[0] as number) ^ 1;
      assert.throws(() => verifyInclusion(leaves[index] as Uint8Array, index, p.size, bad, root(p.size)), ProofError);
      assert.throws(() => verifyInclusion(leaves[index] as Uint8Array, index, p.size, hashes(p.proof).slice(1), root(p.size)), ProofError);
    }
    if (p.size > 1) {
      assert.throws(() => verifyInclusion(leaves[index] as Uint8Array, (index + 1) % p.size, p.size, hashes(p.proof), root(p.size)), ProofError);
    }
  }
  for (const p of m.consistency) {
    const first = p.first as number;
    const second = p.second as number;
    verifyConsistency(first, second, root(first), root(second), hashes(p.proof));
    if (first < second) {
      const forked = nodeHash(root(first), root(first));
      assert.throws(() => verifyConsistency(first, second, forked, root(second), hashes(p.proof)), ProofError);
      assert.throws(() => verifyConsistency(first, second, root(first), forked, hashes(p.proof)), ProofError);
      assert.throws(() => verifyConsistency(second, first, root(second), root(first), hashes(p.proof)), ProofError);
    }
  }
  for (const p of m.multi) {
    const indices = p.indices as number[];
    const given = indices.map((i) => leaves[i] as Uint8Array);
    verifyMultiInclusion(given, indices, p.size, hashes(p.proof), root(p.size));
    const swapped = given.map((leaf, i) => (i === 0 ? nodeHash(leaf, leaf) : leaf));
    assert.throws(() => verifyMultiInclusion(swapped, indices, p.size, hashes(p.proof), root(p.size)), ProofError);
    assert.throws(() => verifyMultiInclusion(given, indices, p.size, [...hashes(p.proof), root(p.size)], root(p.size)), ProofError);
  }
  // FORMAT.md's table: leaf inputs of 32 bytes of value i.
  const d = Array.from({ length: 8 }, (_, i) => leafHash(new Uint8Array(32).fill(i)));
  const mth = (xs: Uint8Array[]): Uint8Array => {
    if (xs.length === 1) return xs[0] as Uint8Array;
    let k = 1;
    while (k * 2 < xs.length) k *= 2;
    return nodeHash(mth(xs.slice(0, k)), mth(xs.slice(k)));
  };
  assert.equal(bytesToHex(mth(d.slice(0, 7))), "7318881c41fce3c1de3640df8e8c110c93f43f686b74204a9d1ad5b8c71c2047");
  verifyInclusion(d[3] as Uint8Array, 3, 7, hashes([
    "cba8c596120bdb69debbd923d92cba948bde7c7d06a465a1bb7d98d3116038fa",
    "28fb81e496897e0ce886f08602392e9239b65c659041e5202163e58ad898f444",
    "1f3f95843413191fe7521996b6b1e4147d703b1702c475a478ad25a6f6b415b4",
  ]), mth(d.slice(0, 7)));
});

test("signed checkpoints: the good note verifies; every refused variant is refused", () => {
  const c = vectors.checkpoint;
  const key = parseVkey(c.vkey);
  const checkpoint = verifyCheckpoint(c.good, [key], c.origin);
  assert.equal(checkpoint.size, c.size);
  assert.equal(bytesToHex(checkpoint.rootHash), c.root_hex);
  assert.equal(verifyCheckpoint(c.good_with_stranger, [key]).size, c.size); // an untrusted line is ignored
  assert.throws(() => verifyCheckpoint(c.good, [parseVkey(c.other_vkey)]), NoteError);
  assert.throws(() => verifyCheckpoint(c.good, [key], "example.com/another-log"), NoteError);
  for (const [why, note] of Object.entries(c.refused)) {
    assert.throws(() => verifyCheckpoint(note, [key], c.origin), NoteError, why);
  }
  assert.throws(() => parseVkey(c.vkey.replace(/\+[0-9a-f]{8}\+/, "+00000000+")), NoteError);
});

test("trusted state: the first checkpoint on its signature alone, a forged one refused, a bad stored state refused", async () => {
  const c = vectors.checkpoint;
  const log = new TrustedLog([parseVkey(c.vkey)], c.origin, new MemoryTrustedState());
  const noProof = async (): Promise<Uint8Array[]> => assert.fail("no proof is needed");
  assert.equal(await log.checkpoint(), null);
  assert.equal((await log.accept(c.good, noProof)).size, 7);
  assert.equal((await log.accept(c.good, noProof)).size, 7);
  await assert.rejects(log.accept(c.refused["forged signature"] as string, noProof), CheckpointSignatureError);
  const bad = new TrustedLog([parseVkey(c.vkey)], c.origin, new MemoryTrustedState("not a note"));
  await assert.rejects(bad.checkpoint(), TrustedStateError);
});

class MapStorage {
  readonly items = new Map<string, string>();
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.items.set(key, value);
  }
}

test("localStorage trusted state keeps the note and never moves back to a smaller one", () => {
  const c = vectors.checkpoint;
  const storage = new MapStorage();
  const store = new LocalStorageTrustedState("nucleus:fixtures", storage);
  assert.equal(store.load(), null);
  store.save(c.good);
  assert.equal(store.load(), c.good);
  assert.throws(() => store.save("not a note"), TrustedStateError);
  storage.setItem("nucleus:fixtures", "");
  assert.throws(() => store.load(), TrustedStateError);
  void RollbackError; void InconsistentLogError;
});

test("witness cosignatures from the Python witness keys: k of n counted, a bad trusted line refused", () => {
  const c = vectors.cosignature;
  const policy = CosignaturePolicy.fromVkeys(2, c.witness_vkeys);
  assert.throws(() => policy.check(c.notes["none"] as string), NoteError);
  assert.throws(() => policy.check(c.notes["one"] as string), NoteError);
  assert.equal(policy.check(c.notes["two"] as string), 2);
  assert.equal(policy.check(c.notes["three"] as string), 3);
  assert.throws(() => policy.check(c.notes["one and a bad one"] as string), /does not verify/);
  assert.equal(CosignaturePolicy.fromVkeys(1, c.witness_vkeys.slice(0, 1)).check(c.notes["one"] as string), 1);
  assert.throws(() => parseCosignatureVkey(c.log_vkey), NoteError); // a log's key is not a witness's
  assert.throws(() => CosignaturePolicy.fromVkeys(0, c.witness_vkeys), NoteError);
  assert.throws(() => CosignaturePolicy.fromVkeys(4, c.witness_vkeys), NoteError);
  assert.throws(() => CosignaturePolicy.fromVkeys(1, [c.witness_vkeys[0] as string, c.witness_vkeys[0] as string]), NoteError);
  assert.equal(verifyCheckpoint(c.notes["three"] as string, [parseVkey(c.log_vkey)]).size, 7); // cosignature lines ignored by the log check
});
