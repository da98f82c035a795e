"""What an audit reads: any mix of projects, devices, eFuse states, images and bundles.

:func:`load_inputs` recognises each path by its content:

* an ESP-IDF project folder (``sdkconfig``; ``build/`` with ``flasher_args.json`` and
  ``project_description.json``), or a ``build/`` folder itself;
* a virtual device folder (``device.json``);
* an eFuse state: ``espefuse summary --format json`` output, or an espefuse virtual eFuse
  file (``--virt --path-efuse-file``; the chip from its espsec sidecar or ``chip``);
* an app image (its ``esp_app_desc_t``), a release bundle (``ota pack``);
* an ``sdkconfig`` / ``sdkconfig.defaults`` text or kconfgen ``sdkconfig.json``;
* a Wi-Fi station policy JSON (``min_auth_mode``, ``pmf_required``, ``wpa3_only``: what the
  app puts in ``wifi_config_t``);
* a factory ``manifest.jsonl`` (one public record per device).

:func:`read_port` reads the eFuses of a chip in download mode (a real port, or
``socket://`` of ``espsec device serve``) through espefuse's API.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from espsec import efuse
from espsec._io import read_bytes
from espsec.audit.advisories import IdfVersion
from espsec.audit.subjects import (
    BundleSubject,
    ConfigSubject,
    DeviceSubject,
    ImageSubject,
    Inputs,
    ManifestRecord,
    NvsState,
    PolicySubject,
    VersionSubject,
)
from espsec.chips import chip_by_image_id
from espsec.device.download.host import is_device_folder
from espsec.device.status import device_status
from espsec.device.virtual_device import VirtualDevice
from espsec.efuse.espefuse_summary import from_summary, is_summary
from espsec.errors import EspsecError, FormatError, UsageError, with_source
from espsec.flash_encryption.whole_flash import load_build_dir
from espsec.image import find_app_desc, parse_image
from espsec.image.descriptors import APP_DESC_SIZE, DESC_OFFSET, AppDesc
from espsec.image.partition_table import DATA, DATA_NVS
from espsec.nvs import read_partition
from espsec.ota.release import ReleaseBundle
from espsec.provisioning.wifi_prov import WifiPolicy, parse_auth
from espsec.sdkconfig import BootloaderConfig, read_json, read_sdkconfig

WIFI_NVS_NAMESPACE = "nvs.net80211"
"""Where ESP-IDF's Wi-Fi driver keeps station credentials (``WIFI_STORAGE_FLASH``)."""
_FINGERPRINT_DOMAIN = b"espsec-audit-key-fingerprint-v1\x00"


def load_inputs(
    paths: Sequence[str | Path], *, ports: Sequence[str] = (), chip: str | None = None
) -> Inputs:
    """Read every path (and every port); :class:`UsageError` for a path of no known kind."""
    found = Inputs()
    for path in paths:
        found.merge(load_path(Path(path), chip=chip))
    for port in ports:
        found.merge(read_port(port))
    if not found.described:
        raise UsageError("nothing to audit: give a project, device, eFuse state or image")
    return found


def load_path(path: Path, *, chip: str | None = None) -> Inputs:
    if path.is_dir():
        if is_device_folder(path):
            return _device_folder(path)
        if (path / "sdkconfig").is_file() or (path / "build" / "flasher_args.json").is_file():
            return _project(path, path / "build")
        if (path / "flasher_args.json").is_file():
            return _project(path.parent, path)
        raise UsageError(
            "not an ESP-IDF project, build folder or virtual device folder "
            "(no sdkconfig, flasher_args.json or device.json)",
            source=str(path),
        )
    data = read_bytes(path, what="input")
    name = str(path)
    if data.startswith(b"PK\x03\x04"):
        with with_source(name):
            return _bundle(name, data)
    if data[:1] == b"\xe9":
        with with_source(name):
            return _image(name, data)
    text = _text(data)
    if text is not None:
        stripped = text.lstrip()
        if stripped.startswith(("{", "[")):
            return _json(name, text, chip)
        if stripped.startswith(("CONFIG_", "#")) or not stripped:
            return _sdkconfig_text(name, data)
    return _efuse_file(path, chip)


def read_port(port: str) -> Inputs:
    """The eFuses of the chip on ``port``, read through espefuse's API."""
    from espsec.device.download.host import read_efuses

    efuses = read_efuses(port)
    where = f"chip on {port}"
    return Inputs(
        devices=[DeviceSubject(port, where, efuses, key_fingerprints=_fingerprints(efuses))],
        described=[f"{where} ({efuses.layout.chip.display_name}, eFuses read over download mode)"],
    )


# -- projects and configurations ------------------------------------------------------


def _sdkconfig(file: Path) -> ConfigSubject:
    data = read_bytes(file, what="sdkconfig")
    assignments = read_sdkconfig(data, source=str(file))
    config = BootloaderConfig.resolve(assignments)
    lines = {name: a.line for name, a in assignments.items() if a.line}
    return ConfigSubject(str(file), config, lines)


def _sdkconfig_text(name: str, data: bytes) -> Inputs:
    subject = _sdkconfig(Path(name))
    return Inputs(
        configs=[subject],
        described=[f"sdkconfig {name} ({subject.config.target})"],
    )


def _project(project: Path, build: Path) -> Inputs:
    found = Inputs()
    text = project / "sdkconfig"
    json_file = build / "config" / "sdkconfig.json"
    subject: ConfigSubject | None = None
    if text.is_file():
        subject = _sdkconfig(text)
    elif json_file.is_file():
        subject = _kconfgen_json(json_file)
    if subject is not None:
        found.configs.append(subject)
    config = subject.config if subject else None
    idf: str | None = None
    desc_file = build / "project_description.json"
    if desc_file.is_file():
        desc = _load_json(desc_file)
        revision = desc.get("git_revision") if isinstance(desc, dict) else None
        target = desc.get("target") if isinstance(desc, dict) else None
        if isinstance(revision, str) and revision:
            idf = revision
            found.versions.append(
                VersionSubject(
                    str(desc_file),
                    revision,
                    IdfVersion.parse(revision),
                    target if isinstance(target, str) else (config.target if config else None),
                    "project_description.json git_revision",
                    config=config,
                )
            )
    if (build / "flasher_args.json").is_file():
        layout = load_build_dir(build)
        for write in layout.writes:
            if write.data[:1] != b"\xe9":
                continue
            try:
                image = parse_image(write.data)
            except EspsecError:
                continue
            app = find_app_desc(image)
            if app is None:
                continue
            source = str(build / write.name)
            found.images.append(ImageSubject(source, layout.chip.name, app))
            if idf is None:
                found.versions.append(_image_version(source, layout.chip.name, app, config))
    chip = config.target if config else "unknown chip"
    idf_text = f", ESP-IDF {idf}" if idf else ""
    found.described.append(f"project {project} ({chip}{idf_text})")
    if not found.configs and not found.images:
        raise UsageError("no sdkconfig and no app image in the project", source=str(project))
    return found


def _kconfgen_json(file: Path) -> ConfigSubject:
    document = _load_json(file)
    config = BootloaderConfig.resolve(read_json(document, source=str(file)))
    return ConfigSubject(str(file), config)


def _load_json(file: Path) -> object:
    try:
        return json.loads(read_bytes(file, what="JSON file"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError("not valid JSON", found=str(exc), source=str(file)) from None


# -- devices and eFuse states -----------------------------------------------------------


def _device_folder(path: Path) -> Inputs:
    dev = VirtualDevice.open(path)
    status = device_status(dev)
    config = dev.config if dev.has_config else None
    found = Inputs(
        devices=[
            DeviceSubject(
                str(path),
                "virtual device",
                dev.efuses,
                config,
                status.apps,
                _nvs_states(dev),
                _fingerprints(dev.efuses),
            )
        ],
        described=[f"virtual device {path} ({dev.chip.display_name}, {status.posture})"],
    )
    if config is not None:
        found.configs.append(ConfigSubject(f"{path}/device.json", config))
    for app in status.apps:
        if app.ok and app.version is not None:
            raw = dev.flash.read(app.offset + DESC_OFFSET, APP_DESC_SIZE)
            try:
                desc = AppDesc.parse(raw, offset=DESC_OFFSET)
            except FormatError:
                continue
            where = f"{path} {app.partition}@0x{app.offset:x}"
            found.versions.append(_image_version(where, dev.efuses.chip, desc, config))
    return found


def _nvs_states(dev: VirtualDevice) -> tuple[NvsState, ...]:
    table = dev.partition_table()
    if table is None:
        return ()
    states = []
    for p in table.partitions:
        if p.type != DATA or p.subtype != DATA_NVS:
            continue
        raw = dev.flash.read_raw(p.offset, p.size)
        try:
            contents = read_partition(raw)
        except EspsecError:
            states.append(NvsState(p.name, p.offset, False, False))
            continue
        wifi = contents.namespaces.get(WIFI_NVS_NAMESPACE) is not None and any(
            e.namespace == WIFI_NVS_NAMESPACE for e in contents.entries
        )
        states.append(NvsState(p.name, p.offset, True, wifi))
    return tuple(states)


def _fingerprints(efuses: efuse.Efuses) -> dict[str, str]:
    layout = efuses.layout
    found = {}
    for block in layout.key_blocks:
        purpose = layout.purpose_name(efuses.key_purpose(block))
        try:
            secret = layout.purpose(purpose).read_protect
        except UsageError:
            continue
        if not secret or efuses.is_empty(block):
            continue
        try:
            key = efuses.hardware_block(block)
        except efuse.KeyUnavailableError:
            continue
        digest = hashlib.sha256(_FINGERPRINT_DOMAIN + key).hexdigest()
        found[f"{block.name} ({purpose})"] = digest
    return found


def _efuse_file(path: Path, chip: str | None) -> Inputs:
    try:
        efuses = efuse.load(path, chip)
    except UsageError as exc:
        if "chip unknown" in exc.message:
            raise UsageError(
                "not a recognised input; as an espefuse virtual eFuse file it needs --chip",
                source=str(path),
            ) from None
        raise
    return Inputs(
        devices=[
            DeviceSubject(str(path), "eFuse file", efuses, key_fingerprints=_fingerprints(efuses))
        ],
        described=[f"eFuse file {path} ({efuses.layout.chip.display_name})"],
    )


def _json(name: str, text: str, chip: str | None) -> Inputs:
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        if lines and all(line.lstrip().startswith("{") for line in lines):
            return _manifest(name, lines)
        raise FormatError("not valid JSON", source=name) from None
    if is_summary(document):
        efuses = from_summary(document, chip=chip, source=name)
        return Inputs(
            devices=[
                DeviceSubject(
                    name, "espefuse summary", efuses, key_fingerprints=_fingerprints(efuses)
                )
            ],
            described=[f"espefuse summary {name} ({efuses.layout.chip.display_name})"],
        )
    if isinstance(document, dict) and "min_auth_mode" in document:
        return Inputs(
            policies=[PolicySubject(name, _policy(document, name))],
            described=[f"Wi-Fi policy {name}"],
        )
    if isinstance(document, dict) and "serial" in document:
        return _manifest(name, lines if len(lines) > 1 else [text])
    if isinstance(document, dict) and "IDF_TARGET" in document:
        config = BootloaderConfig.resolve(read_json(document, source=name))
        return Inputs(
            configs=[ConfigSubject(name, config)],
            described=[f"sdkconfig.json {name} ({config.target})"],
        )
    raise UsageError(
        "JSON of no known kind (an espefuse summary, sdkconfig.json, Wi-Fi policy or "
        "factory manifest)",
        source=name,
    )


def _policy(document: dict[str, object], name: str) -> WifiPolicy:
    mode = document.get("min_auth_mode")
    pmf = document.get("pmf_required", False)
    wpa3 = document.get("wpa3_only", False)
    if not isinstance(mode, str) or not isinstance(pmf, bool) or not isinstance(wpa3, bool):
        raise FormatError(
            "not a Wi-Fi policy",
            expected='{"min_auth_mode": "wpa2", "pmf_required": true, "wpa3_only": false}',
            source=name,
        )
    try:
        auth = parse_auth(mode)
    except EspsecError as exc:
        raise FormatError(exc.message, field="min_auth_mode", source=name) from None
    return WifiPolicy(auth, pmf, wpa3)


def _manifest(name: str, lines: Sequence[str]) -> Inputs:
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            raise FormatError("not a JSON object", field=f"line {number}", source=name) from None
        if not isinstance(doc, dict) or not isinstance(doc.get("serial"), str):
            raise FormatError("not a manifest record", field=f"line {number}", source=name)
        keys = doc.get("public_keys") or {}
        cert = doc.get("certificate_sha256")
        records.append(
            ManifestRecord(
                name,
                number,
                doc["serial"],
                {str(k): str(v) for k, v in keys.items()} if isinstance(keys, dict) else {},
                cert if isinstance(cert, str) else None,
            )
        )
    return Inputs(manifests=records, described=[f"manifest {name} ({len(records)} devices)"])


# -- images and bundles -------------------------------------------------------------------


def _image_version(
    source: str, chip: str | None, desc: AppDesc, config: BootloaderConfig | None
) -> VersionSubject:
    return VersionSubject(
        source,
        desc.idf_ver,
        IdfVersion.parse(desc.idf_ver),
        chip,
        "esp_app_desc_t.idf_ver",
        offset=DESC_OFFSET + 112,
        config=config,
    )


def _image(name: str, data: bytes) -> Inputs:
    image = parse_image(data)
    desc = find_app_desc(image)
    chip = chip_by_image_id(image.header.chip_id)
    chip_name = chip.name if chip else None
    if desc is None:
        raise UsageError("an image without an app descriptor (a bootloader?)", source=name)
    return Inputs(
        images=[ImageSubject(name, chip_name, desc)],
        versions=[_image_version(name, chip_name, desc, None)],
        described=[
            f"app image {name} ({chip_name or 'unknown chip'}, {desc.project_name} "
            f"{desc.version}, ESP-IDF {desc.idf_ver})"
        ],
    )


def _bundle(name: str, data: bytes) -> Inputs:
    bundle = ReleaseBundle.parse(data)
    st = bundle.statement
    return Inputs(
        bundles=[BundleSubject(name, st)],
        versions=[
            VersionSubject(
                name, st.idf_ver, IdfVersion.parse(st.idf_ver), st.chip, "release.json idf_ver"
            )
        ],
        described=[f"release bundle {name} ({st.chip}, {st.project_name} {st.version})"],
    )


def _text(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if all(c.isprintable() or c in "\r\n\t" for c in text[:4096]) else None
