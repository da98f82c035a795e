"""The audit's rules: small objects, one check each, with a stable id.

A :class:`Rule` names the ESP-IDF guide section it enforces, how severe a violation is in
production and whether a development build may do it (``development=None``: accepted).
Its check reads the :class:`Context` (the inputs, the profile, the advisory database) and
yields :class:`Hit` s: what was found, where, and the evidence.

Rule families: ``SB`` Secure Boot, ``FE`` flash encryption, ``DL`` download mode, ``DBG``
debug interfaces, ``EF`` eFuse state, ``MP`` memory protection, ``NVS`` secure storage,
``TLS``, ``OTA`` updates and rollback, ``AR`` anti-rollback versions, ``WIFI`` and ``PROV``
network and provisioning, ``KEY`` per-device keys, ``CFG`` test-only build options,
``IDF`` ESP-IDF versions, ``ADV`` published advisories.

Kconfig rules read the configuration through the option table
(:mod:`espsec.sdkconfig.options`), so an old option name (``sdkconfig.rename``) counts as
its current one; each message names the upstream Kconfig file of the option.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from espsec.audit.advisories import Advisory, Database, IdfVersion
from espsec.audit.findings import Evidence, Finding, Profile, RuleInfo, Severity
from espsec.audit.subjects import ConfigSubject, DeviceSubject, Inputs, VersionSubject
from espsec.chips import get_chip
from espsec.efuse import security_state
from espsec.efuse.download_mode import download_policies
from espsec.errors import UsageError
from espsec.provisioning.wifi_prov import AuthMode, auth_name
from espsec.sdkconfig import TABLE, BootloaderConfig, FlashEncryptionMode, RomDownloadMode
from espsec.sdkconfig import expr as kexpr
from espsec.sdkconfig.config import EcdsaKeyLen, SignedAppsScheme
from espsec.sdkconfig.memprot import LOCK_OPTION, memory_protection
from espsec.sdkconfig.memprot import OPTION as MEMPROT_OPTION

GUIDE = "ESP-IDF security guide (docs/en/security/security.rst)"


def _guide(heading: str) -> str:
    return f"{GUIDE}: {heading}"


@dataclass(frozen=True)
class Context:
    """What every check reads."""

    inputs: Inputs
    profile: Profile
    database: Database
    as_of: dt.date


@dataclass(frozen=True)
class Hit:
    """One violation, before the rule gives it a severity."""

    subject: str
    message: str
    evidence: tuple[Evidence, ...]
    fix: str | None = None
    severity: Severity | None = None
    """Overrides the rule's severity (advisories carry their own)."""
    advisory: str | None = None
    help_uri: str | None = None


Check = Callable[[Context], Iterable[Hit]]


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    title: str
    guide: str
    fix: str
    severity: Severity
    """Severity under the production profile."""
    development: Severity | None
    """Severity under the development profile; ``None``: accepted while developing."""
    check: Check

    def info(self) -> RuleInfo:
        return RuleInfo(self.id, self.name, self.title, self.guide, self.fix, self.severity)

    def severity_for(self, profile: Profile) -> Severity | None:
        return self.severity if profile is Profile.PRODUCTION else self.development

    def run(self, ctx: Context) -> list[Finding]:
        base = self.severity_for(ctx.profile)
        if base is None:
            return []
        found = []
        for hit in self.check(ctx):
            severity = hit.severity if hit.severity is not None else base
            found.append(
                Finding(
                    self.id,
                    severity,
                    hit.subject,
                    hit.message,
                    hit.evidence,
                    hit.fix or self.fix,
                    hit.advisory,
                    hit.help_uri,
                )
            )
        return found


# -- Kconfig helpers ------------------------------------------------------------------


def _text(value: object) -> str:
    if value is True:
        return "y"
    if value is False or value is None:
        return "n"
    return str(value)


def _kconfig(subject: ConfigSubject, option: str, value: object | None = None) -> Evidence:
    if value is None:
        value = subject.config.value(option) if option in TABLE.rows else None
        if value is None:
            value = subject.config.raw.get(option)
    return Evidence(
        "kconfig", f"CONFIG_{option}", _text(value), subject.source, line=subject.line(option)
    )


def _kfile(option: str) -> str:
    """The upstream Kconfig file of ``option`` (for messages)."""
    row = TABLE.rows.get(option)
    return row.option.source if row is not None else "sdkconfig"


def _on(config: BootloaderConfig, option: str) -> bool:
    if option in TABLE.rows:
        return config.values.get(option) is True
    return config.raw.get(option) is True


ConfigTest = Callable[[ConfigSubject], Iterable[tuple[str, tuple[str, ...]]]]
"""Per configuration: ``(message, options named as evidence)`` for each violation."""


def _config_check(test: ConfigTest) -> Check:
    def check(ctx: Context) -> Iterator[Hit]:
        for subject in ctx.inputs.configs:
            for message, options in test(subject):
                yield Hit(
                    subject.source,
                    message,
                    tuple(_kconfig(subject, o) for o in options),
                )

    return check


def _when(option: str, message: str, *, value: bool = True) -> ConfigTest:
    """A violation when bool ``option`` is ``value``."""

    def test(s: ConfigSubject) -> Iterator[tuple[str, tuple[str, ...]]]:
        if _on(s.config, option) is value:
            yield f"{message} (CONFIG_{option}={_text(value)}, {_kfile(option)})", (option,)

    return test


def _caps(config: BootloaderConfig) -> frozenset[str]:
    return config.chip.soc_caps


# -- Kconfig tests ------------------------------------------------------------------------


def _secure_boot_off(s: ConfigSubject) -> Iterator[tuple[str, tuple[str, ...]]]:
    c = s.config
    if "SOC_SECURE_BOOT_SUPPORTED" in _caps(c) and not c.secure_boot:
        yield (
            "hardware Secure Boot is not enabled: anyone with flash access can run their "
            f"own code (CONFIG_SECURE_BOOT=n, {_kfile('SECURE_BOOT')})",
            ("SECURE_BOOT",),
        )


def _signed_without_secure_boot(s: ConfigSubject) -> Iterator[tuple[str, tuple[str, ...]]]:
    c = s.config
    if c.secure_signed_apps_no_secure_boot and not c.secure_boot:
        yield (
            "apps are signed but hardware Secure Boot is off: the bootloader itself is not "
            "verified and can be replaced",
            ("SECURE_SIGNED_APPS_NO_SECURE_BOOT", "SECURE_BOOT"),
        )


def _ecdsa_192(s: ConfigSubject) -> Iterator[tuple[str, tuple[str, ...]]]:
    c = s.config
    if c.secure_boot and c.secure_boot_ecdsa_key_len is EcdsaKeyLen.BITS_192:
        yield (
            "Secure Boot signs with ECDSA P-192 (about 96-bit security)",
            ("SECURE_BOOT_ECDSA_KEY_LEN_192_BITS",),
        )


def _ecdsa_erratum(s: ConfigSubject) -> Iterator[tuple[str, tuple[str, ...]]]:
    c = s.config
    if (
        c.secure_boot_v2_enabled
        and c.secure_signed_apps_scheme is SignedAppsScheme.ECDSA_V2
        and _on(c, "SECURE_BOOT_V2_ECDSA_INSECURE")
    ):
        yield (
            f"ECDSA Secure Boot V2 is not functional for certain input vectors on "
            f"{c.chip.display_name} (ESP-IDF v5.5.5 marks it insecure: "
            "SECURE_BOOT_V2_ECDSA_INSECURE, components/bootloader/Kconfig.projbuild)",
            ("SECURE_SIGNED_APPS_ECDSA_V2_SCHEME", "SECURE_BOOT_V2_FORCE_ENABLE_ECDSA"),
        )


def _require_already_enabled(s: ConfigSubject) -> Iterator[tuple[str, tuple[str, ...]]]:
    for option, what in (
        ("SECURE_BOOT_REQUIRE_ALREADY_ENABLED", "Secure Boot"),
        ("SECURE_FLASH_REQUIRE_ALREADY_ENABLED", "flash encryption"),
    ):
        if _on(s.config, option):
            yield (
                f"the bootloader does not enable {what} itself: the factory must burn it "
                f"before the first boot (CONFIG_{option}, a test-only guard)",
                (option,),
            )


def _efuse_virtual(s: ConfigSubject) -> Iterator[tuple[str, tuple[str, ...]]]:
    for option in ("EFUSE_VIRTUAL", "EFUSE_VIRTUAL_KEEP_IN_FLASH"):
        if _on(s.config, option):
            yield (
                "eFuses are emulated in RAM/flash: no security eFuse is really burned "
                f"(CONFIG_{option}, components/efuse/Kconfig)",
                (option,),
            )


def _flash_encryption_off(s: ConfigSubject) -> Iterator[tuple[str, tuple[str, ...]]]:
    c = s.config
    if "SOC_FLASH_ENC_SUPPORTED" in _caps(c) and not c.secure_flash_enc_enabled:
        yield (
            "flash encryption is not enabled: firmware and data can be read from the flash "
            f"chip (CONFIG_SECURE_FLASH_ENC_ENABLED=n, {_kfile('SECURE_FLASH_ENC_ENABLED')})",
            ("SECURE_FLASH_ENC_ENABLED",),
        )


def _flash_encryption_development(s: ConfigSubject) -> Iterator[tuple[str, tuple[str, ...]]]:
    c = s.config
    if c.secure_flash_enc_enabled and (
        c.secure_flash_encryption_mode is FlashEncryptionMode.DEVELOPMENT
    ):
        yield (
            "flash encryption is in development mode: ROM download mode can still write "
            "and encrypt chosen plaintext, and SPI_BOOT_CRYPT_CNT can be incremented",
            ("SECURE_FLASH_ENCRYPTION_MODE_DEVELOPMENT",),
        )


def _uart_bootloader_crypto(s: ConfigSubject) -> Iterator[tuple[str, tuple[str, ...]]]:
    names = (
        "SECURE_FLASH_UART_BOOTLOADER_ALLOW_ENC",
        "SECURE_FLASH_UART_BOOTLOADER_ALLOW_DEC",
        "SECURE_FLASH_UART_BOOTLOADER_ALLOW_CACHE",
    )
    on = [n for n in names if _on(s.config, n)]
    if on:
        yield (
            "the UART bootloader keeps flash-encryption access: "
            + ", ".join(f"CONFIG_{n}" for n in on),
            tuple(on),
        )


def _check_enc_in_app(s: ConfigSubject) -> Iterator[tuple[str, tuple[str, ...]]]:
    c = s.config
    if c.secure_flash_enc_enabled and not c.secure_flash_check_enc_en_in_app:
        yield (
            "the app does not abort when flash encryption is found off "
            "(CONFIG_SECURE_FLASH_CHECK_ENC_EN_IN_APP=n)",
            ("SECURE_FLASH_CHECK_ENC_EN_IN_APP",),
        )


def _download_mode_open(s: ConfigSubject) -> Iterator[tuple[str, tuple[str, ...]]]:
    if s.config.secure_uart_rom_dl_mode is RomDownloadMode.INSECURE_ALLOW:
        yield (
            "UART ROM download mode stays fully enabled: flash and eFuses can be read and "
            "written over UART (SECURE_UART_ROM_DL_MODE = SECURE_INSECURE_ALLOW_DL_MODE)",
            ("SECURE_INSECURE_ALLOW_DL_MODE",),
        )


def _memprot_off(s: ConfigSubject) -> Iterator[tuple[str, tuple[str, ...]]]:
    mp = memory_protection(s.config)
    if mp.supported and not mp.enabled:
        yield (
            f"memory protection ({mp.scheme}) is off: injected code can run from data "
            f"memory (CONFIG_{MEMPROT_OPTION}=n, {_kfile(MEMPROT_OPTION)})",
            (MEMPROT_OPTION,),
        )


def _memprot_unlocked(s: ConfigSubject) -> Iterator[tuple[str, tuple[str, ...]]]:
    mp = memory_protection(s.config)
    if mp.enabled and mp.locked is False:
        yield (
            "PMS memory protection is not locked: code can change the permissions at run time",
            (LOCK_OPTION,),
        )


def _wifi_nvs_plain(s: ConfigSubject) -> Iterator[tuple[str, tuple[str, ...]]]:
    c = s.config
    wifi = _on(c, "ESP_WIFI_ENABLED") or _on(c, "ESP_HOST_WIFI_ENABLED")
    if wifi and _on(c, "ESP_WIFI_NVS_ENABLED") and not c.nvs_encryption:
        yield (
            "the Wi-Fi driver stores station credentials in NVS (CONFIG_ESP_WIFI_NVS_ENABLED) "
            "and NVS is not encrypted: the passphrase can be read from flash",
            ("ESP_WIFI_NVS_ENABLED", "NVS_ENCRYPTION"),
        )


def _nvs_plain(s: ConfigSubject) -> Iterator[tuple[str, tuple[str, ...]]]:
    c = s.config
    if not c.nvs_encryption and not any(_wifi_nvs_plain(s)):  # NVS001 says it louder
        yield (
            "NVS is not encrypted: device-specific data in NVS can be read from flash "
            "(CONFIG_NVS_ENCRYPTION=n, components/nvs_flash/Kconfig)",
            ("NVS_ENCRYPTION",),
        )


def _bundle_missing(s: ConfigSubject) -> Iterator[tuple[str, tuple[str, ...]]]:
    c = s.config
    if not _on(c, "MBEDTLS_CERTIFICATE_BUNDLE"):
        yield (
            "no certificate bundle: each TLS connection must be given a CA certificate, "
            "or it cannot verify the server (CONFIG_MBEDTLS_CERTIFICATE_BUNDLE=n)",
            ("MBEDTLS_CERTIFICATE_BUNDLE",),
        )
    elif _on(c, "MBEDTLS_CERTIFICATE_BUNDLE_DEFAULT_NONE") and not _on(
        c, "MBEDTLS_CUSTOM_CERTIFICATE_BUNDLE"
    ):
        yield (
            "the certificate bundle is empty (DEFAULT_NONE and no custom bundle)",
            ("MBEDTLS_CERTIFICATE_BUNDLE_DEFAULT_NONE", "MBEDTLS_CUSTOM_CERTIFICATE_BUNDLE"),
        )


def _weak_min_auth_kconfig(s: ConfigSubject) -> Iterator[tuple[str, tuple[str, ...]]]:
    # The auth-mode threshold choice of ESP-IDF's examples (examples/wifi/getting_started/
    # station/main/Kconfig.projbuild, examples/common_components/protocol_examples_common/
    # Kconfig.projbuild), which products copy.
    for prefix in ("ESP_WIFI_AUTH_", "EXAMPLE_WIFI_AUTH_"):
        for weak in ("OPEN", "WEP", "WPA_PSK"):
            option = prefix + weak
            if s.config.raw.get(option) is True:
                yield (
                    f"the Wi-Fi scan threshold accepts {weak.replace('_', '-')} networks "
                    f"(CONFIG_{option}): the station may join an open or broken network",
                    (option,),
                )


# -- eFuse checks -----------------------------------------------------------------------


def _efuse(subject: DeviceSubject, name: str, value: object) -> Evidence:
    shown = (
        value if isinstance(value, str) else _text(value) if isinstance(value, bool) else str(value)
    )
    return Evidence("efuse", name, shown, subject.source)


def _device_check(
    test: Callable[[DeviceSubject], Iterable[tuple[str, tuple[Evidence, ...], str | None]]],
) -> Check:
    def check(ctx: Context) -> Iterator[Hit]:
        for subject in ctx.inputs.devices:
            for message, evidence, fix in test(subject):
                yield Hit(subject.source, message, evidence, fix)

    return check


DeviceHits = Iterator[tuple[str, tuple[Evidence, ...], str | None]]


def _ef_secure_boot_off(d: DeviceSubject) -> DeviceHits:
    if not security_state(d.efuses).secure_boot_enabled:
        yield (
            "Secure Boot is off in eFuse (SECURE_BOOT_EN = 0)",
            (_efuse(d, "SECURE_BOOT_EN", 0),),
            None,
        )


def _ef_unrevoked_slots(d: DeviceSubject) -> DeviceHits:
    state = security_state(d.efuses)
    if not state.secure_boot_enabled:
        return
    for slot in state.digest_slots:
        if slot.block is None and not slot.revoked:
            yield (
                f"key digest slot {slot.index} is unused and not revoked: a key digest "
                "could still be burned into it",
                (_efuse(d, f"SECURE_BOOT_KEY_REVOKE{slot.index}", 0),),
                f"espefuse burn-efuse SECURE_BOOT_KEY_REVOKE{slot.index} 1",
            )


def _ef_fe_off(d: DeviceSubject) -> DeviceHits:
    state = security_state(d.efuses)
    if not state.flash_encryption_enabled:
        yield (
            "flash encryption is off in eFuse (SPI_BOOT_CRYPT_CNT has an even number of bits)",
            (_efuse(d, "SPI_BOOT_CRYPT_CNT", f"0b{state.flash_crypt_cnt:03b}"),),
            None,
        )


def _ef_fe_development(d: DeviceSubject) -> DeviceHits:
    state = security_state(d.efuses)
    if state.flash_encryption_enabled and state.flash_encryption_mode != "release":
        facts = d.efuses.layout.facts.release_mode_fields
        open_fields = [n for n in facts if not d.efuses.get_int(n)]
        cnt = d.efuses.field("SPI_BOOT_CRYPT_CNT")
        evidence = [_efuse(d, "SPI_BOOT_CRYPT_CNT", f"0b{state.flash_crypt_cnt:03b}")]
        if d.efuses.is_writeable(cnt):
            evidence.append(_efuse(d, "WR_DIS(SPI_BOOT_CRYPT_CNT)", 0))
        evidence += [_efuse(d, n, 0) for n in open_fields]
        fix = "espefuse burn-efuse " + " ".join(f"{n} 1" for n in open_fields)
        yield (
            "flash encryption is in development mode: the counter is not locked or download "
            "mode may still encrypt or read through the cache",
            tuple(evidence),
            (fix + "; espefuse write-protect-efuse SPI_BOOT_CRYPT_CNT")
            if open_fields
            else "espefuse write-protect-efuse SPI_BOOT_CRYPT_CNT",
        )


def _secret_blocks(d: DeviceSubject) -> Iterator[tuple[str, str, bool, bool]]:
    """(block, purpose, read-protected, write-protected) of each burned secret-key block."""
    layout = d.efuses.layout
    for block in layout.key_blocks:
        purpose = layout.purpose_name(d.efuses.key_purpose(block))
        if purpose in ("USER", "RESERVED"):
            continue
        try:
            secret = layout.purpose(purpose).read_protect
        except UsageError:  # a purpose value the table does not name
            secret = False
        yield (
            block.name,
            purpose,
            secret,
            d.efuses.is_read_protected(block),
        )


def _ef_key_readable(d: DeviceSubject) -> DeviceHits:
    for block, purpose, secret, read_protected in _secret_blocks(d):
        if secret and not read_protected:
            yield (
                f"{block} holds a {purpose} key that software and download mode can read",
                (_efuse(d, f"RD_DIS({block})", 0), _efuse(d, f"KEY_PURPOSE({block})", purpose)),
                f"espefuse read-protect-efuse {block}",
            )


def _ef_key_writable(d: DeviceSubject) -> DeviceHits:
    layout = d.efuses.layout
    for block in layout.key_blocks:
        purpose = layout.purpose_name(d.efuses.key_purpose(block))
        if purpose in ("USER", "RESERVED"):
            continue
        pf = layout.field(block.purpose_field or "")
        evidence = []
        if not d.efuses.is_write_protected(block):
            evidence.append(_efuse(d, f"WR_DIS({block.name})", 0))
        if d.efuses.is_writeable(pf):
            evidence.append(_efuse(d, f"WR_DIS({pf.name})", 0))
        if evidence:
            yield (
                f"{block.name} ({purpose}) or its purpose is not write-protected: more bits "
                "can be burned into it",
                tuple(evidence),
                f"espefuse write-protect-efuse {block.name} {pf.name}",
            )


def _ef_jtag(d: DeviceSubject) -> DeviceHits:
    state = security_state(d.efuses)
    if state.jtag.mode == "enabled":
        yield (
            "the JTAG pads are enabled (DIS_PAD_JTAG = 0, SOFT_DIS_JTAG even)",
            (
                _efuse(d, "DIS_PAD_JTAG", 0),
                _efuse(d, "SOFT_DIS_JTAG", d.efuses.get_int("SOFT_DIS_JTAG")),
            ),
            "espefuse burn-efuse DIS_PAD_JTAG 1",
        )


def _ef_jtag_soft(d: DeviceSubject) -> DeviceHits:
    state = security_state(d.efuses)
    if state.jtag.mode == "soft-disabled" and state.jtag.hmac_reenable_blocks:
        yield (
            "JTAG is soft-disabled and can be re-enabled with an HMAC token of "
            + ", ".join(state.jtag.hmac_reenable_blocks),
            (_efuse(d, "SOFT_DIS_JTAG", d.efuses.get_int("SOFT_DIS_JTAG")),),
            "espefuse burn-efuse DIS_PAD_JTAG 1 (if no debug access is ever needed)",
        )


def _ef_usb_jtag(d: DeviceSubject) -> DeviceHits:
    if d.efuses.layout.has_field("DIS_USB_JTAG") and not d.efuses.get_int("DIS_USB_JTAG"):
        if d.efuses.layout.has_field("DIS_USB_SERIAL_JTAG") and d.efuses.get_int(
            "DIS_USB_SERIAL_JTAG"
        ):
            return
        yield (
            "USB-Serial-JTAG's JTAG is enabled (DIS_USB_JTAG = 0)",
            (_efuse(d, "DIS_USB_JTAG", 0),),
            "espefuse burn-efuse DIS_USB_JTAG 1",
        )


def _ef_download(d: DeviceSubject) -> DeviceHits:
    for policy in download_policies(d.efuses):
        if policy.available and not policy.secure:
            yield (
                f"ROM download mode is fully open on {policy.interface.value}: "
                "flash and eFuses can be read and written",
                (
                    _efuse(d, "DIS_DOWNLOAD_MODE", 0),
                    _efuse(d, "ENABLE_SECURITY_DOWNLOAD", 0),
                ),
                "espefuse burn-efuse ENABLE_SECURITY_DOWNLOAD 1 (or DIS_DOWNLOAD_MODE 1)",
            )
            return


def _ef_direct_boot(d: DeviceSubject) -> DeviceHits:
    if d.efuses.layout.has_field("DIS_DIRECT_BOOT") and not d.efuses.get_int("DIS_DIRECT_BOOT"):
        yield (
            "legacy direct boot from flash is allowed (DIS_DIRECT_BOOT = 0): code can run "
            "without the bootloader's checks",
            (_efuse(d, "DIS_DIRECT_BOOT", 0),),
            "espefuse burn-efuse DIS_DIRECT_BOOT 1",
        )


def _ef_rd_dis_writable(d: DeviceSubject) -> DeviceHits:
    if not security_state(d.efuses).secure_boot_enabled:
        return
    if d.efuses.is_writeable("RD_DIS"):
        yield (
            "RD_DIS is not write-protected: more blocks (e.g. key digests) can be "
            "read-disabled, which a fault-injection attack could exploit",
            (_efuse(d, "WR_DIS(RD_DIS)", 0),),
            "espefuse write-protect-efuse RD_DIS",
        )


def _nvs_device(d: DeviceSubject) -> DeviceHits:
    for state in d.nvs:
        if state.plaintext and state.wifi_credentials:
            yield (
                f"NVS partition {state.partition} holds Wi-Fi credentials "
                f"(namespace nvs.net80211) in plaintext on flash",
                (
                    Evidence(
                        "nvs",
                        f"{state.partition}/nvs.net80211",
                        "plaintext",
                        d.source,
                        offset=state.offset,
                    ),
                ),
                None,
            )


# -- anti-rollback ------------------------------------------------------------------------


def _secure_version_below_efuse(ctx: Context) -> Iterator[Hit]:
    for d in ctx.inputs.devices:
        burned = security_state(d.efuses).secure_version
        for image in ctx.inputs.images:
            if image.chip not in (None, d.chip) or image.desc.secure_version >= burned:
                continue
            yield Hit(
                image.source,
                f"secure_version {image.desc.secure_version} is below the "
                f"{burned} burned in {d.source}: the device refuses this app",
                (
                    Evidence(
                        "image",
                        "secure_version",
                        str(image.desc.secure_version),
                        image.source,
                        offset=4,
                    ),
                    _efuse(d, "SECURE_VERSION", f"{burned} bits set"),
                ),
            )
        for bundle in ctx.inputs.bundles:
            st = bundle.statement
            if st.chip != d.chip or st.secure_version >= burned:
                continue
            yield Hit(
                bundle.source,
                f"release secure_version {st.secure_version} is below the {burned} burned in "
                f"{d.source}: the device refuses this update",
                (
                    Evidence(
                        "bundle",
                        "release.json secure_version",
                        str(st.secure_version),
                        bundle.source,
                    ),
                    _efuse(d, "SECURE_VERSION", f"{burned} bits set"),
                ),
            )


def _efuse_version_not_raised(ctx: Context) -> Iterator[Hit]:
    for d in ctx.inputs.devices:
        if d.config is None or not d.config.bootloader_app_anti_rollback:
            continue
        burned = security_state(d.efuses).secure_version
        for app in d.apps:
            if not app.ok or app.secure_version is None or app.ota_state not in (None, "VALID"):
                continue
            if app.secure_version > burned:
                yield Hit(
                    d.source,
                    f"{app.partition} runs secure_version {app.secure_version} but the eFuse "
                    f"holds {burned}: older, vulnerable apps can still boot",
                    (
                        Evidence(
                            "device",
                            f"{app.partition} secure_version",
                            str(app.secure_version),
                            d.source,
                            offset=app.offset,
                        ),
                        _efuse(d, "SECURE_VERSION", f"{burned} bits set"),
                    ),
                )


def _secure_version_too_wide(ctx: Context) -> Iterator[Hit]:
    width = {c.source: c.config.bootloader_app_sec_ver_size_efuse_field for c in ctx.inputs.configs}
    for image in ctx.inputs.images:
        bits = get_chip(image.chip).secure_version_bits if image.chip else None
        limit = min([w for w in width.values()] + ([bits] if bits else []), default=None)
        if limit is not None and image.desc.secure_version > limit:
            yield Hit(
                image.source,
                f"secure_version {image.desc.secure_version} does not fit the {limit}-bit "
                "eFuse field: anti-rollback cannot record it",
                (
                    Evidence(
                        "image",
                        "secure_version",
                        str(image.desc.secure_version),
                        image.source,
                        offset=4,
                    ),
                ),
            )


# -- Wi-Fi policy, bundles, keys, versions, advisories ----------------------------------


def _policy_weak_auth(ctx: Context) -> Iterator[Hit]:
    for p in ctx.inputs.policies:
        if (
            p.policy.min_auth_mode in (AuthMode.OPEN, AuthMode.WEP, AuthMode.WPA_PSK)
            and not p.policy.wpa3_only
        ):
            yield Hit(
                p.source,
                f"the station accepts networks down to {auth_name(p.policy.min_auth_mode)} "
                "(wifi_sta_config_t.threshold.authmode)",
                (Evidence("policy", "min_auth_mode", auth_name(p.policy.min_auth_mode), p.source),),
            )


def _policy_pmf(ctx: Context) -> Iterator[Hit]:
    for p in ctx.inputs.policies:
        if not p.policy.pmf_required:
            yield Hit(
                p.source,
                "Protected Management Frames are not required (pmf_cfg.required = false): "
                "deauthentication and disassociation frames can be forged",
                (Evidence("policy", "pmf_required", "false", p.source),),
            )


def _bundle_plain(ctx: Context) -> Iterator[Hit]:
    for b in ctx.inputs.bundles:
        kinds = {p.encryption for p in b.statement.payloads}
        if kinds <= {"none"}:
            yield Hit(
                b.source,
                "the release carries only a plaintext image: it is readable in transit and "
                "on the server (no pre-encrypted payload)",
                (Evidence("bundle", "payloads[].encryption", ", ".join(sorted(kinds)), b.source),),
            )


def _keys_reused(ctx: Context) -> Iterator[Hit]:
    seen: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for d in ctx.inputs.devices:
        for block, fingerprint in d.key_fingerprints.items():
            seen[fingerprint].append((d.source, block))
    for fingerprint, holders in seen.items():
        devices = {src for src, _ in holders}
        if len(devices) < 2:
            continue
        yield Hit(
            ", ".join(sorted(devices)),
            f"one secret key is burned in {len(devices)} devices: extracting it from one "
            "compromises all",
            tuple(
                Evidence("efuse", block, f"key fingerprint {fingerprint[:16]}…", src)
                for src, block in holders
            ),
        )
    by_key: dict[tuple[str, str], list[str]] = defaultdict(list)
    for record in ctx.inputs.manifests:
        for name, value in record.public_keys.items():
            by_key[(name, value)].append(f"{record.source}:{record.line} ({record.serial})")
        if record.certificate_sha256:
            by_key[("certificate", record.certificate_sha256)].append(
                f"{record.source}:{record.line} ({record.serial})"
            )
    for (name, value), where in by_key.items():
        if len(where) < 2:
            continue
        yield Hit(
            where[0].split(":")[0],
            f"the same {name} appears for {len(where)} devices: the device identity is not "
            "per-device",
            tuple(Evidence("manifest", name, value[:24] + "…", w) for w in where),
        )


def _version_subjects(ctx: Context) -> Iterator[tuple[VersionSubject, IdfVersion]]:
    for v in ctx.inputs.versions:
        if v.version is not None:
            yield v, v.version


def _version_evidence(v: VersionSubject) -> Evidence:
    return Evidence("version", v.where, v.text, v.source, offset=v.offset)


def _not_latest(ctx: Context) -> Iterator[Hit]:
    releases = ctx.database.releases
    for v, version in _version_subjects(ctx):
        branch = releases.branch(version)
        if branch is None or version.prerelease:
            continue
        latest = IdfVersion.parse(branch.latest)
        if latest is not None and version.key < latest.key:
            yield Hit(
                v.source,
                f"ESP-IDF {v.text} is not the latest bugfix release of release/v{branch.branch}: "
                f"{branch.latest} ({branch.latest_date.isoformat()}; table recorded "
                f"{releases.recorded.isoformat()})",
                (_version_evidence(v),),
                fix=f"Update to ESP-IDF v{branch.latest} (git checkout v{branch.latest}), rebuild.",
            )


def _end_of_support(ctx: Context) -> Iterator[Hit]:
    releases = ctx.database.releases
    oldest = min(releases.branches, key=lambda b: b.released)
    for v, version in _version_subjects(ctx):
        branch = releases.branch(version)
        if branch is None:
            if version.key < (
                int(oldest.branch.split(".")[0]),
                int(oldest.branch.split(".")[1]),
                0,
                0,
            ):
                yield Hit(
                    v.source,
                    f"ESP-IDF {v.text} is older than every supported release: no security fixes",
                    (_version_evidence(v),),
                )
            continue
        end = releases.end_of_support(branch)
        if end <= ctx.as_of:
            newest = releases.newest()
            yield Hit(
                v.source,
                f"ESP-IDF release/v{branch.branch} reached end of life on {end.isoformat()} "
                f"({releases.support_months} months after {branch.released.isoformat()}): it "
                "gets no more security fixes",
                (_version_evidence(v),),
                fix=f"Move to a supported release (newest: v{newest.latest}).",
            )


def _version_unknown(ctx: Context) -> Iterator[Hit]:
    for v in ctx.inputs.versions:
        if v.version is None:
            yield Hit(
                v.source,
                f"the ESP-IDF version {v.text!r} is not a release: advisories cannot be matched",
                (_version_evidence(v),),
            )
        elif v.version.prerelease:
            yield Hit(
                v.source,
                f"ESP-IDF {v.text} is a pre-release: outside every support period",
                (_version_evidence(v),),
            )


def requires_holds(advisory: Advisory, config: BootloaderConfig) -> bool:
    """The advisory's Kconfig condition holds for ``config`` (symbols outside the option
    table read the input's value; an absent one is ``n``, their Kconfig default)."""
    condition = advisory.condition()
    if condition is None:
        return True

    def lookup(name: str) -> kexpr.Value | None:
        if name in TABLE.rows:
            return config.value(name)
        return config.raw.get(name)

    return kexpr.truth(condition, lookup)


def _advisories(ctx: Context) -> Iterator[Hit]:
    configs = ctx.inputs.configs
    only = configs[0].config if len(configs) == 1 else None
    for v, version in _version_subjects(ctx):
        config = v.config or only
        for advisory in ctx.database.matching(version, v.chip):
            if config is not None and not requires_holds(advisory, config):
                continue
            fixed = advisory.fixed_in(version)
            unknown = (
                f"; the build configuration is unknown, so whether {advisory.requires} holds "
                "was not checked"
                if config is None and advisory.requires
                else ""
            )
            fix = (
                f"Update ESP-IDF to v{fixed} or later and rebuild."
                if fixed
                else "No ESP-IDF fix: apply the advisory's mitigations."
            )
            aliases = f" ({', '.join(advisory.aliases)})" if advisory.aliases else ""
            yield Hit(
                v.source,
                f"{advisory.id}{aliases}: {advisory.title}; ESP-IDF {v.text} is affected"
                + (f", fixed in {fixed}" if fixed else ", no fixed release")
                + unknown,
                (
                    _version_evidence(v),
                    Evidence("advisory", advisory.id, advisory.severity.label, advisory.source),
                ),
                fix=fix,
                severity=advisory.severity,
                advisory=advisory.id,
                help_uri=advisory.source,
            )


# -- the rule list ---------------------------------------------------------------------------

S = Severity
_SB_BP = _guide("Secure Boot Best Practices")
_FE_BP = _guide("Flash Encryption Best Practices")


def _k(
    id: str,
    name: str,
    title: str,
    guide: str,
    fix: str,
    severity: Severity,
    development: Severity | None,
    test: ConfigTest,
) -> Rule:
    return Rule(id, name, title, guide, fix, severity, development, _config_check(test))


def _d(
    id: str,
    name: str,
    title: str,
    guide: str,
    fix: str,
    severity: Severity,
    development: Severity | None,
    test: Callable[[DeviceSubject], DeviceHits],
) -> Rule:
    return Rule(id, name, title, guide, fix, severity, development, _device_check(test))


RULES: tuple[Rule, ...] = (
    # Secure Boot (Kconfig)
    _k(
        "SB001",
        "secure-boot-disabled",
        "Hardware Secure Boot is not enabled",
        _guide("Secure Boot"),
        "Set CONFIG_SECURE_BOOT=y (Security features → Enable hardware Secure Boot in bootloader).",
        S.HIGH,
        None,
        _secure_boot_off,
    ),
    _k(
        "SB002",
        "signed-apps-without-secure-boot",
        "Apps are signed but the bootloader is not verified",
        _guide("Secure Boot"),
        "Enable hardware Secure Boot (CONFIG_SECURE_BOOT=y).",
        S.MEDIUM,
        None,
        _signed_without_secure_boot,
    ),
    _k(
        "SB003",
        "secure-boot-insecure-options",
        "Potentially insecure Secure Boot options are unlocked",
        _SB_BP,
        "Set CONFIG_SECURE_BOOT_INSECURE=n.",
        S.HIGH,
        S.LOW,
        _when("SECURE_BOOT_INSECURE", 'the "Allow potentially insecure options" menu is enabled'),
    ),
    _k(
        "SB005",
        "secure-boot-allow-short-app-partition",
        "The app partition padding check is off",
        _SB_BP,
        "Set CONFIG_SECURE_BOOT_ALLOW_SHORT_APP_PARTITION=n.",
        S.MEDIUM,
        None,
        _when(
            "SECURE_BOOT_ALLOW_SHORT_APP_PARTITION",
            "app partitions shorter than 64 KB padding are allowed",
        ),
    ),
    _k(
        "SB006",
        "secure-boot-allow-unused-digest-slots",
        "Unused key digest slots are left open",
        _SB_BP,
        "Set CONFIG_SECURE_BOOT_ALLOW_UNUSED_DIGEST_SLOTS=n.",
        S.MEDIUM,
        None,
        _when(
            "SECURE_BOOT_ALLOW_UNUSED_DIGEST_SLOTS",
            "the first boot does not revoke unused key digest slots",
        ),
    ),
    _k(
        "SB007",
        "secure-boot-allow-efuse-rd-dis",
        "RD_DIS is left writable",
        _SB_BP,
        "Set CONFIG_SECURE_BOOT_V2_ALLOW_EFUSE_RD_DIS=n.",
        S.MEDIUM,
        None,
        _when("SECURE_BOOT_V2_ALLOW_EFUSE_RD_DIS", "the first boot does not write-protect RD_DIS"),
    ),
    _k(
        "SB008",
        "secure-boot-aggressive-revoke",
        "A failed verification revokes a key slot",
        _guide("Secure Boot"),
        "Keep it only if losing a slot to a corrupted image is acceptable.",
        S.INFO,
        S.INFO,
        _when(
            "SECURE_BOOT_ENABLE_AGGRESSIVE_KEY_REVOKE",
            "the ROM revokes a key digest on any failed verification;"
            " corrupting flash can exhaust the slots",
        ),
    ),
    _k(
        "SB010",
        "secure-boot-ecdsa-p192",
        "Secure Boot signs with ECDSA P-192",
        _SB_BP,
        "Use RSA-3072 or ECDSA P-256/P-384 (CONFIG_SECURE_BOOT_ECDSA_KEY_LEN_256_BITS).",
        S.MEDIUM,
        S.LOW,
        _ecdsa_192,
    ),
    _k(
        "SB011",
        "secure-boot-ecdsa-erratum",
        "ECDSA Secure Boot V2 on an affected chip",
        _SB_BP,
        "Use RSA-3072 Secure Boot V2 (CONFIG_SECURE_SIGNED_APPS_RSA_SCHEME=y).",
        S.HIGH,
        S.MEDIUM,
        _ecdsa_erratum,
    ),
    # Flash encryption (Kconfig)
    _k(
        "FE001",
        "flash-encryption-disabled",
        "Flash encryption is not enabled",
        _guide("Flash Encryption"),
        "Set CONFIG_SECURE_FLASH_ENC_ENABLED=y with CONFIG_SECURE_FLASH_ENCRYPTION_MODE_RELEASE=y.",
        S.HIGH,
        None,
        _flash_encryption_off,
    ),
    _k(
        "FE002",
        "flash-encryption-development-mode",
        "Flash encryption is in development mode",
        _FE_BP,
        "Set CONFIG_SECURE_FLASH_ENCRYPTION_MODE_RELEASE=y.",
        S.HIGH,
        None,
        _flash_encryption_development,
    ),
    _k(
        "FE003",
        "uart-bootloader-flash-crypto",
        "The UART bootloader keeps flash-encryption access",
        _FE_BP,
        "Turn off CONFIG_SECURE_FLASH_UART_BOOTLOADER_ALLOW_ENC/_DEC/_CACHE.",
        S.HIGH,
        S.LOW,
        _uart_bootloader_crypto,
    ),
    _k(
        "FE004",
        "app-does-not-check-flash-encryption",
        "The app does not check that flash encryption is on",
        _guide("Flash Encryption"),
        "Set CONFIG_SECURE_FLASH_CHECK_ENC_EN_IN_APP=y.",
        S.LOW,
        None,
        _check_enc_in_app,
    ),
    _k(
        "FE005",
        "skip-cache-write-protection",
        "DIS_ICACHE is left writable",
        _FE_BP,
        "Set CONFIG_SECURE_FLASH_SKIP_WRITE_PROTECTION_CACHE=n.",
        S.MEDIUM,
        None,
        _when(
            "SECURE_FLASH_SKIP_WRITE_PROTECTION_CACHE",
            "the first boot skips write-protecting the cache-disable eFuse",
        ),
    ),
    # Download mode, JTAG (Kconfig)
    _k(
        "DL001",
        "rom-download-mode-open",
        "UART ROM download mode stays open",
        _guide("Debug Interfaces / UART Download Mode"),
        "Choose CONFIG_SECURE_ENABLE_SECURE_ROM_DL_MODE or CONFIG_SECURE_DISABLE_ROM_DL_MODE.",
        S.HIGH,
        None,
        _download_mode_open,
    ),
    _k(
        "DBG001",
        "secure-boot-allows-jtag",
        "Secure Boot leaves JTAG enabled",
        _guide("Debug Interfaces / JTAG"),
        "Set CONFIG_SECURE_BOOT_ALLOW_JTAG=n.",
        S.HIGH,
        None,
        _when(
            "SECURE_BOOT_ALLOW_JTAG",
            "JTAG stays enabled after Secure Boot/flash encryption;"
            " a debugger can read decrypted flash",
        ),
    ),
    # Memory protection
    _k(
        "MP001",
        "memory-protection-off",
        "Memory protection is off",
        _guide("Memory Protection"),
        f"Set CONFIG_{MEMPROT_OPTION}=y (CONFIG_ESP_SYSTEM_MEMPROT_FEATURE=y before ESP-IDF v6.0).",
        S.MEDIUM,
        S.LOW,
        _memprot_off,
    ),
    _k(
        "MP002",
        "memory-protection-unlocked",
        "PMS memory protection is not locked",
        _guide("Memory Protection"),
        f"Set CONFIG_{LOCK_OPTION}=y.",
        S.LOW,
        None,
        _memprot_unlocked,
    ),
    # Secure storage
    _k(
        "NVS001",
        "wifi-credentials-unencrypted",
        "Wi-Fi credentials go to unencrypted NVS",
        _guide("Secure Storage"),
        "Set CONFIG_NVS_ENCRYPTION=y (with flash encryption, or the HMAC scheme).",
        S.HIGH,
        S.LOW,
        _wifi_nvs_plain,
    ),
    _k(
        "NVS002",
        "nvs-unencrypted",
        "NVS is not encrypted",
        _guide("Secure Storage"),
        "Set CONFIG_NVS_ENCRYPTION=y.",
        S.LOW,
        None,
        _nvs_plain,
    ),
    _d(
        "NVS003",
        "wifi-credentials-in-plaintext-flash",
        "Wi-Fi credentials are readable from flash",
        _guide("Secure Storage"),
        "Enable NVS encryption, erase the NVS partition and provision again.",
        S.HIGH,
        S.LOW,
        _nvs_device,
    ),
    # TLS and OTA
    _k(
        "TLS001",
        "tls-server-verification-off",
        "ESP-TLS skips server certificate verification",
        _guide("TLS (Transport Layer Security) / ESP-TLS Abstraction"),
        "Set CONFIG_ESP_TLS_SKIP_SERVER_CERT_VERIFY=n and CONFIG_ESP_TLS_INSECURE=n.",
        S.HIGH,
        S.MEDIUM,
        _when("ESP_TLS_SKIP_SERVER_CERT_VERIFY", "TLS connections without a CA accept any server"),
    ),
    _k(
        "TLS002",
        "certificate-bundle-missing",
        "No certificate bundle for server verification",
        _guide("TLS (Transport Layer Security) / ESP Certificate Bundle"),
        "Set CONFIG_MBEDTLS_CERTIFICATE_BUNDLE=y (full or common bundle, or a custom one).",
        S.MEDIUM,
        S.LOW,
        _bundle_missing,
    ),
    _k(
        "TLS003",
        "tls-insecure-options",
        "ESP-TLS insecure options are unlocked",
        _guide("TLS (Transport Layer Security) / ESP-TLS Abstraction"),
        "Set CONFIG_ESP_TLS_INSECURE=n.",
        S.LOW,
        None,
        _when(
            "ESP_TLS_INSECURE", 'the ESP-TLS "Allow potentially insecure options" menu is enabled'
        ),
    ),
    _k(
        "TLS004",
        "tls-server-client-cert-optional",
        "The TLS server does not require client certificates",
        _guide("TLS (Transport Layer Security) / ESP-TLS Abstraction"),
        "Set CONFIG_ESP_TLS_SERVER_MIN_AUTH_MODE_OPTIONAL=n.",
        S.LOW,
        None,
        _when(
            "ESP_TLS_SERVER_MIN_AUTH_MODE_OPTIONAL",
            "an ESP-TLS server accepts clients without a certificate",
        ),
    ),
    _k(
        "OTA001",
        "ota-plain-http",
        "OTA over plain HTTP is allowed",
        _guide("Secure OTA (Over-the-air) Updates"),
        "Set CONFIG_ESP_HTTPS_OTA_ALLOW_HTTP=n.",
        S.HIGH,
        S.LOW,
        _when(
            "ESP_HTTPS_OTA_ALLOW_HTTP",
            "esp_https_ota accepts http:// URLs: updates can be tampered with in transit",
        ),
    ),
    _k(
        "OTA002",
        "app-rollback-off",
        "App rollback is off",
        _guide("Secure OTA (Over-the-air) Updates"),
        "Set CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE=y.",
        S.MEDIUM,
        None,
        _when(
            "BOOTLOADER_APP_ROLLBACK_ENABLE",
            "a new app is trusted before it proves it works",
            value=False,
        ),
    ),
    _k(
        "OTA003",
        "anti-rollback-off",
        "Anti-rollback is off",
        _guide("Secure OTA (Over-the-air) Updates / Anti-Rollback Protection"),
        "Set CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK=y.",
        S.MEDIUM,
        None,
        _when(
            "BOOTLOADER_APP_ANTI_ROLLBACK",
            "an older, signed app with known vulnerabilities can be installed",
            value=False,
        ),
    ),
    _k(
        "OTA004",
        "bootloader-anti-rollback-off",
        "The recovery bootloader has no anti-rollback",
        _guide("Secure OTA (Over-the-air) Updates / Anti-Rollback Protection"),
        "Set CONFIG_BOOTLOADER_ANTI_ROLLBACK_ENABLE=y.",
        S.LOW,
        None,
        lambda s: (
            _when(
                "BOOTLOADER_ANTI_ROLLBACK_ENABLE",
                "an older bootloader can be installed",
                value=False,
            )(s)
            if _on(s.config, "BOOTLOADER_RECOVERY_ENABLE")
            else iter(())
        ),
    ),
    Rule(
        "OTA005",
        "release-not-encrypted",
        "The release is distributed unencrypted",
        _guide("Secure OTA (Over-the-air) Updates / Encrypted Firmware Distribution"),
        "Pack the release with a pre-encrypted payload (espsec ota pack --recipient-key ...).",
        S.LOW,
        None,
        _bundle_plain,
    ),
    # Anti-rollback versions
    Rule(
        "AR001",
        "secure-version-below-efuse",
        "An app's secure_version is below the device's eFuse",
        _guide("Secure OTA (Over-the-air) Updates / Anti-Rollback Protection"),
        "Build the app with CONFIG_BOOTLOADER_APP_SECURE_VERSION at or above the eFuse value.",
        S.MEDIUM,
        S.LOW,
        _secure_version_below_efuse,
    ),
    Rule(
        "AR002",
        "efuse-secure-version-not-raised",
        "The eFuse secure version lags the running app",
        _guide("Secure OTA (Over-the-air) Updates / Anti-Rollback Protection"),
        "Mark the app valid (esp_ota_mark_app_valid_cancel_rollback) so the bootloader"
        " burns its secure_version.",
        S.MEDIUM,
        None,
        _efuse_version_not_raised,
    ),
    Rule(
        "AR003",
        "secure-version-exceeds-efuse-field",
        "secure_version does not fit the eFuse field",
        _guide("Secure OTA (Over-the-air) Updates / Anti-Rollback Protection"),
        "Keep secure_version within CONFIG_BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD bits.",
        S.MEDIUM,
        S.LOW,
        _secure_version_too_wide,
    ),
    # Build options for testing only
    _k(
        "CFG001",
        "test-only-require-already-enabled",
        'A test-only "require already enabled" guard is set',
        _SB_BP,
        "Make sure the factory burns the feature before the first boot, or unset the option.",
        S.INFO,
        S.INFO,
        _require_already_enabled,
    ),
    _k(
        "CFG002",
        "efuse-virtual",
        "eFuses are virtual",
        _SB_BP,
        "Set CONFIG_EFUSE_VIRTUAL=n.",
        S.HIGH,
        S.LOW,
        _efuse_virtual,
    ),
    _k(
        "CFG003",
        "efuse-secure-version-emulate",
        "The secure version eFuse is emulated in flash",
        _guide("Secure OTA (Over-the-air) Updates / Anti-Rollback Protection"),
        "Set CONFIG_BOOTLOADER_EFUSE_SECURE_VERSION_EMULATE=n.",
        S.HIGH,
        S.LOW,
        _when(
            "BOOTLOADER_EFUSE_SECURE_VERSION_EMULATE",
            "anti-rollback reads an emulated, rewritable secure version",
        ),
    ),
    _k(
        "CFG004",
        "partition-table-md5-off",
        "The partition table has no MD5 checksum",
        _FE_BP,
        "Set CONFIG_PARTITION_TABLE_MD5=y.",
        S.LOW,
        None,
        _when("PARTITION_TABLE_MD5", "a corrupted partition table is not detected", value=False),
    ),
    # Wi-Fi and provisioning
    Rule(
        "WIFI001",
        "wifi-weak-min-auth-mode",
        "The station accepts weak Wi-Fi security",
        _guide("Network Security / Wi-Fi"),
        "Set the auth-mode threshold to WPA2-PSK or stronger.",
        S.MEDIUM,
        S.LOW,
        lambda ctx: [*_policy_weak_auth(ctx), *_config_check(_weak_min_auth_kconfig)(ctx)],
    ),
    Rule(
        "WIFI002",
        "wifi-pmf-not-required",
        "Protected Management Frames are not required",
        _guide("Network Security / Wi-Fi"),
        "Set wifi_config_t.sta.pmf_cfg.required = true.",
        S.LOW,
        None,
        _policy_pmf,
    ),
    _k(
        "WIFI003",
        "wifi-wpa3-disabled",
        "WPA3-Personal support is not built",
        _guide("Network Security / Wi-Fi"),
        "Set CONFIG_ESP_WIFI_ENABLE_WPA3_SAE=y.",
        S.LOW,
        None,
        lambda s: (
            _when(
                "ESP_WIFI_ENABLE_WPA3_SAE",
                "the station cannot use WPA3 (SAE, PMF mandatory)",
                value=False,
            )(s)
            if _on(s.config, "ESP_WIFI_ENABLED")
            else iter(())
        ),
    ),
    _k(
        "PROV001",
        "provisioning-security-0",
        "Provisioning without security (protocomm security 0) is built in",
        _guide("Product Security / Secure Provisioning"),
        "Set CONFIG_ESP_PROTOCOMM_SUPPORT_SECURITY_VERSION_0=n and provision with security 2.",
        S.MEDIUM,
        None,
        _when(
            "ESP_PROTOCOMM_SUPPORT_SECURITY_VERSION_0",
            "protocomm security 0 (no encryption, no authentication) can be selected",
        ),
    ),
    _k(
        "PROV002",
        "provisioning-security-1",
        "Provisioning with security 1 is built in",
        _guide("Product Security / Secure Provisioning"),
        "Set CONFIG_ESP_PROTOCOMM_SUPPORT_SECURITY_VERSION_1=n and provision with"
        " security 2 (SRP6a).",
        S.LOW,
        None,
        _when(
            "ESP_PROTOCOMM_SUPPORT_SECURITY_VERSION_1",
            "protocomm security 1 (Curve25519 + proof of possession) can be selected",
        ),
    ),
    # eFuse state
    _d(
        "EF001",
        "efuse-secure-boot-off",
        "Secure Boot is not enabled in eFuse",
        _SB_BP,
        "Enable Secure Boot V2 in the bootloader build, or burn the key digest and SECURE_BOOT_EN.",
        S.HIGH,
        None,
        _ef_secure_boot_off,
    ),
    _d(
        "EF002",
        "efuse-digest-slot-unrevoked",
        "An unused key digest slot is not revoked",
        _SB_BP,
        "espefuse burn-efuse SECURE_BOOT_KEY_REVOKEn 1 for every unused slot.",
        S.MEDIUM,
        None,
        _ef_unrevoked_slots,
    ),
    _d(
        "EF003",
        "efuse-flash-encryption-off",
        "Flash encryption is not enabled in eFuse",
        _FE_BP,
        "Enable flash encryption (release mode) in the bootloader build.",
        S.HIGH,
        None,
        _ef_fe_off,
    ),
    _d(
        "EF004",
        "efuse-flash-encryption-development",
        "Flash encryption is not in release mode",
        _FE_BP,
        "espefuse burn-efuse DIS_DOWNLOAD_MANUAL_ENCRYPT 1 …;"
        " espefuse write-protect-efuse SPI_BOOT_CRYPT_CNT",
        S.HIGH,
        None,
        _ef_fe_development,
    ),
    _d(
        "EF005",
        "efuse-key-readable",
        "A secret key block is readable",
        _SB_BP,
        "espefuse read-protect-efuse BLOCK_KEYn",
        S.HIGH,
        S.MEDIUM,
        _ef_key_readable,
    ),
    _d(
        "EF006",
        "efuse-key-writable",
        "A key block is not write-protected",
        _SB_BP,
        "espefuse write-protect-efuse BLOCK_KEYn KEY_PURPOSE_n",
        S.MEDIUM,
        None,
        _ef_key_writable,
    ),
    _d(
        "EF007",
        "efuse-jtag-enabled",
        "JTAG is enabled in eFuse",
        _guide("Debug Interfaces / JTAG"),
        "espefuse burn-efuse DIS_PAD_JTAG 1",
        S.HIGH,
        None,
        _ef_jtag,
    ),
    _d(
        "EF008",
        "efuse-jtag-reenable-key",
        "Soft-disabled JTAG can be re-enabled with an HMAC key",
        _guide("Debug Interfaces / JTAG"),
        "Keep the HMAC_DOWN_JTAG key offline, or burn DIS_PAD_JTAG.",
        S.INFO,
        S.INFO,
        _ef_jtag_soft,
    ),
    _d(
        "EF009",
        "efuse-usb-jtag-enabled",
        "USB-Serial-JTAG's JTAG is enabled",
        _guide("Debug Interfaces / JTAG"),
        "espefuse burn-efuse DIS_USB_JTAG 1",
        S.HIGH,
        None,
        _ef_usb_jtag,
    ),
    _d(
        "EF010",
        "efuse-download-mode-open",
        "ROM download mode is fully open",
        _guide("Debug Interfaces / UART Download Mode"),
        "espefuse burn-efuse ENABLE_SECURITY_DOWNLOAD 1 (or DIS_DOWNLOAD_MODE 1)",
        S.HIGH,
        None,
        _ef_download,
    ),
    _d(
        "EF011",
        "efuse-direct-boot-enabled",
        "Legacy direct boot is allowed",
        _SB_BP,
        "espefuse burn-efuse DIS_DIRECT_BOOT 1",
        S.MEDIUM,
        None,
        _ef_direct_boot,
    ),
    _d(
        "EF012",
        "efuse-rd-dis-writable",
        "RD_DIS is not write-protected",
        _SB_BP,
        "espefuse write-protect-efuse RD_DIS",
        S.LOW,
        None,
        _ef_rd_dis_writable,
    ),
    # Per-device keys
    Rule(
        "KEY001",
        "key-shared-across-devices",
        "A secret or identity key is shared by several devices",
        _FE_BP,
        "Generate every flash-encryption, HMAC and identity key on or for each device.",
        S.HIGH,
        S.MEDIUM,
        _keys_reused,
    ),
    # ESP-IDF versions and advisories
    Rule(
        "IDF001",
        "idf-not-latest-bugfix",
        "ESP-IDF is not on the latest bugfix release of its branch",
        _guide("Software Updates"),
        "Update to the latest bugfix release of the branch.",
        S.MEDIUM,
        S.LOW,
        _not_latest,
    ),
    Rule(
        "IDF002",
        "idf-end-of-life",
        "ESP-IDF release is past its support period",
        _guide("Software Updates"),
        "Move to a supported ESP-IDF release.",
        S.HIGH,
        S.MEDIUM,
        _end_of_support,
    ),
    Rule(
        "IDF003",
        "idf-version-unknown",
        "The ESP-IDF version is not a supported release",
        _guide("Software Updates"),
        "Build from a tagged ESP-IDF release.",
        S.LOW,
        S.INFO,
        _version_unknown,
    ),
    Rule(
        "ADV001",
        "known-advisory",
        "A published security advisory affects the build",
        _guide("Advisories"),
        "Update ESP-IDF to a fixed release.",
        S.HIGH,
        S.HIGH,
        _advisories,
    ),
)
"""Every rule, in report order."""

RULES_BY_ID = {rule.id: rule for rule in RULES}


def run(ctx: Context) -> list[Finding]:
    """Every finding of every rule."""
    found: list[Finding] = []
    for rule in RULES:
        found += rule.run(ctx)
    return found
