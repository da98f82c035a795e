"""Factory provisioning at scale: a batch spec, a per-device pipeline, a crash-safe journal.

``espsec factory plan|run|resume|status`` over a TOML batch spec (:mod:`.spec`). Each
device gets its keys (from ``secrets`` or the HSM), an eFuse burn plan checked by the
plan rules, an ``esp_secure_cert`` partition with a certificate signed by the CA (in a
PKCS#11 token), an encrypted factory NVS and its flash image (:mod:`.pipeline`); it is
applied to virtual devices or chips on ``--port`` (:mod:`.targets`) while a journal
(:mod:`.journal`: SQLite, or PostgreSQL for several stations in :mod:`.pg`) records
every step, so a killed run resumes without reusing a serial or losing a record.
Secrets are never stored; :mod:`.escrow` wraps them to an escrow key when asked.
"""

from espsec.factory.journal import Journal, JournalError, SqliteJournal, open_journal
from espsec.factory.pipeline import Batch, CaSigner, DeviceKeys, FactoryError, load_batch
from espsec.factory.run import BOUNDARIES, Factory, RunSummary, open_factory
from espsec.factory.spec import BatchSpec, SpecError, load_spec, parse_spec
from espsec.factory.targets import PortTarget, VirtualTarget

__all__ = [
    "BOUNDARIES",
    "Batch",
    "BatchSpec",
    "CaSigner",
    "DeviceKeys",
    "Factory",
    "FactoryError",
    "Journal",
    "JournalError",
    "PortTarget",
    "RunSummary",
    "SpecError",
    "SqliteJournal",
    "VirtualTarget",
    "load_batch",
    "load_spec",
    "open_factory",
    "open_journal",
    "parse_spec",
]
