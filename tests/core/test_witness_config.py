"""The witnesses of a ledger's checkpoints in its configuration (``[ledger.checkpoint]``
``witnesses`` / ``witness_quorum`` / ``witness_timeout``, :mod:`nucleus_core.witnessing`): what is
accepted, every refusal at load with a message naming the fault, and what a ledger does with them
when it opens (workers only on a writable ledger that signs checkpoints)."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from nucleus_core import create_ledger
from nucleus_core.checkpoint import CosignatureSigner, NoteSigner
from nucleus_core.checkpoints import CheckpointConfig, checkpoint_config
from nucleus_core.config import structure_ledger_file
from nucleus_core.errors import ConfigurationError, NotFoundError, ValidationError
from nucleus_core.witnessing import MAX_WITNESSES, WitnessConfig

W1, W2, W3 = (CosignatureSigner.generate(f"w{i}.example") for i in (1, 2, 3))
LOG = NoteSigner.generate("nucleus.invalid/main")


def witness(signer: CosignatureSigner, port: int = 1, **more: Any) -> dict[str, Any]:
    return {"url": f"http://127.0.0.1:{port}/", "vkey": signer.vkey, **more}


def test_a_policy_of_two_of_three_from_toml() -> None:
    text = f"""
[ledger.checkpoint]
witness_quorum = 2
witness_timeout = 3.5

[[ledger.checkpoint.witnesses]]
url = "https://w1.example/witness"
vkey = "{W1.vkey}"
name = "first"
timeout = 1.5

[[ledger.checkpoint.witnesses]]
url = "http://127.0.0.1:8123"
vkey = "{W2.vkey}"

[[ledger.checkpoint.witnesses]]
url = "http://[::1]:8124/"
vkey = "{W3.vkey}"
"""
    section = structure_ledger_file(tomllib.loads(text)).ledger.checkpoint
    config = checkpoint_config(section.config())
    assert config.witness_quorum == 2 and config.witness_timeout == 3.5
    assert [w.url for w in config.witnesses] == ["https://w1.example/witness", "http://127.0.0.1:8123", "http://[::1]:8124/"]
    assert config.witnesses[0].name == "first" and config.witnesses[0].timeout == 1.5
    assert config.witnesses[1].name is None and config.witnesses[1].timeout is None
    assert config.witness_vkeys == (W1.vkey, W2.vkey, W3.vkey)
    assert config.witness_policy is not None and config.witness_policy.quorum == 2
    assert [v.vkey for v in config.witness_policy.witnesses] == [W1.vkey, W2.vkey, W3.vkey]
    assert config.witnesses[0].label == "first (https://w1.example/witness)"
    assert config.witnesses[1].label == "w2.example (http://127.0.0.1:8123)"


def test_no_witnesses_is_no_policy() -> None:
    assert CheckpointConfig().witnesses == () and CheckpointConfig().witness_policy is None
    section = structure_ledger_file({"ledger": {"checkpoint": {}}}).ledger.checkpoint
    assert checkpoint_config(section.config()).witness_policy is None


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"witness_quorum": 2, "witnesses": [witness(W1)]}, "witness_quorum must be an integer from 1 to 1"),
        ({"witness_quorum": 0, "witnesses": [witness(W1), witness(W2, 2)]}, "from 1 to 2"),
        ({"witness_quorum": -1, "witnesses": [witness(W1)]}, "from 1 to 1"),
        ({"witness_quorum": True, "witnesses": [witness(W1)]}, "not True"),
        ({"witnesses": [witness(W1), witness(W2, 2)]}, "without witness_quorum"),
        ({"witness_quorum": 1}, "no witness is configured"),
        ({"witness_quorum": 1, "witnesses": [witness(W1), witness(W1, 2)]}, "same public key"),
        ({"witness_quorum": 1, "witnesses": [witness(W1), witness(W2)]}, "same URL"),
        ({"witness_quorum": 1, "witnesses": [witness(W1), {**witness(W2), "url": "http://127.0.0.1:1"}]}, "same URL"),
        ({"witness_quorum": 1, "witnesses": [{"url": "ftp://w.example/", "vkey": W1.vkey}]}, "http:// or https://"),
        ({"witness_quorum": 1, "witnesses": [{"url": "http:///x", "vkey": W1.vkey}]}, "with a host"),
        ({"witness_quorum": 1, "witnesses": [{"url": "w.example", "vkey": W1.vkey}]}, "http:// or https://"),
        ({"witness_quorum": 1, "witnesses": [{"url": "http://w.example:99999/", "vkey": W1.vkey}]}, "port"),
        ({"witness_quorum": 1, "witnesses": [{"url": "http://w.example/?a=1", "vkey": W1.vkey}]}, "no query"),
        ({"witness_quorum": 1, "witnesses": [{"url": "http://u:p@w.example/", "vkey": W1.vkey}]}, "user info"),
        ({"witness_quorum": 1, "witnesses": [{"url": "http://w.example/a b", "vkey": W1.vkey}]}, "spaces"),
        ({"witness_quorum": 1, "witnesses": [witness(W1, vkey="junk")]}, "its vkey is not a cosignature verifier key"),
        ({"witness_quorum": 1, "witnesses": [witness(W1, vkey=LOG.vkey)]}, "type 0x04"),
        ({"witness_quorum": 1, "witnesses": [witness(W1, vkey=W1.vkey[:-2] + "AA")]}, "vkey"),
        ({"witness_quorum": 1, "witnesses": [witness(W1, timeout=0)]}, "timeout must be a number of seconds above 0"),
        ({"witness_quorum": 1, "witnesses": [witness(W1, timeout=1000)]}, "at most 300"),
        ({"witness_quorum": 1, "witnesses": [witness(W1, name="a name")]}, "witness name 'a name'"),
        ({"witness_quorum": 1, "witnesses": [witness(W1, color="red")]}, "unknown setting(s) color"),
        ({"witness_quorum": 1, "witnesses": [{"vkey": W1.vkey}]}, "witness 1: url required"),
        ({"witness_quorum": 1, "witnesses": ["http://w.example/"]}, "a witness is a table"),
        ({"witness_quorum": 1, "witnesses": witness(W1)}, "must be a list of witnesses"),
        ({"witness_quorum": 1, "witnesses": [witness(W1)], "witness_timeout": 0}, "witness_timeout must be"),
    ],
)
def test_bad_witness_settings_are_refused_naming_the_fault(settings: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        checkpoint_config(settings)
    assert problem in str(caught.value)


def test_too_many_witnesses_are_refused() -> None:
    many = [witness(CosignatureSigner.generate(f"w{i}.example"), i + 1) for i in range(MAX_WITNESSES + 1)]
    with pytest.raises(ConfigurationError, match=f"at most {MAX_WITNESSES} witnesses"):
        checkpoint_config({"witness_quorum": 1, "witnesses": many})


def test_two_keys_under_one_name_and_key_id_are_refused() -> None:
    one = WitnessConfig(url="http://127.0.0.1:1/", vkey=W1.vkey)
    assert one == WitnessConfig(url="http://127.0.0.1:1/", vkey=W1.vkey)
    with pytest.raises(ConfigurationError, match="same"):
        CheckpointConfig(witness_quorum=1, witnesses=[one, WitnessConfig(url="http://127.0.0.1:2/", vkey=W1.vkey)])


def test_toml_types_are_strict() -> None:
    for bad in (
        {"witness_quorum": "2", "witnesses": []},
        {"witnesses": [{"url": 1, "vkey": W1.vkey}]},
        {"witnesses": [{"url": "http://w/", "vkey": W1.vkey, "extra": 1}]},
    ):
        with pytest.raises(ConfigurationError):
            structure_ledger_file({"ledger": {"checkpoint": bad}})


def test_witnesses_need_a_signing_key() -> None:
    settings = {"key_env": None, "witness_quorum": 1, "witnesses": [witness(W1)]}
    with pytest.raises(ConfigurationError, match="no checkpoint signing key"):
        create_ledger(id="main", storage="memory://", checkpoint=settings)


def test_a_ledger_with_witnesses_and_none_reachable_still_writes_and_serves() -> None:
    settings = {"key_env": None, "signers": [LOG], "witness_quorum": 1, "witnesses": [witness(W1, timeout=2)]}
    from nucleus_core import Record, RequestContext

    alice = RequestContext(oid="oid:acme:user:alice", source="dev")
    with create_ledger(id="main", storage="memory://", checkpoint=settings) as ledger:
        assert ledger.witnessing is not None and ledger.witnessing.quorum == 1
        ledger.append(Record(id="a", stream="s", timestamp=1, payload={}), alice)
        assert ledger.witnessing.wait(30)
        (status,) = ledger.witness_status()
        assert status.vkey == W1.vkey and status.cosigned_size == 0 and status.submitted_size == 1
        assert status.last_error is not None and "127.0.0.1:1" in status.last_error
        note = ledger.checkpoint()
        assert note.count("\u2014 ") == 1  # the ledger's signature only
        with pytest.raises(NotFoundError, match="cosigned by 1 of its 1 witnesses"):
            ledger.checkpoint(cosigned=1)
        with pytest.raises(NotFoundError, match="size 1"):
            ledger.checkpoint(1, cosigned=1)
        assert ledger.checkpoint(cosigned=0) == note
        for bad in (2, -1, True, "1"):
            with pytest.raises(ValidationError, match="from 0 to 1"):
                ledger.checkpoint(cosigned=bad)  # type: ignore[arg-type]


def test_cosigned_needs_witnesses() -> None:
    with create_ledger(id="main", storage="memory://", checkpoint={"key_env": None, "signers": [LOG]}) as ledger:
        assert ledger.witnessing is None and ledger.witness_status() == ()
        with pytest.raises(ValidationError, match="no witnesses configured"):
            ledger.checkpoint(cosigned=1)
