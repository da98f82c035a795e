"""ESP-IDF ``sdkconfig`` files: the options the bootloader and the first boot act on.

Option names, dependencies and defaults follow ESP-IDF ``components/bootloader/
Kconfig.projbuild`` and ``Kconfig.app_rollback``, ``components/nvs_flash/Kconfig``,
``components/nvs_sec_provider/Kconfig`` (v5.5), ``components/partition_table/
Kconfig.projbuild`` and ``components/esptool_py/Kconfig.projbuild``.

A file is read the way Kconfig reads one: an option missing from the file takes its
Kconfig default when its dependencies hold, and is off when they do not, so a full
``sdkconfig`` and a short ``sdkconfig.defaults`` both give the configuration the build
would have. A file that sets an option its dependencies forbid is rejected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, Self

from espsec.errors import FormatError, UsageError

OptionValue = bool | int | str
"""A typed option value: ``y``/``n`` as bool, ints and hex as int, strings unquoted."""


class SignedAppsScheme(StrEnum):
    """``choice SECURE_SIGNED_APPS_SCHEME``: the app signature scheme."""

    RSA = "SECURE_SIGNED_APPS_RSA_SCHEME"
    """Secure Boot v2, RSA-3072-PSS."""
    ECDSA_V2 = "SECURE_SIGNED_APPS_ECDSA_V2_SCHEME"
    """Secure Boot v2, ECDSA (key length from :class:`EcdsaKeyLen`)."""
    ECDSA = "SECURE_SIGNED_APPS_ECDSA_SCHEME"
    """Secure Boot v1 / signed apps without secure boot (ESP32 only)."""


class EcdsaKeyLen(StrEnum):
    """``choice SECURE_BOOT_ECDSA_KEY_LEN_SIZE``."""

    BITS_256 = "SECURE_BOOT_ECDSA_KEY_LEN_256_BITS"
    BITS_384 = "SECURE_BOOT_ECDSA_KEY_LEN_384_BITS"

    @property
    def bits(self) -> int:
        """256 or 384."""
        return 384 if self is EcdsaKeyLen.BITS_384 else 256


class FlashEncryptionMode(StrEnum):
    """``choice SECURE_FLASH_ENCRYPTION_MODE``."""

    DEVELOPMENT = "SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT"
    RELEASE = "SECURE_FLASH_ENCRYPTION_MODE_RELEASE"


class FlashEncryptionKeySize(StrEnum):
    """``choice SECURE_FLASH_ENCRYPTION_KEYSIZE`` (targets with a choice of XTS key size)."""

    AES128 = "SECURE_FLASH_ENCRYPTION_AES128"
    """XTS-AES-128: a 256-bit key in one eFuse key block."""
    AES256 = "SECURE_FLASH_ENCRYPTION_AES256"
    """XTS-AES-256: a 512-bit key in two eFuse key blocks."""
    AES128_DERIVED = "SECURE_FLASH_ENCRYPTION_AES128_DERIVED"
    """XTS-AES-128 with the key derived as SHA-256 of 128 burned bits (ESP32-C2)."""


class RomDownloadMode(StrEnum):
    """``choice SECURE_UART_ROM_DL_MODE``: what the app does to UART download mode."""

    DISABLED = "SECURE_DISABLE_ROM_DL_MODE"
    """Burn ``DIS_DOWNLOAD_MODE``: download mode permanently off."""
    SECURE = "SECURE_ENABLE_SECURE_ROM_DL_MODE"
    """Burn ``ENABLE_SECURITY_DOWNLOAD``: only the secure download mode commands remain."""
    INSECURE_ALLOW = "SECURE_INSECURE_ALLOW_DL_MODE"
    """Leave full download mode enabled (not recommended)."""


class NvsSecKeyProtection(StrEnum):
    """``choice NVS_SEC_KEY_PROTECTION_SCHEME`` (``components/nvs_sec_provider/Kconfig``):
    where ``nvs_flash_init`` gets the NVS encryption keys from."""

    FLASH_ENC = "NVS_SEC_KEY_PROTECT_USING_FLASH_ENC"
    """Keys in the first ``data/nvs_keys`` partition, protected by flash encryption."""
    HMAC = "NVS_SEC_KEY_PROTECT_USING_HMAC"
    """Keys derived from the ``HMAC_UP`` eFuse key in ``NVS_SEC_HMAC_EFUSE_KEY_ID``."""
    NONE = "NVS_SEC_KEY_PROTECT_NONE"
    """The app registers its own scheme (not modelled)."""


FLASH_SIZES = ("1MB", "2MB", "4MB", "8MB", "16MB", "32MB", "64MB", "128MB")
"""``choice ESPTOOLPY_FLASHSIZE`` values."""

DEFAULT_TARGET = "esp32s3"
"""ESP-IDF has no target-independent default (``idf.py`` falls back to ``esp32``, which
espsec does not model); espsec's primary target is used instead."""

# Target facts the option defaults and ranges depend on (``components/soc/<chip>/include/
# soc/soc_caps.h``; ``Kconfig.app_rollback`` for the secure version field size).
_NO_RSA_SECURE_BOOT = frozenset({"esp32c2", "esp32c61", "esp32h4"})
_NO_SECURE_DL_MODE = frozenset({"esp32", "esp32h21", "esp32h4"})
_XTS_KEY_SIZE_CHOICE = frozenset(
    {"esp32s2", "esp32s3", "esp32c2", "esp32c5", "esp32p4", "esp32h4", "esp32s31"}
)
_SEC_VER_FIELD_BITS = {"esp32": 32, "esp32c2": 4, "esp32c5": 9}


def secure_version_field_bits(target: str) -> int:
    """Default and maximum ``BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD`` for ``target``."""
    return _SEC_VER_FIELD_BITS.get(target, 16)


@dataclass(frozen=True)
class BootloaderConfig:
    """The build options the bootloader and the first boot depend on, resolved.

    Field names are the Kconfig option names in lower case without ``CONFIG_``. An option
    whose dependencies do not hold is off (``False`` / ``None``); build one with
    :meth:`from_options` (Kconfig defaults filled in) or :meth:`parse`.
    """

    idf_target: str = DEFAULT_TARGET
    secure_boot: bool = False
    secure_boot_v2_enabled: bool = False
    secure_signed_apps_no_secure_boot: bool = False
    """Signed apps without hardware Secure Boot (the bootloader itself is not verified)."""
    secure_signed_apps_scheme: SignedAppsScheme | None = None
    secure_boot_ecdsa_key_len: EcdsaKeyLen | None = None
    secure_boot_insecure: bool = False
    secure_boot_enable_aggressive_key_revoke: bool = False
    secure_boot_allow_jtag: bool = False
    secure_boot_allow_unused_digest_slots: bool = False
    secure_boot_v2_allow_efuse_rd_dis: bool = False
    secure_flash_enc_enabled: bool = False
    secure_flash_encryption_mode: FlashEncryptionMode | None = None
    secure_flash_encryption_keysize: FlashEncryptionKeySize | None = None
    secure_uart_rom_dl_mode: RomDownloadMode | None = None
    """``None`` when the choice is hidden (neither Secure Boot v2 nor flash encryption)."""
    secure_flash_uart_bootloader_allow_enc: bool = False
    secure_flash_uart_bootloader_allow_dec: bool = False
    secure_flash_uart_bootloader_allow_cache: bool = False
    secure_flash_check_enc_en_in_app: bool = False
    bootloader_app_rollback_enable: bool = False
    bootloader_app_anti_rollback: bool = False
    bootloader_app_secure_version: int = 0
    bootloader_app_sec_ver_size_efuse_field: int = 16
    """Meaningful only with anti-rollback; otherwise the target's default."""
    partition_table_offset: int = 0x8000
    partition_table_md5: bool = True
    nvs_encryption: bool = False
    nvs_sec_key_protection_scheme: NvsSecKeyProtection | None = None
    """``None`` without NVS encryption. The default is the flash-encryption scheme when
    flash encryption is on (ESP-IDF v5.x; v6.0 defaults to HMAC on chips that have it)."""
    nvs_sec_hmac_efuse_key_id: int = -1
    """``BLOCK_KEYn`` of the HMAC scheme; -1 (the Kconfig default) is unset."""
    esptoolpy_flashsize: str = "2MB"
    raw: Mapping[str, OptionValue] = field(default_factory=dict, hash=False)
    """Options this class does not model, by name without ``CONFIG_``, as read."""

    @classmethod
    def from_options(cls, **options: Any) -> Self:
        """A configuration from field values, the rest from ESP-IDF's Kconfig defaults.

        ``from_options()`` is a default ESP-IDF build; ``from_options(secure_boot=True,
        secure_flash_enc_enabled=True)`` fills in Secure Boot v2, the target's signing
        scheme, development mode, and so on, as ``menuconfig`` would. Raises
        :class:`UsageError` for an unknown name or a combination Kconfig forbids.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise UsageError(f"unknown BootloaderConfig option(s): {', '.join(unknown)}")
        try:
            return cls(**_resolve(options))
        except _Conflict as exc:
            raise UsageError(exc.message) from None

    @classmethod
    def parse(cls, data: str | bytes, *, source: str | None = None) -> Self:
        """Parse an ``sdkconfig`` (or ``sdkconfig.defaults``) file's text.

        Raises :class:`SdkconfigError` (a :class:`FormatError`) naming the line of a
        malformed line, a value of the wrong type, or an option its dependencies forbid.
        """
        return cls(**_parse(data, source=source))

    @property
    def secure_boot_scheme(self) -> str | None:
        """The v2 app signing scheme by espsecure's name (``rsa3072``, ``ecdsa256``, …).

        ``None`` without signed apps, and for the v1 ECDSA scheme.
        """
        if self.secure_signed_apps_scheme is SignedAppsScheme.RSA:
            return "rsa3072"
        if self.secure_signed_apps_scheme is SignedAppsScheme.ECDSA_V2:
            key_len = self.secure_boot_ecdsa_key_len or EcdsaKeyLen.BITS_256
            return f"ecdsa{key_len.bits}"
        return None

    @property
    def flash_encryption_key_bits(self) -> int | None:
        """XTS-AES key size in bits (256 for AES-128, 512 for AES-256); ``None`` without FE."""
        if not self.secure_flash_enc_enabled:
            return None
        return 512 if self.secure_flash_encryption_keysize is FlashEncryptionKeySize.AES256 else 256

    @property
    def nvs_sec_key_protect_using_hmac(self) -> bool:
        """NVS encryption keys derive from an ``HMAC_UP`` eFuse key."""
        return self.nvs_sec_key_protection_scheme is NvsSecKeyProtection.HMAC

    @property
    def flash_size(self) -> int:
        """``ESPTOOLPY_FLASHSIZE`` in bytes."""
        return int(self.esptoolpy_flashsize.removesuffix("MB")) << 20

    def options(self) -> dict[str, OptionValue]:
        """Every modelled option that is visible, by Kconfig name, plus :attr:`raw`."""
        out: dict[str, OptionValue] = {}
        for spec in _SIMPLE:
            value = getattr(self, spec.field)
            if spec.kind == "bool" or spec.visible(self):
                out[spec.name] = value
        for choice_field, enum in _CHOICES.items():
            value = getattr(self, choice_field)
            if value is not None:
                for member in enum:
                    out[member.value] = member is value
        out[f"ESPTOOLPY_FLASHSIZE_{self.esptoolpy_flashsize}"] = True
        out.update(self.raw)
        return out

    def to_sdkconfig(self) -> str:
        """This configuration as ``sdkconfig`` text (``parse`` gives it back)."""
        lines = []
        for name, value in self.options().items():
            if value is False:
                lines.append(f"# CONFIG_{name} is not set")
            elif value is True:
                lines.append(f"CONFIG_{name}=y")
            elif isinstance(value, int):
                lines.append(f"CONFIG_{name}={_format_int(name, value)}")
            else:
                escaped = value.replace("\\", "\\\\").replace('"', '\\"')
                lines.append(f'CONFIG_{name}="{escaped}"')
        return "\n".join(lines) + "\n"


class SdkconfigError(FormatError):
    """A malformed or inconsistent ``sdkconfig``; ``line`` is 1-based (0: whole file)."""

    def __init__(
        self,
        what: str,
        *,
        line: int,
        option: str | None = None,
        expected: object = None,
        found: object = None,
        source: str | None = None,
    ) -> None:
        where = f"line {line}: " if line else ""
        prefix = f"{option}: " if option else ""
        super().__init__(where + prefix + what, expected=expected, found=found, source=source)
        self.field = option
        self.line = line


# --- option table -------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    name: str
    field: str
    kind: str  # bool, int, hex, str
    needs: str | None = None  # field that must be truthy for the option to be visible

    def visible(self, cfg: BootloaderConfig) -> bool:
        return self.needs is None or bool(getattr(cfg, self.needs))


_SIMPLE = (
    _Spec("IDF_TARGET", "idf_target", "str"),
    _Spec("SECURE_BOOT", "secure_boot", "bool"),
    _Spec("SECURE_BOOT_V2_ENABLED", "secure_boot_v2_enabled", "bool"),
    _Spec("SECURE_SIGNED_APPS_NO_SECURE_BOOT", "secure_signed_apps_no_secure_boot", "bool"),
    _Spec("SECURE_BOOT_INSECURE", "secure_boot_insecure", "bool"),
    _Spec(
        "SECURE_BOOT_ENABLE_AGGRESSIVE_KEY_REVOKE",
        "secure_boot_enable_aggressive_key_revoke",
        "bool",
    ),
    _Spec("SECURE_BOOT_ALLOW_JTAG", "secure_boot_allow_jtag", "bool"),
    _Spec("SECURE_BOOT_ALLOW_UNUSED_DIGEST_SLOTS", "secure_boot_allow_unused_digest_slots", "bool"),
    _Spec("SECURE_BOOT_V2_ALLOW_EFUSE_RD_DIS", "secure_boot_v2_allow_efuse_rd_dis", "bool"),
    _Spec("SECURE_FLASH_ENC_ENABLED", "secure_flash_enc_enabled", "bool"),
    _Spec(
        "SECURE_FLASH_UART_BOOTLOADER_ALLOW_ENC", "secure_flash_uart_bootloader_allow_enc", "bool"
    ),
    _Spec(
        "SECURE_FLASH_UART_BOOTLOADER_ALLOW_DEC", "secure_flash_uart_bootloader_allow_dec", "bool"
    ),
    _Spec(
        "SECURE_FLASH_UART_BOOTLOADER_ALLOW_CACHE",
        "secure_flash_uart_bootloader_allow_cache",
        "bool",
    ),
    _Spec("SECURE_FLASH_CHECK_ENC_EN_IN_APP", "secure_flash_check_enc_en_in_app", "bool"),
    _Spec("BOOTLOADER_APP_ROLLBACK_ENABLE", "bootloader_app_rollback_enable", "bool"),
    _Spec("BOOTLOADER_APP_ANTI_ROLLBACK", "bootloader_app_anti_rollback", "bool"),
    _Spec(
        "BOOTLOADER_APP_SECURE_VERSION",
        "bootloader_app_secure_version",
        "int",
        needs="bootloader_app_anti_rollback",
    ),
    _Spec(
        "BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD",
        "bootloader_app_sec_ver_size_efuse_field",
        "int",
        needs="bootloader_app_anti_rollback",
    ),
    _Spec("PARTITION_TABLE_OFFSET", "partition_table_offset", "hex"),
    _Spec("PARTITION_TABLE_MD5", "partition_table_md5", "bool"),
    _Spec("NVS_ENCRYPTION", "nvs_encryption", "bool"),
    _Spec(
        "NVS_SEC_HMAC_EFUSE_KEY_ID",
        "nvs_sec_hmac_efuse_key_id",
        "int",
        needs="nvs_sec_key_protect_using_hmac",
    ),
    _Spec("ESPTOOLPY_FLASHSIZE", "esptoolpy_flashsize", "str"),
)
_BY_NAME = {s.name: s for s in _SIMPLE}

_CHOICES: dict[str, type[StrEnum]] = {
    "secure_signed_apps_scheme": SignedAppsScheme,
    "secure_boot_ecdsa_key_len": EcdsaKeyLen,
    "secure_flash_encryption_mode": FlashEncryptionMode,
    "secure_flash_encryption_keysize": FlashEncryptionKeySize,
    "secure_uart_rom_dl_mode": RomDownloadMode,
    "nvs_sec_key_protection_scheme": NvsSecKeyProtection,
}
_CHOICE_MEMBERS: dict[str, tuple[str, object]] = {
    member.value: (choice_field, member)
    for choice_field, enum in _CHOICES.items()
    for member in enum
}
for _size in FLASH_SIZES:
    _CHOICE_MEMBERS[f"ESPTOOLPY_FLASHSIZE_{_size}"] = ("esptoolpy_flashsize", _size)

# Deprecated names still accepted (``components/bootloader/sdkconfig.rename``); kconfgen
# also repeats them, with the same values, at the end of a generated sdkconfig.
_RENAMED = {
    "APP_ROLLBACK_ENABLE": "BOOTLOADER_APP_ROLLBACK_ENABLE",
    "APP_ANTI_ROLLBACK": "BOOTLOADER_APP_ANTI_ROLLBACK",
    "APP_SECURE_VERSION": "BOOTLOADER_APP_SECURE_VERSION",
    "APP_SECURE_VERSION_SIZE_EFUSE_FIELD": "BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD",
    "FLASH_ENCRYPTION_ENABLED": "SECURE_FLASH_ENC_ENABLED",
    "FLASH_ENCRYPTION_INSECURE": "SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT",
    "FLASH_ENCRYPTION_UART_BOOTLOADER_ALLOW_ENCRYPT": "SECURE_FLASH_UART_BOOTLOADER_ALLOW_ENC",
    "FLASH_ENCRYPTION_UART_BOOTLOADER_ALLOW_DECRYPT": "SECURE_FLASH_UART_BOOTLOADER_ALLOW_DEC",
    "FLASH_ENCRYPTION_UART_BOOTLOADER_ALLOW_CACHE": "SECURE_FLASH_UART_BOOTLOADER_ALLOW_CACHE",
}

_FIELD_OPTION: dict[str, str] = {s.field: s.name for s in _SIMPLE} | {
    f: f.upper() for f in _CHOICES
}


def _format_int(name: str, value: int) -> str:
    spec = _BY_NAME.get(name)
    return f"0x{value:x}" if spec is not None and spec.kind == "hex" else str(value)


# --- Kconfig resolution -------------------------------------------------------------


class _Conflict(Exception):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


def _resolve(given: Mapping[str, Any]) -> dict[str, Any]:
    """Fill in Kconfig defaults and check dependencies, as ``menuconfig`` would."""
    out: dict[str, Any] = {}

    def take(name: str, default: Any, *, visible: bool = True, why: str = "") -> Any:
        if name not in given:
            value = default if visible else _off(name)
        else:
            value = _coerce(name, given[name])
            if not visible and value not in (False, None, _off(name)):
                option = _FIELD_OPTION.get(name, name.upper())
                raise _Conflict(name, f"CONFIG_{option} cannot be set: it depends on {why}")
        out[name] = value
        return value

    target = take("idf_target", DEFAULT_TARGET)
    if not isinstance(target, str) or not target:
        raise _Conflict("idf_target", "CONFIG_IDF_TARGET must be a chip name")

    secure_boot = take("secure_boot", False)
    v2 = take("secure_boot_v2_enabled", bool(secure_boot), visible=secure_boot, why="SECURE_BOOT")
    signed_only = take(
        "secure_signed_apps_no_secure_boot", False, visible=not secure_boot, why="!SECURE_BOOT"
    )
    scheme_default = (
        SignedAppsScheme.RSA if target not in _NO_RSA_SECURE_BOOT else SignedAppsScheme.ECDSA_V2
    )
    scheme = take(
        "secure_signed_apps_scheme",
        scheme_default,
        visible=bool(secure_boot or signed_only),
        why="SECURE_BOOT or SECURE_SIGNED_APPS_NO_SECURE_BOOT",
    )
    if v2 and scheme is SignedAppsScheme.ECDSA:
        raise _Conflict(
            "secure_signed_apps_scheme", "the ECDSA (v1) scheme needs Secure Boot v1, not v2"
        )
    take(
        "secure_boot_ecdsa_key_len",
        EcdsaKeyLen.BITS_256,
        visible=scheme is SignedAppsScheme.ECDSA_V2,
        why="SECURE_SIGNED_APPS_ECDSA_V2_SCHEME",
    )
    insecure = take("secure_boot_insecure", False, visible=secure_boot, why="SECURE_BOOT")
    take(
        "secure_boot_enable_aggressive_key_revoke",
        False,
        visible=secure_boot,
        why="SECURE_BOOT",
    )
    take("secure_boot_v2_allow_efuse_rd_dis", False, visible=v2, why="SECURE_BOOT_V2_ENABLED")
    take(
        "secure_boot_allow_unused_digest_slots",
        False,
        visible=insecure,
        why="SECURE_BOOT_INSECURE",
    )

    fe = take("secure_flash_enc_enabled", False)
    mode = take(
        "secure_flash_encryption_mode",
        FlashEncryptionMode.DEVELOPMENT,
        visible=fe,
        why="SECURE_FLASH_ENC_ENABLED",
    )
    development = mode is FlashEncryptionMode.DEVELOPMENT
    take(
        "secure_flash_encryption_keysize",
        FlashEncryptionKeySize.AES128,
        visible=fe and target in _XTS_KEY_SIZE_CHOICE,
        why="SECURE_FLASH_ENC_ENABLED on a target with a choice of XTS-AES key size",
    )
    take(
        "secure_boot_allow_jtag",
        False,
        visible=insecure or development,
        why="SECURE_BOOT_INSECURE or SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT",
    )
    # Development mode `select`s ALLOW_ENC: it is on whatever the file says.
    allow_enc = take(
        "secure_flash_uart_bootloader_allow_enc",
        development,
        visible=development,
        why="SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT",
    )
    if development and not allow_enc:
        raise _Conflict(
            "secure_flash_uart_bootloader_allow_enc",
            "CONFIG_SECURE_FLASH_UART_BOOTLOADER_ALLOW_ENC is selected by "
            "SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT and cannot be off",
        )
    for name in (
        "secure_flash_uart_bootloader_allow_dec",
        "secure_flash_uart_bootloader_allow_cache",
    ):
        take(name, False, visible=development, why="SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT")
    take("secure_flash_check_enc_en_in_app", True, visible=fe, why="SECURE_FLASH_ENC_ENABLED")

    secure_dl = target not in _NO_SECURE_DL_MODE and not development
    take(
        "secure_uart_rom_dl_mode",
        RomDownloadMode.SECURE if secure_dl else RomDownloadMode.INSECURE_ALLOW,
        visible=bool(v2 or fe),
        why="SECURE_BOOT_V2_ENABLED or SECURE_FLASH_ENC_ENABLED",
    )

    rollback = take("bootloader_app_rollback_enable", False)
    anti = take(
        "bootloader_app_anti_rollback",
        False,
        visible=rollback,
        why="BOOTLOADER_APP_ROLLBACK_ENABLE",
    )
    max_bits = secure_version_field_bits(target)
    bits = take(
        "bootloader_app_sec_ver_size_efuse_field",
        max_bits,
        visible=anti,
        why="BOOTLOADER_APP_ANTI_ROLLBACK",
    )
    if anti and not (isinstance(bits, int) and 1 <= bits <= max_bits):
        raise _Conflict(
            "bootloader_app_sec_ver_size_efuse_field",
            f"CONFIG_BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD must be 1..{max_bits} "
            f"on {target}, got {bits}",
        )
    version = take(
        "bootloader_app_secure_version", 0, visible=anti, why="BOOTLOADER_APP_ANTI_ROLLBACK"
    )
    if not isinstance(version, int) or version < 0:
        raise _Conflict(
            "bootloader_app_secure_version",
            f"CONFIG_BOOTLOADER_APP_SECURE_VERSION must be a non-negative int, got {version}",
        )
    if not anti:
        out["bootloader_app_sec_ver_size_efuse_field"] = max_bits

    offset = take("partition_table_offset", 0x8000)
    if not isinstance(offset, int) or offset < 0 or offset % 0x1000:
        raise _Conflict(
            "partition_table_offset",
            f"CONFIG_PARTITION_TABLE_OFFSET must be 4 KiB aligned, got {offset!r}",
        )
    md5 = take("partition_table_md5", True)
    if mode is FlashEncryptionMode.RELEASE and not md5:
        raise _Conflict(
            "partition_table_md5",
            "CONFIG_PARTITION_TABLE_MD5 is selected by SECURE_FLASH_ENCRYPTION_MODE_RELEASE",
        )
    nvs_encryption = take("nvs_encryption", bool(fe))
    # The choice's default (FLASH_ENC) depends on flash encryption; Kconfig then takes
    # the first visible member, HMAC.
    nvs_scheme = take(
        "nvs_sec_key_protection_scheme",
        NvsSecKeyProtection.FLASH_ENC if fe else NvsSecKeyProtection.HMAC,
        visible=nvs_encryption,
        why="NVS_ENCRYPTION",
    )
    if nvs_scheme is NvsSecKeyProtection.FLASH_ENC and not fe:
        raise _Conflict(
            "nvs_sec_key_protection_scheme",
            "CONFIG_NVS_SEC_KEY_PROTECT_USING_FLASH_ENC depends on SECURE_FLASH_ENC_ENABLED",
        )
    hmac_scheme = nvs_scheme is NvsSecKeyProtection.HMAC
    key_id = take(
        "nvs_sec_hmac_efuse_key_id",
        -1,
        visible=hmac_scheme,
        why="NVS_SEC_KEY_PROTECT_USING_HMAC",
    )
    if not hmac_scheme:
        out["nvs_sec_hmac_efuse_key_id"] = -1
    elif not (isinstance(key_id, int) and not isinstance(key_id, bool) and -1 <= key_id <= 5):
        raise _Conflict(
            "nvs_sec_hmac_efuse_key_id",
            f"CONFIG_NVS_SEC_HMAC_EFUSE_KEY_ID must be -1..5, got {key_id!r}",
        )
    size = take("esptoolpy_flashsize", "2MB")
    if size not in FLASH_SIZES:
        raise _Conflict(
            "esptoolpy_flashsize",
            f"CONFIG_ESPTOOLPY_FLASHSIZE must be one of {', '.join(FLASH_SIZES)}, got {size!r}",
        )
    raw = dict(given.get("raw", {}))
    modelled = sorted(name for name in raw if name in _BY_NAME or name in _CHOICE_MEMBERS)
    if modelled:
        raise _Conflict("raw", f"raw holds modelled option(s): {', '.join(modelled)}")
    out["raw"] = raw
    return out


def _coerce(name: str, value: Any) -> Any:
    """A choice given by member, Kconfig name or member name (``"release"``)."""
    enum = _CHOICES.get(name)
    if enum is None or value is None or isinstance(value, enum):
        return value
    for member in enum:
        if isinstance(value, str) and value.upper() in (member.value, member.name):
            return member
    choices = ", ".join(m.name for m in enum)
    raise _Conflict(name, f"{name} must be one of {choices}, got {value!r}")


def _off(name: str) -> Any:
    """The value a hidden option has."""
    if name in _CHOICES:
        return None
    if name == "bootloader_app_secure_version":
        return 0
    if name == "nvs_sec_hmac_efuse_key_id":
        return -1
    return False


# --- the file format ----------------------------------------------------------------

_ASSIGN = re.compile(r"CONFIG_([A-Za-z0-9_]+)=(.*)")
_NOT_SET = re.compile(r"#\s*CONFIG_([A-Za-z0-9_]+) is not set")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_DECIMAL = re.compile(r"-?[0-9]+")
_HEX = re.compile(r"0[xX][0-9a-fA-F]+")


def _value(text: str) -> OptionValue | None:
    if text == "y":
        return True
    if text == "n":
        return False
    if m := _STRING.fullmatch(text):
        return re.sub(r"\\(.)", r"\1", m.group(1))
    if _HEX.fullmatch(text):
        return int(text, 16)
    if _DECIMAL.fullmatch(text):
        return int(text, 10)
    return None


def _parse(data: str | bytes, *, source: str | None) -> dict[str, Any]:
    if isinstance(data, bytes):
        try:
            text_data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdkconfigError(
                "not UTF-8 text",
                line=data[: exc.start].count(b"\n") + 1,
                expected="UTF-8",
                found="invalid bytes",
                source=source,
            ) from None
    else:
        text_data = data

    options: dict[str, tuple[OptionValue, int]] = {}
    for number, raw_line in enumerate(text_data.splitlines(), start=1):
        text = raw_line.strip()
        if not text:
            continue
        if text.startswith("#"):
            if m := _NOT_SET.fullmatch(text):
                options[_RENAMED.get(m.group(1), m.group(1))] = (False, number)
            continue
        m = _ASSIGN.fullmatch(text)
        if m is None:
            raise SdkconfigError(
                "not an option assignment",
                line=number,
                expected="CONFIG_NAME=value or a # comment",
                found=text[:60],
                source=source,
            )
        value = _value(m.group(2))
        if value is None:
            raise SdkconfigError(
                "malformed value",
                line=number,
                option=f"CONFIG_{m.group(1)}",
                expected='y, n, a number, 0x hex or a "string"',
                found=m.group(2)[:60],
                source=source,
            )
        options[_RENAMED.get(m.group(1), m.group(1))] = (value, number)

    given: dict[str, Any] = {}
    lines: dict[str, int] = {}
    raw: dict[str, OptionValue] = {}
    for name, (value, number) in options.items():
        if name in _BY_NAME:
            spec = _BY_NAME[name]
            _check_kind(spec, value, number, source)
            _set(given, lines, spec.field, value, name, number, source)
        elif name in _CHOICE_MEMBERS:
            if not isinstance(value, bool):
                raise SdkconfigError(
                    "wrong type",
                    line=number,
                    option=f"CONFIG_{name}",
                    expected="y or n",
                    found=value,
                    source=source,
                )
            if value:
                choice_field, member = _CHOICE_MEMBERS[name]
                _set(given, lines, choice_field, member, name, number, source)
        else:
            raw[name] = value
    given["raw"] = raw
    try:
        return _resolve(given)
    except _Conflict as exc:
        raise SdkconfigError(
            exc.message, line=lines.get(exc.field, 0), option=None, source=source
        ) from None


def _check_kind(spec: _Spec, value: OptionValue, line: int, source: str | None) -> None:
    expected = {"bool": bool, "int": int, "hex": int, "str": str}[spec.kind]
    ok = isinstance(value, expected) and (spec.kind == "bool" or not isinstance(value, bool))
    if not ok:
        described = {"bool": "y or n", "int": "a number", "hex": "a number", "str": "a string"}
        raise SdkconfigError(
            "wrong type",
            line=line,
            option=f"CONFIG_{spec.name}",
            expected=described[spec.kind],
            found=value,
            source=source,
        )


def _set(
    given: dict[str, Any],
    lines: dict[str, int],
    name: str,
    value: object,
    option: str,
    line: int,
    source: str | None,
) -> None:
    if name in given and given[name] != value:
        raise SdkconfigError(
            f"conflicts with line {lines[name]}",
            line=line,
            option=f"CONFIG_{option}",
            expected=given[name],
            found=value,
            source=source,
        )
    given[name] = value
    lines[name] = line
