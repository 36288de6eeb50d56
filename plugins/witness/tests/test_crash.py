"""The witness killed with SIGKILL (``nucleus witness serve`` subprocesses) between writing its state
and answering, and at random moments, then restarted on the same state file: it never cosigns two
inconsistent checkpoints, and never cosigns a smaller tree or an earlier time after a larger one.
Every cosignature it ever returned is checked by the tests' own C2SP verifier, and the trees by
the reference's own Merkle tree hash of each history's entries."""

from __future__ import annotations

import random
import signal
import threading
import time
from types import ModuleType
from typing import Any

import pytest
from nucleus_witness.witness import FAULT_AFTER_COMMIT, FAULT_ENV

from nucleus_core.checkpoint import CosignatureSigner
from nucleus_core.tlog_witness import (
    WitnessBadRequestError,
    WitnessClient,
    WitnessConflictError,
    WitnessError,
    WitnessProofError,
    WitnessUnavailableError,
)


class Record:
    """Every cosignature a witness returned, in order: the checkpoint note with the line appended."""

    def __init__(self, ref: ModuleType, witness_key: CosignatureSigner, log_vkey: str) -> None:
        self.ref = ref
        self.witness_key = witness_key
        self.log_vkey = log_vkey
        self.cosigned: list[tuple[int, bytes, int]] = []  # size, root, timestamp

    def add(self, note: str, line: str) -> None:
        cosigned = note + line
        (timestamp,) = self.ref.cosignature_timestamps(cosigned, self.witness_key.vkey)
        body = self.ref.checkpoint(cosigned, self.log_vkey)
        self.cosigned.append((body.size, body.root, timestamp))

    def check(self, *histories: Any) -> None:
        """Every cosigned tree lies on one history (so no two are inconsistent), sizes and times
        never went back."""
        assert self.cosigned, "the witness cosigned nothing"
        on = [h for h in histories if all(root == self.ref.merkle_root(h.leaves[:n]) for n, root, _ in self.cosigned)]
        assert on, f"the cosigned trees are not all on one history: {[(s, r.hex()[:8]) for s, r, _ in self.cosigned]}"
        sizes = [size for size, _, _ in self.cosigned]
        times = [t for _, _, t in self.cosigned]
        assert sizes == sorted(sizes) and times == sorted(times)


def test_killed_after_committing_before_answering(
    histories: Any,
    witness_key: CosignatureSigner,
    log_key: Any,
    witness_config: Any,
    witness_process: Any,
    ref: ModuleType,
) -> None:
    honest = histories("honest").grow(3)
    fork = honest.fork("fork")  # shares the first 3 entries; the witness sees the honest 4 first
    honest.grow(1, tag="a")
    record = Record(ref, witness_key, log_key.vkey)
    config = witness_config()
    crashing = {FAULT_ENV: FAULT_AFTER_COMMIT}

    def healthy() -> Any:
        return witness_process(config)

    # The first checkpoint: committed, then the process dies without answering.
    process = witness_process(config, crashing)
    with WitnessClient(process.url, witness_key.verifier) as client, pytest.raises(WitnessUnavailableError):
        client.add_checkpoint(honest.checkpoint(), 0, [])
    assert process.wait_dead() == -signal.SIGKILL
    known = 0  # what the log knows the witness has: it never got an answer
    for step in range(4):
        process = healthy()
        with WitnessClient(process.url, witness_key.verifier) as client:
            # The log, not knowing, asks from its last known size: the witness says it moved.
            try:
                (line,) = client.add_checkpoint(honest.checkpoint(), known, honest.proof(known))
            except WitnessConflictError as conflict:
                assert conflict.size == honest.size  # the crashed process's commit is there
                (line,) = client.add_checkpoint(honest.checkpoint(), conflict.size, [])  # the same, again
            record.add(honest.checkpoint(), line.line())
            known = honest.size
            # The fork, from every size a dishonest log could claim: never cosigned.
            fork.grow(2, tag="b")
            for old in (known, 4, 0):
                with pytest.raises((WitnessProofError, WitnessConflictError)):
                    client.add_checkpoint(fork.checkpoint(), old, fork.proof(old) if old <= fork.size else [])
        assert process.stop() == 0
        # The next checkpoint with the crash after the commit again.
        honest.grow(1 + step, tag="a")
        process = witness_process(config, crashing)
        with WitnessClient(process.url, witness_key.verifier) as client, pytest.raises(WitnessUnavailableError):
            client.add_checkpoint(honest.checkpoint(), known, honest.proof(known))
        assert process.wait_dead() == -signal.SIGKILL
        # A fork submitted to a crashing witness right after: refused before anything is committed.
        process = witness_process(config, crashing)
        with WitnessClient(process.url, witness_key.verifier) as client:
            proof = fork.proof(honest.size) if honest.size <= fork.size else []
            with pytest.raises(WitnessError) as refused:
                client.add_checkpoint(fork.checkpoint(), honest.size, proof)
            assert not isinstance(refused.value, WitnessUnavailableError)  # it answered: nothing was committed
        assert process.stop() == 0
    record.check(honest, fork)
    assert record.cosigned[-1][0] < honest.size  # the last commit's cosignature was never returned...
    process = healthy()
    with WitnessClient(process.url, witness_key.verifier) as client, pytest.raises(WitnessConflictError) as info:
        client.add_checkpoint(honest.checkpoint(), known, honest.proof(known))
    assert info.value.size == honest.size  # ...but it was committed before the crash


@pytest.mark.slow
def test_killed_at_random_moments(
    histories: Any,
    witness_key: CosignatureSigner,
    log_key: Any,
    witness_config: Any,
    witness_process: Any,
    ref: ModuleType,
) -> None:
    rng = random.Random(14)
    honest = histories("honest").grow(3)
    fork = honest.fork("fork")  # shares the first 3 entries; honest is submitted first every time
    record = Record(ref, witness_key, log_key.vkey)
    config = witness_config()
    known = 0
    kills = 0
    while kills < 8:
        process = witness_process(config)
        killer = threading.Timer(rng.uniform(0.05, 0.6), process.proc.send_signal, (signal.SIGKILL,))
        killer.start()
        try:
            with WitnessClient(process.url, witness_key.verifier, timeout=30) as client:
                while True:
                    honest.grow(rng.randint(1, 3), tag="a")
                    fork.grow(rng.randint(1, 3), tag="b")
                    try:
                        (line,) = client.add_checkpoint(honest.checkpoint(), known, honest.proof(known))
                    except WitnessConflictError as conflict:  # a commit whose answer a kill lost
                        known = conflict.size
                        (line,) = client.add_checkpoint(honest.checkpoint(), known, honest.proof(known))
                    record.add(honest.checkpoint(), line.line())
                    known = honest.size
                    old = rng.choice([known, 0, 3])
                    proof = fork.proof(old) if old <= fork.size else []  # above the fork's size: a 400
                    try:
                        (forged,) = client.add_checkpoint(fork.checkpoint(), old, proof)
                    except (WitnessProofError, WitnessConflictError, WitnessBadRequestError):
                        continue
                    record.add(fork.checkpoint(), forged.line())  # cosigned a fork: check() will fail
        except WitnessUnavailableError:
            pass
        finally:
            killer.cancel()
        if process.proc.poll() is None:  # the request failed before the kill (it cannot, but be sure)
            process.proc.send_signal(signal.SIGKILL)
        assert process.close() == -signal.SIGKILL
        kills += 1
        time.sleep(rng.uniform(0, 0.05))
    record.check(honest, fork)
    assert len(record.cosigned) >= kills
