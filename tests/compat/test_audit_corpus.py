"""Oracle: the audit's eFuse corpus is what the installed espefuse burns (``--virt``).

``tests/audit/data/make_efuse_corpus.py`` runs the real espefuse for every state; this test
runs it again into a fresh folder and compares the virtual eFuse files byte for byte and the
JSON summaries record by record with the committed corpus.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.compat, pytest.mark.slow]

DATA = Path(__file__).parents[1] / "audit" / "data"


def _maker():
    path = DATA / "make_efuse_corpus.py"
    spec = importlib.util.spec_from_file_location("make_efuse_corpus", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_efuse_corpus_is_what_espefuse_burns(tmp_path):
    maker = _maker()
    maker.make(tmp_path)
    for state in maker.STATES:
        ours = DATA / "efuse" / f"{state}.bin"
        assert (tmp_path / f"{state}.bin").read_bytes() == ours.read_bytes(), state
        fresh = json.loads((tmp_path / f"{state}.summary.json").read_text())
        committed = json.loads((DATA / "efuse" / f"{state}.summary.json").read_text())
        assert fresh == committed, state
