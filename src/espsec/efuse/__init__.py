"""eFuses, the one-time-programmable root of trust, modelled exactly (ESP32-S3, ESP32-P4).

The model (:class:`Efuses`) is the eFuse controller's register window, stored in the
same file ``espefuse --virt --path-efuse-file F`` uses. Changes go through a
:class:`Transaction`: a request is accepted only if its field or key block then reads
back exactly as asked (bits only go 0 -> 1, protections hold, RS blocks and key blocks
burn once), everything is validated before anything changes, and a refused request
changes nothing. A :class:`BurnPlan` adds the policy that refuses bricking or weakening
combinations.

Example::

    from espsec import efuse

    chip = efuse.new("esp32s3")
    efuse.burn_key(chip, "BLOCK_KEY0", key, "XTS_AES_128_KEY")  # key: 32 bytes
    efuse.burn(chip, {"SPI_BOOT_CRYPT_CNT": 1})
    assert efuse.security_state(chip).flash_encryption_enabled
    chip.hardware_block("BLOCK_KEY0")  # what the XTS-AES engine uses (read-protected)
    efuse.save(chip, "efuses.bin")  # espefuse --virt --path-efuse-file efuses.bin reads it

    plan = efuse.BurnPlan([efuse.BurnField("SECURE_BOOT_EN", 1)])
    plan.check(chip).refused  # True: SB_NO_DIGEST, no key digest is burned
"""

from espsec.efuse.burn import (
    BurnField,
    BurnKey,
    BurnKeyDigest,
    BurnRefused,
    BurnStep,
    Operation,
    ReadProtect,
    StagedBurn,
    Transaction,
    WriteProtect,
    burn,
    burn_key,
    burn_key_digest,
    read_protect,
    write_protect,
)
from espsec.efuse.layout import (
    BlockDef,
    EfuseLayout,
    FieldDef,
    KeyPurpose,
    layout_for,
    layouts_of,
)
from espsec.efuse.model import (
    BlockErrors,
    Efuses,
    KeyUnavailableError,
    chip_revision,
    create,
    load,
    new,
    save,
    sidecar_path,
)
from espsec.efuse.plan import (
    BurnPlan,
    FieldChange,
    Finding,
    PlanLine,
    PlanRefused,
    PlanReport,
    PlanResolver,
    build_operations,
    findings,
    parse_field_value,
    parse_plan,
)
from espsec.efuse.security import (
    DigestSlot,
    JtagState,
    KeyBlockState,
    SecurityInfo,
    SecurityState,
    jtag_token,
    secure_version_bits,
    security_info,
    security_state,
)
from espsec.efuse.summary import blocks_report, field_record, summary

__all__ = [
    "BlockDef",
    "BlockErrors",
    "BurnField",
    "BurnKey",
    "BurnKeyDigest",
    "BurnPlan",
    "BurnRefused",
    "BurnStep",
    "DigestSlot",
    "EfuseLayout",
    "Efuses",
    "FieldChange",
    "FieldDef",
    "Finding",
    "JtagState",
    "KeyBlockState",
    "KeyPurpose",
    "KeyUnavailableError",
    "Operation",
    "PlanLine",
    "PlanRefused",
    "PlanReport",
    "PlanResolver",
    "ReadProtect",
    "SecurityInfo",
    "SecurityState",
    "StagedBurn",
    "Transaction",
    "WriteProtect",
    "blocks_report",
    "build_operations",
    "burn",
    "burn_key",
    "burn_key_digest",
    "chip_revision",
    "create",
    "field_record",
    "findings",
    "jtag_token",
    "layout_for",
    "layouts_of",
    "load",
    "new",
    "parse_field_value",
    "parse_plan",
    "read_protect",
    "save",
    "secure_version_bits",
    "security_info",
    "security_state",
    "sidecar_path",
    "summary",
    "write_protect",
]
