"""The typed configuration: :class:`BootloaderConfig` and the choices it names as enums."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, Self, TypeVar, overload

from espsec.chips import Chip, get_chip
from espsec.errors import UsageError
from espsec.sdkconfig.expr import Value
from espsec.sdkconfig.inputs import read_json, read_name_values, read_sdkconfig
from espsec.sdkconfig.options import TABLE
from espsec.sdkconfig.resolve import (
    TARGET,
    Assignment,
    Assignments,
    SdkconfigError,
    canonical,
    check_name,
    default_of,
    resolve,
)
from espsec.sdkconfig.table import BOOL

OptionValue = Value
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

    BITS_192 = "SECURE_BOOT_ECDSA_KEY_LEN_192_BITS"
    """ESP-IDF v5.5 and earlier."""
    BITS_256 = "SECURE_BOOT_ECDSA_KEY_LEN_256_BITS"
    BITS_384 = "SECURE_BOOT_ECDSA_KEY_LEN_384_BITS"

    @property
    def bits(self) -> int:
        """192, 256 or 384."""
        return int(self.value.split("_")[-2])


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


FLASH_SIZES = tuple(
    member.removeprefix("ESPTOOLPY_FLASHSIZE_")
    for member in TABLE.choices["ESPTOOLPY_FLASHSIZE"].members
)
"""``choice ESPTOOLPY_FLASHSIZE`` values."""

_CHOICE_ENUMS: dict[str, type[StrEnum]] = {
    "SECURE_SIGNED_APPS_SCHEME": SignedAppsScheme,
    "SECURE_BOOT_ECDSA_KEY_LEN_SIZE": EcdsaKeyLen,
    "SECURE_FLASH_ENCRYPTION_MODE": FlashEncryptionMode,
    "SECURE_FLASH_ENCRYPTION_KEYSIZE": FlashEncryptionKeySize,
    "SECURE_UART_ROM_DL_MODE": RomDownloadMode,
    "NVS_SEC_KEY_PROTECTION_SCHEME": NvsSecKeyProtection,
}

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)


class _Option(ABC, Generic[T]):
    """A typed read of one table option (checked to exist when the class is made)."""

    def __init__(self, option: str) -> None:
        if option != TARGET and option not in TABLE.rows and option not in TABLE.choices:
            raise KeyError(f"{option} is not in the option table")
        self.option = option

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(self, obj: BootloaderConfig, owner: type | None = None) -> T: ...
    def __get__(self, obj: BootloaderConfig | None, owner: type | None = None) -> T | Self:
        if obj is None:
            return self
        return self.read(obj)

    @abstractmethod
    def read(self, config: BootloaderConfig) -> T: ...


class _Bool(_Option[bool]):
    def read(self, config: BootloaderConfig) -> bool:
        return config.values.get(self.option) is True


class _Int(_Option[int]):
    def read(self, config: BootloaderConfig) -> int:
        value = config.value(self.option)
        if not isinstance(value, int) or isinstance(value, bool):
            raise _no_value(self.option)
        return value


class _Str(_Option[str]):
    def read(self, config: BootloaderConfig) -> str:
        value = config.value(self.option)
        if not isinstance(value, str):
            raise _no_value(self.option)
        return value


def _no_value(option: str) -> SdkconfigError:
    return SdkconfigError("has no value in this configuration", option=f"CONFIG_{option}")


class _Choice(_Option[E | None]):
    def __init__(self, option: str, enum: type[E]) -> None:
        super().__init__(option)
        self.enum = enum

    def read(self, config: BootloaderConfig) -> E | None:
        member = config.choice(self.option)
        return None if member is None else self.enum(member)


@dataclass(frozen=True)
class BootloaderConfig:
    """A resolved ESP-IDF configuration: every option of the table that has a value.

    Build one from an input with :meth:`parse` (``sdkconfig``, ``sdkconfig.defaults``),
    :meth:`from_json` (kconfgen's ``sdkconfig.json``), :meth:`from_name_values`
    (``NAME=VALUE``), :meth:`from_options` (Python keywords) or :meth:`resolve` (assignments
    already read, e.g. a file and ``--config`` merged). The attributes below read options by
    their Kconfig names in lower case without ``CONFIG_``; an option whose dependencies do
    not hold reads as off (``False`` / ``None``), an int as its Kconfig default.
    """

    target: str
    """``CONFIG_IDF_TARGET``."""
    values: Mapping[str, OptionValue]
    """Every table option that has a value, by name without ``CONFIG_``."""
    raw: Mapping[str, OptionValue] = field(default_factory=dict)
    """Other components' options, as read."""

    def __hash__(self) -> int:
        return hash((self.target, frozenset(self.values.items()), frozenset(self.raw.items())))

    # -- entry points ------------------------------------------------------------------

    @classmethod
    def resolve(cls, assignments: Assignments) -> Self:
        """The configuration ``assignments`` (from :mod:`espsec.sdkconfig.inputs`) give."""
        resolved = resolve(assignments)
        return cls(resolved.chip.name, dict(resolved.values), dict(resolved.raw))

    @classmethod
    def parse(cls, data: str | bytes, *, source: str | None = None) -> Self:
        """An ``sdkconfig`` (or ``sdkconfig.defaults``) file's text.

        Raises :class:`SdkconfigError` (a :class:`~espsec.errors.FormatError`) naming the
        line of a malformed line, a misspelt option, a value of the wrong type, or an
        option its dependencies forbid.
        """
        return cls.resolve(read_sdkconfig(data, source=source))

    @classmethod
    def from_json(cls, document: object, *, source: str | None = None) -> Self:
        """kconfgen's ``config/sdkconfig.json`` (already decoded); :meth:`to_json` inverse."""
        return cls.resolve(read_json(document, source=source))

    @classmethod
    def from_name_values(cls, items: Iterable[str], *, source: str = "--config") -> Self:
        """``NAME=VALUE`` strings (``SECURE_BOOT=y``), the rest from Kconfig defaults."""
        return cls.resolve(read_name_values(items, source=source))

    @classmethod
    def from_options(cls, **options: Any) -> Self:
        """A configuration from option names in lower case, the rest Kconfig defaults.

        ``from_options()`` is a default ESP-IDF build; ``from_options(secure_boot=True,
        secure_flash_enc_enabled=True)`` fills in Secure Boot v2, the target's signing
        scheme, development mode and so on, as ``menuconfig`` would. A choice takes a
        member (``secure_flash_encryption_mode=FlashEncryptionMode.RELEASE``), its Kconfig
        name or its enum name (``"release"``); ``esptoolpy_flashsize`` takes ``"4MB"``;
        ``raw`` holds other components' options. Raises :class:`UsageError` for an
        unknown name or a combination Kconfig forbids.
        """
        try:
            return cls.resolve(_keyword_assignments(options))
        except SdkconfigError as exc:
            raise UsageError(exc.message) from None

    # -- reading -----------------------------------------------------------------------

    @property
    def chip(self) -> Chip:
        """The chip record of :attr:`target`."""
        return get_chip(self.target)

    def value(self, name: str) -> OptionValue | None:
        """Option ``name``'s value; an option without one reads as Kconfig would have it
        (a bool ``False``, another option its default, dependencies aside)."""
        if name == TARGET:
            return self.target
        row = TABLE.rows[name]
        if name in self.values:
            return self.values[name]
        if row.type == BOOL:
            return False
        return default_of(name, self.chip, self.values)

    def choice(self, name: str) -> str | None:
        """The selected member of ``choice NAME`` (``None`` when the choice is hidden)."""
        return next((m for m in TABLE.choices[name].members if self.values.get(m) is True), None)

    def options(self) -> dict[str, OptionValue]:
        """The settings: every option with a prompt that has a value, plus :attr:`raw`."""
        shown = {
            name: value
            for name, value in self.values.items()
            if TABLE.rows[name].prompt is not None
        }
        return {TARGET: self.target, **shown, **self.raw}

    def to_json(self) -> dict[str, OptionValue]:
        """The configuration in kconfgen's ``sdkconfig.json`` shape (:meth:`from_json`)."""
        return {TARGET: self.target, **self.values, **self.raw}

    # -- typed options -----------------------------------------------------------------

    idf_target = _Str(TARGET)
    secure_boot = _Bool("SECURE_BOOT")
    secure_boot_v2_enabled = _Bool("SECURE_BOOT_V2_ENABLED")
    secure_signed_apps_no_secure_boot = _Bool("SECURE_SIGNED_APPS_NO_SECURE_BOOT")
    """Signed apps without hardware Secure Boot (the bootloader itself is not verified)."""
    secure_signed_on_boot = _Bool("SECURE_SIGNED_ON_BOOT")
    """The bootloader checks app signatures."""
    secure_signed_on_update = _Bool("SECURE_SIGNED_ON_UPDATE")
    """The app checks the signature of an OTA image (``esp_image_verify``)."""
    secure_signed_on_update_no_secure_boot = _Bool("SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT")
    """Signed OTA updates without hardware Secure Boot (trusted keys: the running app's)."""
    secure_signed_apps_scheme = _Choice("SECURE_SIGNED_APPS_SCHEME", SignedAppsScheme)
    secure_boot_ecdsa_key_len = _Choice("SECURE_BOOT_ECDSA_KEY_LEN_SIZE", EcdsaKeyLen)
    secure_boot_insecure = _Bool("SECURE_BOOT_INSECURE")
    secure_boot_v2_force_enable_ecdsa = _Bool("SECURE_BOOT_V2_FORCE_ENABLE_ECDSA")
    secure_boot_enable_aggressive_key_revoke = _Bool("SECURE_BOOT_ENABLE_AGGRESSIVE_KEY_REVOKE")
    secure_boot_allow_jtag = _Bool("SECURE_BOOT_ALLOW_JTAG")
    secure_boot_allow_unused_digest_slots = _Bool("SECURE_BOOT_ALLOW_UNUSED_DIGEST_SLOTS")
    secure_boot_v2_allow_efuse_rd_dis = _Bool("SECURE_BOOT_V2_ALLOW_EFUSE_RD_DIS")
    secure_boot_require_already_enabled = _Bool("SECURE_BOOT_REQUIRE_ALREADY_ENABLED")
    secure_flash_enc_enabled = _Bool("SECURE_FLASH_ENC_ENABLED")
    secure_flash_encryption_mode = _Choice("SECURE_FLASH_ENCRYPTION_MODE", FlashEncryptionMode)
    secure_flash_encryption_keysize = _Choice(
        "SECURE_FLASH_ENCRYPTION_KEYSIZE", FlashEncryptionKeySize
    )
    secure_uart_rom_dl_mode = _Choice("SECURE_UART_ROM_DL_MODE", RomDownloadMode)
    """``None`` when the choice is hidden (neither Secure Boot v2 nor flash encryption)."""
    secure_flash_uart_bootloader_allow_enc = _Bool("SECURE_FLASH_UART_BOOTLOADER_ALLOW_ENC")
    secure_flash_uart_bootloader_allow_dec = _Bool("SECURE_FLASH_UART_BOOTLOADER_ALLOW_DEC")
    secure_flash_uart_bootloader_allow_cache = _Bool("SECURE_FLASH_UART_BOOTLOADER_ALLOW_CACHE")
    secure_flash_require_already_enabled = _Bool("SECURE_FLASH_REQUIRE_ALREADY_ENABLED")
    secure_flash_has_write_protection_cache = _Bool("SECURE_FLASH_HAS_WRITE_PROTECTION_CACHE")
    """The first boot write-protects ``DIS_ICACHE`` (the chip has the eFuse) unless..."""
    secure_flash_skip_write_protection_cache = _Bool("SECURE_FLASH_SKIP_WRITE_PROTECTION_CACHE")
    """...this is set, or selected by an option that leaves a shared eFuse writable."""
    secure_flash_encrypt_only_image_len_in_app_part = _Bool(
        "SECURE_FLASH_ENCRYPT_ONLY_IMAGE_LEN_IN_APP_PART"
    )
    secure_flash_check_enc_en_in_app = _Bool("SECURE_FLASH_CHECK_ENC_EN_IN_APP")
    secure_flash_pseudo_round_func = _Bool("SECURE_FLASH_PSEUDO_ROUND_FUNC")
    """The first boot burns ``XTS_DPA_PSEUDO_LEVEL`` (where the build's chip has it)."""
    secure_flash_pseudo_round_func_strength = _Int("SECURE_FLASH_PSEUDO_ROUND_FUNC_STRENGTH")
    """1 low, 2 moderate, 3 high; read only with :attr:`secure_flash_pseudo_round_func`."""
    bootloader_app_rollback_enable = _Bool("BOOTLOADER_APP_ROLLBACK_ENABLE")
    bootloader_app_anti_rollback = _Bool("BOOTLOADER_APP_ANTI_ROLLBACK")
    bootloader_app_secure_version = _Int("BOOTLOADER_APP_SECURE_VERSION")
    bootloader_app_sec_ver_size_efuse_field = _Int("BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD")
    """Meaningful only with anti-rollback; otherwise the target's field width."""
    partition_table_offset = _Int("PARTITION_TABLE_OFFSET")
    partition_table_md5 = _Bool("PARTITION_TABLE_MD5")
    nvs_encryption = _Bool("NVS_ENCRYPTION")
    nvs_sec_key_protection_scheme = _Choice("NVS_SEC_KEY_PROTECTION_SCHEME", NvsSecKeyProtection)
    """``None`` without NVS encryption. The default is the flash-encryption scheme when
    flash encryption is on (ESP-IDF v5.5; v6.0 defaults to HMAC on chips that have it)."""
    nvs_sec_hmac_efuse_key_id = _Int("NVS_SEC_HMAC_EFUSE_KEY_ID")
    """``BLOCK_KEYn`` of the HMAC scheme; -1 (the Kconfig default) is unset."""
    esptoolpy_flashsize = _Str("ESPTOOLPY_FLASHSIZE")

    # -- derived -----------------------------------------------------------------------

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


def _keyword_assignments(options: Mapping[str, Any]) -> dict[str, Assignment]:
    """:meth:`BootloaderConfig.from_options` keywords as assignments."""
    found: dict[str, Assignment] = {}
    for key, value in options.items():
        if key == "raw":
            if not isinstance(value, Mapping):
                raise SdkconfigError("raw must map option names to values", option="raw")
            for name, raw_value in value.items():
                if TABLE.knows(name) or name == TARGET:
                    raise SdkconfigError("is an option of the table, not raw", option=name)
                found[name] = Assignment(raw_value, written=name)
            continue
        typed = vars(BootloaderConfig).get(key)
        name = typed.option if isinstance(typed, _Option) else key.upper()
        if name in TABLE.choices:
            member = _member(name, value)
            found[member] = Assignment(True, written=f"{name}={member}")
            continue
        assignment = Assignment(value, written=name)
        check_name(name, assignment, foreign_ok=False, table=TABLE)
        found[name] = assignment
    return canonical(found, table=TABLE)


def _member(choice: str, value: object) -> str:
    """The member of ``choice`` that ``value`` names (member, Kconfig name or enum name)."""
    members = TABLE.choices[choice].members
    enum = _CHOICE_ENUMS.get(choice)
    if isinstance(value, StrEnum) and value.value in members:
        return value.value
    if isinstance(value, str):
        wanted = value.upper()
        for member in members:
            if wanted in (member, member.removeprefix(f"{choice}_")):
                return member
        if enum is not None:
            for item in enum:
                if wanted == item.name:
                    return item.value
    names = ", ".join(m.name for m in enum) if enum else ", ".join(members)
    raise SdkconfigError(f"must be one of {names}, got {value!r}", option=choice.lower())
