"""The virtual device: ROM, bootloader, flash and runtime services composed from the features."""
