"""An application embedding the ledger: its own registry, several ledgers in one, the plugin
counting into prometheus_client's default registry, all without a server."""

from __future__ import annotations

import nucleus_metrics
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from nucleus_core import Record, RequestContext, create_ledger
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

    before = appended()
    with create_ledger(id="by-plugin", storage="memory://", plugins=["metrics"]) as ledger:
        ledger.append_batch(records("p", 3), CTX)
        source = ledger.observers.exposition()
        assert source is not None
        body, content_type = source.exposition()
    assert appended() - before == 3
    assert content_type.startswith("text/plain") and b"nucleus_appended_records_total" in body


def test_a_registry_must_be_a_prometheus_registry() -> None:
    with create_ledger(id="bad", storage="memory://") as ledger, pytest.raises(ConfigurationError, match="registry"):
        nucleus_metrics.instrument(ledger, registry=object())  # type: ignore[arg-type]
