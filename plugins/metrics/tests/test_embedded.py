"""An application embedding the ledger: its own registry, several ledgers in one, the plugin
counting into prometheus_client's default registry, all without a server."""

from __future__ import annotations

from pathlib import Path

import nucleus_metrics
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from nucleus_core import Record, RequestContext, create_ledger, open_ledger
from nucleus_core.errors import ConfigurationError, DuplicateRecordError

from .conftest import parse, value

CTX = RequestContext(oid="oid:test:user:embedder", source="app")


def records(prefix: str, count: int) -> list[Record]:
    return [Record(id=f"{prefix}{i}", stream="s", timestamp=1, payload={"i": i}) for i in range(count)]


def test_an_application_registry_counts_its_ledgers() -> None:
    registry = CollectorRegistry()
    one = create_ledger(id="one", storage="memory://")
    two = create_ledger(id="two", storage="memory://")
    observer = nucleus_metrics.instrument(one, registry=registry)
    assert nucleus_metrics.instrument(one, registry=registry) is observer  # once per registry
    nucleus_metrics.instrument(two, registry=registry)
    for record in records("a", 7):
        one.append(record, CTX)
    one.append_batch(records("b", 5), CTX)
    with pytest.raises(DuplicateRecordError):
        one.append(records("a", 1)[0], CTX)
    two.append_batch(records("c", 2), CTX)
    assert one.verify().ok
    samples = parse(generate_latest(registry).decode())
    assert value(samples, "nucleus_appends_total", ledger="one", outcome="ok") == 8
    assert value(samples, "nucleus_appends_total", ledger="one", outcome="duplicate_record") == 1
    assert value(samples, "nucleus_appended_records_total", ledger="one") == 12
    assert value(samples, "nucleus_append_batch_size_bucket", ledger="one", le="1.0") == 7
    assert value(samples, "nucleus_append_batch_size_bucket", ledger="one", le="5.0") == 8
    assert value(samples, "nucleus_appended_records_total", ledger="two") == 2
    assert value(samples, "nucleus_verifications_total", ledger="one", outcome="ok") == 1
    assert value(samples, "nucleus_storage_errors_total", ledger="one", operation="append", kind="conflict") == 0
    assert value(samples, "nucleus_ledgers_open") == 2
    one.close()
    two.close()
    assert value(parse(generate_latest(registry).decode()), "nucleus_ledgers_open") == 0


def test_the_plugin_counts_into_the_default_registry() -> None:
    def appended() -> float:
        return REGISTRY.get_sample_value("nucleus_appended_records_total", {"ledger": "by-plugin"}) or 0.0

    with create_ledger(id="by-plugin", storage="memory://", plugins=["metrics"]) as ledger:
        ledger.append_batch(records("p", 3), CTX)
        source = ledger.observers.exposition()
        assert source is not None
        body, content_type = source.exposition()
        assert appended() == 3
    assert content_type.startswith("text/plain") and b"nucleus_appended_records_total" in body
    assert appended() == 0  # closed: its series left the registry


def test_a_registry_must_be_a_prometheus_registry() -> None:
    with create_ledger(id="bad", storage="memory://") as ledger, pytest.raises(ConfigurationError, match="registry"):
        nucleus_metrics.instrument(ledger, registry=object())  # type: ignore[arg-type]


def test_the_verification_on_open_is_counted(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'ledger.db'}"
    with create_ledger(id="reopened", storage=storage) as ledger:
        ledger.append_batch(records("v", 4), CTX)
    registry = CollectorRegistry()
    with open_ledger(id="reopened", storage=storage) as ledger:
        # Instrumented after the open: the run the open made is counted at once, with its entries.
        nucleus_metrics.instrument(ledger, registry=registry)
        samples = parse(generate_latest(registry).decode())
        assert value(samples, "nucleus_verifications_total", ledger="reopened", outcome="ok") == 1
        assert value(samples, "nucleus_verification_duration_seconds_count", ledger="reopened") == 1
        nucleus_metrics.instrument(ledger, registry=registry)  # the same observer: not counted again
        assert ledger.verify().ok
        samples = parse(generate_latest(registry).decode())
        assert value(samples, "nucleus_verifications_total", ledger="reopened", outcome="ok") == 2
    # Opened without verification: no run to count.
    with open_ledger(id="reopened", storage=storage, verify_on_open=False) as ledger:
        nucleus_metrics.instrument(ledger, registry=registry)
        samples = parse(generate_latest(registry).decode())
        assert value(samples, "nucleus_verifications_total", ledger="reopened", outcome="ok") == 0


def test_system_appends_are_counted_apart(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    with create_ledger(id="sys", storage=f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        nucleus_metrics.instrument(ledger, registry=registry)
        ledger.append_system([Record(id="_k1", stream="_keys", timestamp=1, payload={})], CTX)
        ledger.append_system(
            [Record(id=f"_k{i}", stream="_keys", timestamp=1, payload={}) for i in range(2, 5)], CTX
        )
        with pytest.raises(DuplicateRecordError):
            ledger.append_system([Record(id="_k1", stream="_keys", timestamp=1, payload={})], CTX)
        ledger.append(records("u", 1)[0], CTX)
        samples = parse(generate_latest(registry).decode())
    assert value(samples, "nucleus_system_appends_total", ledger="sys", outcome="ok") == 2
    assert value(samples, "nucleus_system_appends_total", ledger="sys", outcome="duplicate_record") == 1
    assert value(samples, "nucleus_system_appended_records_total", ledger="sys") == 4
    # The user append metrics hold the user append only.
    assert value(samples, "nucleus_appends_total", ledger="sys", outcome="ok") == 1
    assert value(samples, "nucleus_appended_records_total", ledger="sys") == 1


def test_closing_removes_the_series_of_the_ledger() -> None:
    registry = CollectorRegistry()
    keep = create_ledger(id="kept", storage="memory://")
    nucleus_metrics.instrument(keep, registry=registry)
    keep.append(records("k", 1)[0], CTX)
    for n in range(20):
        with create_ledger(id=f"transient-{n}", storage="memory://") as ledger:
            nucleus_metrics.instrument(ledger, registry=registry)
            ledger.append(records("t", 1)[0], CTX)
            with pytest.raises(DuplicateRecordError):
                ledger.append(records("t", 1)[0], CTX)
            assert ledger.verify().ok
    samples = parse(generate_latest(registry).decode())
    assert not [key for key in samples if dict(key[1]).get("ledger", "").startswith("transient-")]
    assert value(samples, "nucleus_appends_total", ledger="kept", outcome="ok") == 1
    assert value(samples, "nucleus_ledgers_open") == 1
    # Two ledgers of one id: the series stay until the last of them closes.
    twin = create_ledger(id="kept", storage="memory://")
    nucleus_metrics.instrument(twin, registry=registry)
    twin.close()
    samples = parse(generate_latest(registry).decode())
    assert value(samples, "nucleus_appends_total", ledger="kept", outcome="ok") == 1
    keep.close()
    samples = parse(generate_latest(registry).decode())
    assert not [key for key in samples if dict(key[1]).get("ledger")]
    assert value(samples, "nucleus_ledgers_open") == 0
