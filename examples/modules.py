"""Modules and their handles: the proof module validates records in its stream and answers
questions about the state it derives from the chain.

    pip install nucleus-core nucleus-storage-sqlite nucleus-module-proof
    python examples/modules.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from nucleus_module_proof.module import ProofModule, ProofStatus

from nucleus_core import Record, RecordRejectedError, RequestContext, create_ledger

issuer = RequestContext(oid="oid:example:org:kyc-bureau", source="service")
subject = "oid:example:user:alice"
storage = f"sqlite:///{Path(tempfile.mkdtemp()) / 'modules.db'}"

with create_ledger(id="modules", storage=storage, plugins=["proof"]) as ledger:
    print("modules:", [(m.id, m.version, m.state.value, m.streams) for m in ledger.runtime.metadata()])
    proofs = ledger.runtime.get("proof", ProofModule)  # a typed handle

    issued = {
        "type": "issued",
        "subject": subject,
        "issuer": issuer.oid,
        "proof_type": "kyc",
        "target": "level-2",
        "data": {},
    }
    ledger.append(Record(id="proof-1", stream="proof", timestamp=1_763_942_400_000, payload=issued), issuer)
    print("status of proof-1:", proofs.status("proof-1", issuer))

    # The module refuses what breaks its rules; nothing is written.
    try:
        forged = {**issued, "issuer": "oid:example:org:someone-else"}
        ledger.append(Record(id="proof-2", stream="proof", timestamp=1_763_942_400_001, payload=forged), issuer)
    except RecordRejectedError as err:
        print("rejected:", err)

    revoked = {"type": "revoked", "proof_id": "proof-1", "by": issuer.oid}
    ledger.append(Record(id="proof-1-revoked", stream="proof", timestamp=1_763_942_400_002, payload=revoked), issuer)
    print("status after revocation:", proofs.status("proof-1", issuer))
    print("proofs about alice:", [p.proof_id for p in proofs.by_subject(subject, issuer)])
    # Three entries: the ledger's record of its plugins (stream _ledger), the proof and its revocation.
    assert ledger.length() == 3 and proofs.status("proof-1", issuer) is ProofStatus.REVOKED
