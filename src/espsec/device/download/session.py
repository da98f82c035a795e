"""One connection to the chip's download port: bytes in, bytes out.

A session starts as a chip reset with GPIO0 held low does: the ROM reads its eFuses and
either runs the download loop (normal or Secure Download Mode) or, with download mode
disabled on this interface, never answers. The ROM re-reads its policy whenever the
eFuse controller reloads its read registers, so burning ``ENABLE_SECURITY_DOWNLOAD`` or
``DIS_DOWNLOAD_MODE`` takes effect at once, as espefuse expects (``efuse_read``).
"""

from __future__ import annotations

from espsec.device.download.chip import DownloadChip
from espsec.device.download.loader import LoaderBase, Transition
from espsec.device.download.protocol import MAX_FRAME, OHAI
from espsec.device.download.rom_loader import RomLoader
from espsec.device.download.slip import SlipDecoder, SlipFault, encode
from espsec.device.download.stub import StubLoader
from espsec.efuse.download_mode import DownloadPolicy, Interface, download_policy


class DownloadSession:
    """The chip's side of one host connection."""

    def __init__(self, chip: DownloadChip, interface: Interface = Interface.UART) -> None:
        self.chip = chip
        self.interface = interface
        self._slip = SlipDecoder(MAX_FRAME)
        self.loader: LoaderBase | None = None
        self.policy: DownloadPolicy = download_policy(chip.efuses, interface)
        self._reset()

    @property
    def silent(self) -> bool:
        """Nothing on this connection will be answered any more."""
        return self.loader is None

    def _reset(self) -> None:
        self.chip.reset()
        self.policy = download_policy(self.chip.efuses, self.interface)
        self._reads = self.chip.efuse.reads
        if not self.policy.available:
            self.chip.notify(f"ROM: {self.policy.reason}; the chip does not answer")
            self.loader = None
        else:
            self.loader = RomLoader(self.chip, secure=self.policy.secure)

    def receive(self, data: bytes) -> bytes:
        """Feed received bytes; return what the chip sends back."""
        out = bytearray()
        for frame in self._slip.feed(data):
            loader = self.loader
            if loader is None:
                continue
            if isinstance(frame, SlipFault):
                packets = loader.on_fault(frame)
            else:
                packets = loader.on_frame(frame)
            for packet in packets:
                out += encode(packet)
            self.chip.flush()
            self._after(loader, out)
        return bytes(out)

    def _after(self, loader: LoaderBase, out: bytearray) -> None:
        transition, loader.transition = loader.transition, None
        if transition is Transition.RUN_STUB:
            self.loader = StubLoader(self.chip)
            out += encode(OHAI)
        elif transition is Transition.RESET:
            self.chip.notify(f"{loader.name}: reset; GPIO0 is low, back to download mode")
            self._reset()
        elif transition is Transition.LEAVE:
            self.chip.notify(f"{loader.name}: left download mode; the connection goes quiet")
            self.loader = None
        elif self.chip.efuse.reads != self._reads and isinstance(loader, RomLoader):
            self._reads = self.chip.efuse.reads
            self.policy = download_policy(self.chip.efuses, self.interface)
            if not self.policy.available:
                self.chip.notify(f"ROM: {self.policy.reason}; the chip stops answering")
                self.loader = None
            elif self.policy.secure and not loader.secure:
                self.chip.notify("ROM: ENABLE_SECURITY_DOWNLOAD is burned: Secure Download Mode")
                loader.secure = True
