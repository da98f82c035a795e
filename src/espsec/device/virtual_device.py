"""A persistent virtual ESP32-S3 / ESP32-P4: eFuses, flash, and its bootloader's settings.

The device folder holds everything the device needs and nothing else::

    DIR/
      device.json       chip, flash size, the flashed bootloader's build options, and
                        volatile state (JTAG re-enabled until the next reset)
      efuse.bin         the eFuses, in espefuse's virtual-file format
                        (``espefuse --virt --path-efuse-file DIR/efuse.bin`` reads it)
      efuse.bin.espsec  0600 sidecar: hardware-only key material (docs/adr/0002)
      flash.bin         the SPI flash, byte for byte (ciphertext where encrypted)

A save writes only what changed since the device was opened or last saved: the eFuse
files and ``device.json`` are replaced atomically (``espsec._io.write_atomic``) when
their contents differ, and ``flash.bin`` gets the sectors erased or programmed since
(written in place and fsynced; the whole file only when it is new or missing). A boot
that changes nothing writes nothing. eFuses are written before flash, so a host crash
between the two can only leave eFuses ahead of flash, as a power cut right after an
eFuse burn would; a crash inside the flash write leaves some changed sectors written
and others not, as a power cut between two sector writes would. The bootloader's build options
(``sdkconfig``) are kept in ``device.json``: a virtual chip cannot read Kconfig out of a
bootloader binary, so they are recorded when the bootloader is flashed.
"""

from __future__ import annotations

import contextlib
import json
import os
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Self

from espsec._io import PathLike, read_bytes, write_atomic
from espsec.chips import EFUSE_MODEL_CHIPS, Chip, get_chip
from espsec.device.app import AppRuntime
from espsec.device.boot import run_boot
from espsec.device.flash import ENCRYPTED_WRITE_ALIGN, SpiFlash
from espsec.device.hardware import Hardware
from espsec.device.jtag import JtagStatus, hmac_jtag_enable, jtag_status, soft_disable_transaction
from espsec.device.report import BootReport
from espsec.efuse import Efuses, load, new, save, security_state, sidecar_path
from espsec.errors import (
    EspsecError,
    FormatError,
    OutputExistsError,
    UnsupportedError,
    UsageError,
)
from espsec.flash import SECTOR_SIZE, WRITE_ALIGN, FaultPlan, PowerCut, WriteCounter
from espsec.flash_encryption import load_build_dir
from espsec.image.partition_table import PartitionTable
from espsec.sdkconfig import BootloaderConfig

DEVICE_FILE = "device.json"
EFUSE_FILE = "efuse.bin"
FLASH_FILE = "flash.bin"
_FORMAT = "espsec-virtual-device"


class WriteMode(StrEnum):
    """How a host writes flash over the ROM's serial protocol."""

    PLAIN = "plain"
    """Bytes stored as sent (``esptool write-flash``)."""
    ENCRYPT = "encrypt"
    """The ROM encrypts with the eFuse key (``write-flash --encrypt``; refused once
    ``DIS_DOWNLOAD_MANUAL_ENCRYPT`` is burned)."""
    PRE_ENCRYPTED = "pre-encrypted"
    """Ciphertext the host made itself (``espsecure encrypt-flash-data``), stored as sent."""


@dataclass(frozen=True)
class FlashedFile:
    """One file written over the serial protocol."""

    offset: int
    length: int
    name: str
    mode: WriteMode

    def to_json(self) -> dict[str, object]:
        return {
            "offset": f"0x{self.offset:x}",
            "length": self.length,
            "file": self.name,
            "mode": self.mode.value,
        }


def config_from_build_dir(build_dir: PathLike) -> BootloaderConfig | None:
    """The build's ``sdkconfig``: ``<project>/sdkconfig`` beside ``build/``, else
    ``build/config/sdkconfig.json`` (kconfgen's output); ``None`` when neither exists."""
    folder = Path(build_dir)
    text_file = folder.parent / "sdkconfig"
    if text_file.is_file():
        return BootloaderConfig.parse(read_bytes(text_file), source=str(text_file))
    json_file = folder / "config" / "sdkconfig.json"
    if not json_file.is_file():
        return None
    try:
        values = json.loads(read_bytes(json_file))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise FormatError("not valid JSON", source=str(json_file)) from None
    return BootloaderConfig.from_json(values, source=str(json_file))


class VirtualDevice:
    """A virtual chip: eFuses, flash, the flashed bootloader's options, a write counter.

    Create one with :meth:`create` (a device folder) or :meth:`new` (in memory), open
    one with :meth:`open`. :meth:`boot` powers it on; the app it starts is
    :attr:`running` (an :class:`~espsec.device.app.AppRuntime`). A device opened from a
    folder saves itself after :meth:`boot` and the flash/JTAG calls; after calls on
    :attr:`running`, call :meth:`save` (or use the device as a context manager, which
    saves on exit, also after a power cut).
    """

    def __init__(
        self,
        efuses: Efuses,
        flash: bytes | bytearray,
        *,
        config: BootloaderConfig | None = None,
        path: PathLike | None = None,
        jtag_reenabled: bool = False,
    ) -> None:
        if efuses.chip not in EFUSE_MODEL_CHIPS:  # pragma: no cover - no eFuse model either
            raise UnsupportedError(f"no virtual device for {efuses.chip}")
        self.efuses = efuses
        self.flash = SpiFlash(flash, efuses, WriteCounter())
        self.path = None if path is None else Path(path)
        self._config = config
        self.jtag_reenabled = jtag_reenabled
        self.running: AppRuntime | None = None
        self.last_report: BootReport | None = None
        self._on_disk: _OnDisk | None = None
        self.defer_wr_dis = True
        """The bootloader's eFuse API burns ``WR_DIS`` after the rest of each batch
        (ESP-IDF v6.1+); set ``False`` to rehearse a v6.0 or older bootloader, which burns
        it with the rest of BLOCK0 (:meth:`Hardware.burn_chip`)."""

    def __repr__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        return f"<VirtualDevice {self.chip.display_name} {self.flash.size >> 20} MB{where}>"

    # -- construction ------------------------------------------------------------------

    @classmethod
    def new(
        cls,
        chip: str,
        flash_size: int,
        *,
        config: BootloaderConfig | None = None,
        revision: int | None = None,
    ) -> Self:
        """A blank chip (every eFuse 0 but its wafer revision) with erased flash, in memory.

        ``revision`` (major * 100 + minor) defaults to the newest the chip data knows
        (ESP32-P4: v3.1); the eFuses take that revision's layout.
        """
        found = get_chip(chip)
        if found.name not in EFUSE_MODEL_CHIPS:
            supported = ", ".join(get_chip(n).display_name for n in EFUSE_MODEL_CHIPS)
            raise UnsupportedError(
                f"no virtual device for {found.display_name} (supported: {supported})"
            )
        name = found.name
        if flash_size <= 0 or flash_size % SECTOR_SIZE:
            raise UsageError(f"flash size must be a positive multiple of 4 KiB, got {flash_size}")
        chosen = found.latest_revision if revision is None else revision
        dev = cls(new(name, chosen), b"\xff" * flash_size, config=config)
        dev._check_config(config)
        return dev

    @classmethod
    def create(
        cls,
        path: PathLike,
        chip: str,
        flash_size: int,
        *,
        config: BootloaderConfig | None = None,
        revision: int | None = None,
    ) -> Self:
        """A blank chip in a new device folder (refuses a folder that holds a device);
        ``revision`` as in :meth:`new`."""
        folder = Path(path)
        for name in (DEVICE_FILE, EFUSE_FILE, FLASH_FILE):
            if (folder / name).exists():
                raise OutputExistsError(
                    "refusing to overwrite an existing virtual device", source=str(folder / name)
                )
        if sidecar_path(folder / EFUSE_FILE).exists():
            raise OutputExistsError(
                "refusing to overwrite an existing eFuse sidecar",
                source=str(sidecar_path(folder / EFUSE_FILE)),
            )
        dev = cls.new(chip, flash_size, config=config, revision=revision)  # checks first
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EspsecError(
                f"cannot create the device folder: {exc.strerror}", source=str(folder)
            ) from None
        dev.path = folder
        dev.save()
        return dev

    @classmethod
    def open(cls, path: PathLike) -> Self:
        """The device in ``path`` (a folder made by :meth:`create`)."""
        folder = Path(path)
        meta_file = folder / DEVICE_FILE
        try:
            meta = json.loads(read_bytes(meta_file, what="virtual device description"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise FormatError(
                "not a virtual device description (bad JSON)", source=str(meta_file)
            ) from None
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            raise FormatError("not an espsec virtual device", field="format", source=str(meta_file))
        chip = str(meta.get("chip"))
        size = meta.get("flash_size")
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise FormatError(
                "not a flash size in bytes", field="flash_size", source=str(meta_file)
            )
        efuses = load(folder / EFUSE_FILE, chip)
        flash = read_bytes(folder / FLASH_FILE, what="flash image")
        if len(flash) != size:
            raise FormatError(
                "flash image has the wrong size",
                expected=f"{size} bytes",
                found=f"{len(flash)} bytes",
                source=str(folder / FLASH_FILE),
            )
        stored = meta.get("bootloader_config")
        config = None
        if isinstance(stored, dict):
            config = BootloaderConfig.from_json(stored, source=str(meta_file))
        elif isinstance(stored, str):  # device folders written before the JSON form
            config = BootloaderConfig.parse(stored, source=str(meta_file))
        elif stored is not None:
            raise FormatError(
                "not an sdkconfig.json object", field="bootloader_config", source=str(meta_file)
            )
        dev = cls(
            efuses,
            flash,
            config=config,
            path=folder,
            jtag_reenabled=bool(meta.get("jtag_reenabled", False)),
        )
        dev._on_disk = _OnDisk(folder, dev._efuse_state(), dev._meta_bytes())
        dev.flash.mark_clean()
        return dev

    def save(self, path: PathLike | None = None) -> None:
        """Write what changed to the device folder: eFuses, then flash, then ``device.json``.

        Each file is on disk (fsynced) when this returns. A folder other than the one
        the device came from gets every file.
        """
        if path is not None:
            self.path = Path(path)
        if self.path is None:
            raise UsageError("this virtual device has no folder: pass a path to save it")
        folder = self.path
        known = (
            self._on_disk if self._on_disk is not None and self._on_disk.folder == folder else None
        )
        if known is None:
            folder.mkdir(parents=True, exist_ok=True)
        efuse_state = self._efuse_state()
        if known is None or known.efuses != efuse_state:
            save(self.efuses, folder / EFUSE_FILE)
        if known is None or not self._write_flash_ranges(folder / FLASH_FILE):
            write_atomic(folder / FLASH_FILE, bytes(self.flash.data))
        self.flash.mark_clean()
        meta = self._meta_bytes()
        if known is None or known.meta != meta:
            write_atomic(folder / DEVICE_FILE, meta)
        self._on_disk = _OnDisk(folder, efuse_state, meta)

    def _efuse_state(self) -> tuple[bytes, tuple[tuple[int, bytes], ...]]:
        """What the eFuse files hold: the eFuse file and the sidecar's key material."""
        return self.efuses.to_file_bytes(), tuple(sorted(self.efuses.hardware_keys().items()))

    def _write_flash_ranges(self, path: Path) -> bool:
        """Write the changed sectors into ``flash.bin`` in place and fsync it.

        ``False`` (nothing written) when the file is missing or of another size.
        """
        ranges = self.flash.dirty_ranges()
        if not ranges:
            return path.is_file() and path.stat().st_size == self.flash.size
        try:
            fd = os.open(path, os.O_WRONLY)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise EspsecError(f"cannot write: {exc.strerror}", source=str(path)) from None
        try:
            if os.fstat(fd).st_size != self.flash.size:
                return False
            view = memoryview(self.flash.data)
            for start, end in ranges:
                done = start
                while done < end:
                    done += os.pwrite(fd, view[done:end], done)
            os.fsync(fd)
        except OSError as exc:
            raise EspsecError(f"cannot write: {exc.strerror}", source=str(path)) from None
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
        return True

    def _meta_bytes(self) -> bytes:
        """``device.json`` as :meth:`save` writes it."""
        meta = {
            "format": _FORMAT,
            "version": 1,
            "chip": self.efuses.chip,
            "flash_size": self.flash.size,
            "bootloader_config": None if self._config is None else self._config.to_json(),
            "jtag_reenabled": self.jtag_reenabled,
        }
        return (json.dumps(meta, indent=1) + "\n").encode()

    def _autosave(self) -> None:
        if self.path is not None:
            self.save()

    def copy(self) -> VirtualDevice:
        """An in-memory copy (for trying something without touching this device)."""
        other = VirtualDevice(
            self.efuses.copy(),
            bytes(self.flash.data),
            config=self._config,
            jtag_reenabled=self.jtag_reenabled,
        )
        other.defer_wr_dis = self.defer_wr_dis
        return other

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.path is not None and (exc is None or isinstance(exc, PowerCut | EspsecError)):
            self.save()

    # -- properties --------------------------------------------------------------------

    @property
    def chip(self) -> Chip:
        return get_chip(self.efuses.chip)

    @property
    def flash_size(self) -> int:
        return self.flash.size

    @property
    def config(self) -> BootloaderConfig:
        """The bootloader's build options (ESP-IDF defaults when none were given)."""
        if self._config is None:
            return BootloaderConfig.from_options(idf_target=self.efuses.chip)
        return self._config

    @property
    def has_config(self) -> bool:
        return self._config is not None

    def set_config(self, config: BootloaderConfig | None) -> None:
        """Record the build options of the bootloader on flash."""
        self._check_config(config)
        self._config = config
        self._autosave()

    def _check_config(self, config: BootloaderConfig | None) -> None:
        if config is not None and get_chip(config.idf_target).name != self.efuses.chip:
            raise UsageError(
                f"the sdkconfig is for {config.idf_target}, the device is {self.efuses.chip}"
            )

    @property
    def counter(self) -> WriteCounter:
        return self.flash.counter

    # -- power ------------------------------------------------------------------------

    def arm(self, plan: FaultPlan | None) -> None:
        """Arm a fault plan (``None`` disarms): writes are counted from now on."""
        self.flash.counter = WriteCounter(plan)

    def boot(self, *, fault_plan: FaultPlan | None = None, predict: bool = True) -> BootReport:
        """Power on (or reset) and run to an app, a refusal or a power cut.

        ``fault_plan`` arms a new plan for this boot (and what follows, until
        disarmed); without one an armed plan keeps counting across the reset. After a
        power cut, power is back: the next boot starts unarmed. ``predict``: after a
        cut, also say what the next power-on will do (a boot of a copy).
        """
        if fault_plan is not None:
            self.arm(fault_plan)
        elif self.counter.cut is not None:
            self.arm(None)
        self.jtag_reenabled = False
        self.running = None
        hw = Hardware(self.efuses, self.flash, defer_wr_dis=self.defer_wr_dis)
        report, runtime = run_boot(hw, self.config, reboot=self._reboot(), predict=predict)
        self.running = runtime
        self.last_report = report
        self._autosave()
        return report

    def _reboot(self) -> Callable[[], BootReport]:
        """The runtime's reset: :meth:`boot` through a weak reference, so a device and
        its running app do not keep each other alive (a dropped device is freed at once,
        not by the cycle collector)."""
        boot = weakref.WeakMethod(self.boot)

        def reboot() -> BootReport:
            method = boot()
            if method is None:
                raise EspsecError("the virtual device was closed")
            return method()

        return reboot

    # -- flashing over the ROM's serial protocol ------------------------------------

    def _download_mode_check(self, mode: WriteMode) -> None:
        state = security_state(self.efuses)
        if state.download_mode == "disabled":
            raise UsageError(
                "ROM download mode is disabled (DIS_DOWNLOAD_MODE): the chip cannot be "
                "flashed over the serial port"
            )
        if mode is WriteMode.ENCRYPT:
            if self.efuses.get_int("DIS_DOWNLOAD_MANUAL_ENCRYPT"):
                raise UsageError(
                    "the ROM refuses to encrypt (DIS_DOWNLOAD_MANUAL_ENCRYPT is burned): "
                    "write pre-encrypted data or update over the air"
                )
            if self.flash.engine_key() is None:
                raise UsageError("no flash encryption key is burned: nothing to encrypt with")

    def write_flash(
        self, offset: int, data: bytes, *, mode: WriteMode = WriteMode.PLAIN, name: str = ""
    ) -> FlashedFile:
        """``esptool write-flash``: erase the sectors, then program ``data``.

        Plain writes are padded with 0xFF to 4 bytes, encrypted ones to 16 (and must
        start on a 16-byte boundary). Refused when download mode is disabled.
        """
        self._download_mode_check(mode)
        return self._write(offset, data, mode, name)

    def _write(self, offset: int, data: bytes, mode: WriteMode, name: str) -> FlashedFile:
        if offset < 0:
            raise UsageError(f"{name or 'file'}: negative flash offset {offset}")
        if not data:
            raise UsageError(f"{name or 'file'} for 0x{offset:x} is empty")
        align = ENCRYPTED_WRITE_ALIGN if mode is not WriteMode.PLAIN else WRITE_ALIGN
        if offset % align:
            raise UsageError(
                f"{name or 'file'} at 0x{offset:x}: {mode.value} writes must start on a "
                f"{align}-byte boundary"
            )
        padded = data + b"\xff" * (-len(data) % align)
        if offset + len(padded) > self.flash.size:
            raise UsageError(
                f"{name or 'file'} ({len(data)} bytes at 0x{offset:x}) does not fit the "
                f"{self.flash.size >> 20} MB flash"
            )
        start = offset // SECTOR_SIZE * SECTOR_SIZE
        end = -(-(offset + len(padded)) // SECTOR_SIZE) * SECTOR_SIZE
        self.flash.erase_range(start, end - start, what=f"write-flash {name}: erase")
        if mode is WriteMode.ENCRYPT:
            self.flash.write_encrypted(offset, padded, what=f"write-flash {name}")
        else:
            self.flash.write(offset, padded, what=f"write-flash {name}")
        return FlashedFile(offset, len(data), name, mode)

    def write_files(
        self,
        files: Iterable[tuple[int, bytes, str]],
        *,
        mode: WriteMode = WriteMode.PLAIN,
        config: BootloaderConfig | None = None,
    ) -> tuple[FlashedFile, ...]:
        """Several files in one session (offset, data, name); records ``config`` if given."""
        self._download_mode_check(mode)
        self._check_config(config)
        ordered = sorted(files, key=lambda f: f[0])
        _check_sectors(ordered)
        done = tuple(self._write(offset, data, mode, name) for offset, data, name in ordered)
        if config is not None:
            self._config = config
        self._autosave()
        return done

    def flash_build_dir(
        self,
        build_dir: PathLike,
        *,
        mode: WriteMode = WriteMode.PLAIN,
        config: BootloaderConfig | None = None,
    ) -> tuple[FlashedFile, ...]:
        """``idf.py flash``: every file of ``flasher_args.json``, and the build's sdkconfig."""
        layout = load_build_dir(build_dir)
        if layout.chip.name != self.efuses.chip:
            raise UsageError(
                f"the build is for {layout.chip.name}, the device is {self.efuses.chip}",
                source=str(build_dir),
            )
        if config is None:
            config = config_from_build_dir(build_dir)
        files = [(w.offset, w.data, w.name) for w in layout.writes]
        return self.write_files(files, mode=mode, config=config)

    def partition_table(self) -> PartitionTable | None:
        """The partition table on flash as the device reads it, if it parses."""
        from espsec.device.bootloader import read_partition_table
        from espsec.device.partitions import PartitionTableInvalid

        hw = Hardware(self.efuses, self.flash)
        try:
            state = read_partition_table(hw, self.config)
        except (PartitionTableInvalid, EspsecError):
            return None
        return PartitionTable(state.partitions)

    # -- JTAG ----------------------------------------------------------------------------

    def jtag(self) -> JtagStatus:
        """What JTAG access the eFuses (and a token given since reset) allow."""
        return jtag_status(self.efuses, reenabled=self.jtag_reenabled)

    def jtag_enable(self, token: bytes, key_block: str | None = None) -> JtagStatus:
        """``esp_hmac_jtag_enable``: re-enable soft-disabled JTAG until the next reset."""
        hmac_jtag_enable(self.efuses, token, key_block)
        self.jtag_reenabled = True
        self._autosave()
        return self.jtag()

    def jtag_disable(self, *, permanent: bool = False) -> JtagStatus:
        """``esp_hmac_jtag_disable``; ``permanent`` also burns ``SOFT_DIS_JTAG`` odd."""
        self.jtag_reenabled = False
        if permanent:
            tx = soft_disable_transaction(self.efuses)
            if tx is not None:
                hw = Hardware(self.efuses, self.flash)
                hw.burn(tx, "soft-disable JTAG (SOFT_DIS_JTAG)")
        self._autosave()
        return self.jtag()


@dataclass(frozen=True)
class _OnDisk:
    """What the device folder holds since the last open or save (no flash: the chip
    tracks its own changed sectors)."""

    folder: Path
    efuses: tuple[bytes, tuple[tuple[int, bytes], ...]]
    meta: bytes

    def __repr__(self) -> str:  # the eFuse state holds key material
        return f"_OnDisk({self.folder})"


def _check_sectors(files: Sequence[tuple[int, bytes, str]]) -> None:
    """esptool erases whole sectors, so two files may not share one."""
    last = -1
    previous = ""
    for offset, data, name in files:
        if offset < 0:
            raise UsageError(f"{name or 'file'}: negative flash offset {offset}")
        if offset // SECTOR_SIZE <= last:
            raise UsageError(f"{name or 'file'} at 0x{offset:x} overlaps the sectors of {previous}")
        last = (offset + len(data) - 1) // SECTOR_SIZE
        previous = name or f"the file at 0x{offset:x}"
