"""Write test/fixtures/vectors.json for the TypeScript client's unit tests, from the Python code.

Run from the repository root with the project installed: ``python clients/typescript/scripts/make_fixtures.py``.
It copies the FORMAT.md entry vectors (versions 1 and 2), computes canonical JSON cases with the
core's record encoder, RFC 9162 roots and proofs (inclusion, consistency, page multi-proofs) with
``nucleus_core.merkle``, and signs checkpoints with a fixed test key (``NoteSigner``), with the
tampered variants the verifier must refuse.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

from nucleus_core import merkle
from nucleus_core.checkpoint import CosignatureSigner, NoteSigner
from nucleus_core.records import Record
from nucleus_core.tlog_verify import Checkpoint, verify_consistency

ROOT = Path(__file__).resolve().parents[3]
OUT = Path(__file__).resolve().parents[1] / "test" / "fixtures" / "vectors.json"


def entry_vectors() -> dict[str, object]:
    v1 = json.loads((ROOT / "tests" / "data" / "format_vectors.json").read_text("utf-8"))
    v2 = json.loads((ROOT / "tests" / "data" / "format_vectors_v2.json").read_text("utf-8"))
    entries = []
    for ledger in v1["ledgers"]:
        for e in ledger["entries"]:
            entries.append({
                "ledger_id": ledger["ledger_id"], "seq": e["seq"], "version": 1, "appender": None,
                "auth_source": None, "committed_at": None, "record": e["record"],
                "canonical_hex": e["canonical_hex"], "prev_hash": e["prev_hash"],
                "preimage_hex": e["preimage_hex"], "hash": e["hash"],
            })
    for e in v2["entries"]:
        entries.append({
            "ledger_id": v2["ledger_id"], "seq": e["seq"], "version": e["version"], "appender": e["appender"],
            "auth_source": e["auth_source"], "committed_at": e["committed_at"], "record": e["record"],
            "canonical_hex": e["canonical_hex"], "prev_hash": e["prev_hash"],
            "preimage_hex": e["preimage_hex"], "hash": e["hash"],
        })
    return {"entries": entries}


def canonical_cases() -> list[dict[str, object]]:
    payloads: list[dict[str, Any] | list[Any]] = [
        {"b": 1, "a": [True, False, None], "c": {"z": "\u20ac", "y": "\U0001f600"}},
        {"\U0001f600": 1, "\uff61": 2, "a": 3, "\u00e9": 4},
        {"nums": [0.1, -0.0, 1e21, 1e-7, 5e-324, 2.0, 1e16, 333333333.3333333, 9007199254740991, -9007199254740991]},
        {"esc": "\"\\\b\t\n\f\r\x01\x1f\x7f/\u2028\u2029"},
        [1, "two", {"three": 3}],
    ]
    out = []
    for i, payload in enumerate(payloads):
        record = Record(id=f"c{i}", stream="notes", timestamp=1700000000000 + i, payload=payload)
        out.append({"record": json.loads(json.dumps(record.to_dict())), "canonical_hex": record.canonical.hex()})
    with_meta = Record(id="m", stream="notes", timestamp=1, payload={}, meta={})
    out.append({"record": with_meta.to_dict(), "canonical_hex": with_meta.canonical.hex()})
    return out


def merkle_vectors() -> dict[str, object]:
    leaves = [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(24)]
    store = merkle.MemoryNodeStore()
    for chunk in merkle.build_node_writes(leaves, chunk_nodes=100):
        store.write(chunk)
    roots = {n: merkle.root_hash(store, n).hex() for n in range(0, 25)}
    inclusion = []
    for n in range(1, 25):
        for i in range(n):
            inclusion.append({"index": i, "size": n, "proof": [h.hex() for h in merkle.inclusion_proof(store, i, n)]})
    consistency = []
    for n in range(1, 25):
        for m in range(1, n + 1):
            hashes = merkle.consistency_proof(store, m, n)
            verify_consistency(m, n, bytes.fromhex(roots[m]), bytes.fromhex(roots[n]), hashes)
            consistency.append({"first": m, "second": n, "proof": [h.hex() for h in hashes]})
    rng = random.Random(16)
    multi = []
    for _ in range(60):
        n = rng.randrange(1, 25)
        indices = sorted(rng.sample(range(n), rng.randrange(1, min(n, 12) + 1)))
        proof = merkle.multi_inclusion_proof(store, indices, n)
        multi.append({"indices": indices, "size": n, "proof": [h.hex() for h in proof]})
    return {
        "leaf_inputs": [leaf.hex() for leaf in leaves], "roots": roots, "inclusion": inclusion,
        "consistency": consistency, "multi": multi,
    }


def checkpoint_vectors() -> dict[str, object]:
    origin = "nucleus.invalid/fixtures"
    signer = NoteSigner(name=origin, seed=bytes(range(32)))
    other = NoteSigner(name=origin, seed=bytes(range(1, 33)))
    stranger = NoteSigner(name="example.com/other", seed=bytes(range(2, 34)))
    text = Checkpoint(origin=origin, size=7, root_hash=hashlib.sha256(b"root").digest()).text()
    good = text + "\n" + signer.sign(text).line()
    also_stranger = good + stranger.sign(text).line()
    forged = text + "\n" + signer.sign(text + "x").line()
    other_only = text + "\n" + other.sign(text).line()
    bad_size = text.replace("\n7\n", "\n07\n")
    return {
        "origin": origin, "vkey": signer.verifier.vkey, "other_vkey": other.verifier.vkey,
        "stranger_vkey": stranger.verifier.vkey, "size": 7, "root_hex": hashlib.sha256(b"root").hexdigest(),
        "good": good, "good_with_stranger": also_stranger,
        "refused": {
            "forged signature": forged,
            "signed by an untrusted key": other_only,
            "no blank line": good.replace("\n\n", "\n"),
            "no signature": text + "\n",
            "leading zero size": bad_size + "\n" + signer.sign(bad_size).line(),
            "carriage return": good.replace("\n", "\r\n", 1),
        },
    }


def cosignature_vectors() -> dict[str, object]:
    origin = "nucleus.invalid/fixtures"
    signer = NoteSigner(name=origin, seed=bytes(range(32)))
    witnesses = [CosignatureSigner(name=f"witness-{i}.example", seed=bytes([i + 7] * 32)) for i in range(3)]
    text = Checkpoint(origin=origin, size=7, root_hash=hashlib.sha256(b"root").digest()).text()
    signed = text + "\n" + signer.sign(text).line()
    lines = [w.cosign(text, 1_700_000_000 + i).line() for i, w in enumerate(witnesses)]
    other_text = Checkpoint(origin=origin, size=8, root_hash=hashlib.sha256(b"root").digest()).text()
    wrong = witnesses[1].cosign(other_text, 1_700_000_001).line()  # a cosignature of another checkpoint
    return {
        "witness_vkeys": [w.verifier.vkey for w in witnesses],
        "log_vkey": signer.verifier.vkey,
        "notes": {
            "none": signed,
            "one": signed + lines[0],
            "two": signed + lines[0] + lines[2],
            "three": signed + "".join(lines),
            "one and a bad one": signed + lines[0] + wrong,
        },
    }


def main() -> None:
    doc = {
        "generated_by": "clients/typescript/scripts/make_fixtures.py",
        "format": entry_vectors(), "canonical": canonical_cases(), "merkle": merkle_vectors(),
        "checkpoint": checkpoint_vectors(), "cosignature": cosignature_vectors(),
    }
    OUT.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", "utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
