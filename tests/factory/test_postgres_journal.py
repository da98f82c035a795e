"""Several stations share one batch through PostgreSQL: row locks hand out each serial once."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from espsec.factory import VirtualTarget, open_factory
from espsec.factory.pg import PostgresJournal

from .._pg import fresh_database
from .kit import write_batch


@pytest.mark.slow
def test_concurrent_claims_hand_out_every_serial_exactly_once(postgres_url):
    url = fresh_database(postgres_url, "claims")
    journal = PostgresJournal(url)
    assert journal.init_batch("b", "x" * 64, 200, (f"S{i:04d}" for i in range(200)))
    assert not journal.init_batch("b", "x" * 64, 200, ())
    script = textwrap.dedent(
        f"""
        import json, sys
        from espsec.factory.pg import PostgresJournal
        j = PostgresJournal({url!r})
        got = []
        while (row := j.claim("b", sys.argv[1])) is not None:
            got.append(row.serial)
        print(json.dumps(got))
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, f"st{i}"], stdout=subprocess.PIPE)
        for i in range(3)
    ]
    claimed = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    everything = [s for part in claimed for s in part]
    assert sorted(everything) == [f"S{i:04d}" for i in range(200)]
    assert journal.counts("b")["allocated"] == 200
    journal.close()


@pytest.mark.slow
def test_stations_provision_one_batch_through_postgres(tmp_path, postgres_url):
    url = fresh_database(postgres_url, "stations")
    spec = write_batch(tmp_path, count=3)
    with open_factory(spec, journal_url=url, station="line-1") as one:
        one.plan()
        first = one.run(VirtualTarget(tmp_path / "devices"), limit=2)
    with open_factory(spec, journal_url=url, station="line-2") as two:
        second = two.run(VirtualTarget(tmp_path / "devices"))
        status = two.status()
    assert (first.provisioned, second.provisioned) == (2, 1)
    assert status["counts"]["done"] == 3
    lines = (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["serial"] for r in records] == ["SN00001", "SN00002", "SN00003"]
    assert [r["station"] for r in records] == ["line-1", "line-1", "line-2"]
