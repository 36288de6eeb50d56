"""Authentication and access control: API keys turn into request contexts, the UAL decides what
each principal may read and write, and grants are themselves recorded in the chain.

    pip install nucleus-core nucleus-storage-sqlite nucleus-token-api-key nucleus-ual
    python examples/auth_ual.py
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from nucleus_core import AccessDeniedError, Record, create_ledger

os.environ.setdefault("EXAMPLE_API_KEY_PEPPER", secrets.token_urlsafe(32))  # a server-side secret
ROOT, ALICE, BOB = "oid:example:user:root", "oid:example:user:alice", "oid:example:user:bob"
storage = f"sqlite:///{Path(tempfile.mkdtemp()) / 'auth.db'}"

with create_ledger(
    id="auth",
    storage=storage,
    plugins=["auth.api_key", "ual"],
    settings={"auth.api_key": {"pepper_env": "EXAMPLE_API_KEY_PEPPER"}},
    admins=[ROOT],
) as ledger:
    keys = ledger.auth.parser("auth.api_key")
    tokens = {oid: keys.create_key(oid, name="example")[0] for oid in (ROOT, ALICE, BOB)}
    # What an HTTP server does with the bearer token of each request:
    root, alice, bob = (ledger.auth.authenticate(tokens[oid]) for oid in (ROOT, ALICE, BOB))
    print("authenticated:", root.oid, alice.oid, bob.oid, "via", alice.source)

    note = Record(id="alice-note", stream="notes", timestamp=1_763_942_400_000, payload={"text": "mine"})
    try:
        ledger.append(note, alice)
    except AccessDeniedError as err:
        print("denied before any grant:", err)

    ledger.acl.grant(
        [{"resource_kind": "stream:notes", "resource_id": "*", "principal_oid": ALICE, "scope": "write"}], root
    )
    ledger.append(note, alice)  # Alice created it, so she holds full on it
    print("alice sees:", [e.record.id for e in ledger.query({}, alice)])
    print("bob sees:  ", [e.record.id for e in ledger.query({}, bob)])

    ledger.acl.grant(
        [{"resource_kind": "stream:notes", "resource_id": "alice-note", "principal_oid": BOB, "scope": "read"}], alice
    )
    print("bob after alice's grant:", [e.record.id for e in ledger.query({}, bob)])
    print("bob may write it?", ledger.acl.check(bob, "write", ("stream:notes", "alice-note")))
    acl_log = ledger.query({"stream": "_acl"}, root)
    print("grant changes recorded in _acl:", [e.record.payload["op"] for e in acl_log])
    assert ledger.verify().ok and len(ledger.query({}, bob)) == 1
