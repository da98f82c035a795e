"""One power-on: ROM, bootloader, first boot, app startup, until an app runs.

The sequence of ``bootloader_start.c: call_start_cpu0`` and ``bootloader_utility.c:
load_image``: the ROM loads the bootloader; the bootloader selects and checks an app;
on a first boot it enables Secure Boot v2, then flash encryption, and resets (a new
pass); the app starts and makes its eFuse checks. A :class:`~espsec.flash.PowerCut`
unwinds it all: the report then says where power was lost, what flash and
eFuses hold, and what the next power-on will do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from espsec.device.app import AppAbort, AppRuntime, app_startup
from espsec.device.boot_select import AppPartition
from espsec.device.bootloader import bootloader_stage
from espsec.device.first_boot import (
    FirstBootError,
    flash_encryption_enable,
    secure_boot_v2_permanently_enable,
)
from espsec.device.flash import SpiFlash
from espsec.device.hardware import Hardware, StageLog
from espsec.device.image_check import LoadedImage
from espsec.device.report import (
    BootPass,
    BootReport,
    Outcome,
    PowerCutInfo,
    RunningApp,
    Stage,
    StageReport,
)
from espsec.device.rom import rom_stage
from espsec.efuse import security_state
from espsec.errors import EspsecError
from espsec.flash import PowerCut, WriteCounter
from espsec.image import AppDesc
from espsec.sdkconfig import BootloaderConfig

MAX_PASSES = 4
"""Resets one power-on may go through (the first boot resets once)."""


@dataclass(frozen=True)
class _PassEnd:
    outcome: Outcome | None
    """``None``: the pass ended in a reset; another pass follows."""
    ended: str
    app: RunningApp | None = None
    runtime: AppRuntime | None = None
    refusal: str | None = None
    step: str | None = None
    """The ESP-IDF (or ROM) function behind the refusal."""


#: The ESP-IDF function each stage runs, for a refusal no finer step explains.
STAGE_STEP = {
    Stage.ROM: "ROM: load and verify the second-stage bootloader",
    Stage.BOOTLOADER: "bootloader_utility_load_boot_image",
    Stage.SECURE_BOOT_ENABLE: "esp_secure_boot_v2_permanently_enable",
    Stage.FLASH_ENCRYPTION_ENABLE: "esp_flash_encrypt_init",
    Stage.APP_STARTUP: "esp_efuse_startup.c: init_efuse_secure",
}


class _Pass:
    """One run from reset, collecting its stage reports."""

    def __init__(self, hw: Hardware, config: BootloaderConfig) -> None:
        self.hw = hw
        self.config = config
        self.stages: list[StageReport] = []
        self.steps: list[str] = []
        """ESP-IDF functions whose failure made ``load_image`` return, in order."""
        self.bootloader_at = 0

    def step(
        self, stage: Stage, what: str, function: str | None, run: Callable[[], object]
    ) -> str | None:
        """Run one first-boot step as its own stage; why it failed, or ``None``.

        The bootloader's stage log is set aside for the step and taken up again after
        it; its report comes before the steps' (:meth:`leave_bootloader`).
        """
        bootloader = self.hw.log
        self.enter(stage)
        failure = None
        try:
            run()
        except PowerCut:
            self.stages.insert(self.bootloader_at, bootloader.report())
            raise
        except FirstBootError as exc:
            failure = f"{what}: {exc.message}"
            self.steps.append(exc.step or function or STAGE_STEP[stage])
        except EspsecError as exc:
            failure = f"{what}: {exc.message}"
            self.steps.append(function or STAGE_STEP[stage])
        if failure is not None:
            self.hw.log.fail(failure)
        self.leave()
        self.hw.log = bootloader
        return failure

    def leave_bootloader(self, at: int) -> None:
        """Report the bootloader stage where it began, before any first-boot step."""
        self.stages.insert(at, self.hw.log.report())

    def enter(self, stage: Stage) -> StageLog:
        self.hw.log = StageLog(stage)
        return self.hw.log

    def leave(self) -> None:
        self.stages.append(self.hw.log.report())

    def refuse(self, reason: str, step: str | None = None) -> _PassEnd:
        self.hw.log.fail(reason)
        self.leave()
        return _PassEnd(
            Outcome.REFUSED,
            f"refused: {reason}",
            refusal=reason,
            step=step or STAGE_STEP.get(self.hw.log.stage),
        )

    def run(self, reboot: Callable[[], BootReport]) -> _PassEnd:
        hw, config = self.hw, self.config
        self.enter(Stage.ROM)
        rom = rom_stage(hw)
        if not rom.ok or rom.bootloader is None:
            return self.refuse(rom.refusal or "ROM: no bootloader", rom.step)
        self.leave()

        self.enter(Stage.BOOTLOADER)
        reset = False

        def start_app(part: AppPartition, app: LoadedImage) -> str | None:
            """``load_image``'s first-boot steps; why it returned, or ``None``."""
            nonlocal reset
            failure = None
            if config.secure_boot_v2_enabled and not security_state(hw.efuses).secure_boot_enabled:
                failure = self.step(
                    Stage.SECURE_BOOT_ENABLE,
                    "Secure Boot v2 failed",
                    "esp_secure_boot_v2_permanently_enable",
                    lambda: secure_boot_v2_permanently_enable(hw, config, app),
                )
            if (
                failure is None
                and config.secure_flash_enc_enabled
                and not hw.flash.encryption_enabled
            ):

                def enable() -> None:
                    flash_encryption_enable(hw, config)
                    hw.log.note("resetting with flash encryption enabled")

                failure = self.step(
                    Stage.FLASH_ENCRYPTION_ENABLE, "flash encryption failed", None, enable
                )
                reset = failure is None
            return failure

        at = self.bootloader_at = len(self.stages)
        result = bootloader_stage(hw, config, rom.bootloader, start_app)
        if result.refusal is not None or result.app is None or result.boot is None:
            hw.log.fail(result.refusal or "bootloader: no app")
            self.leave_bootloader(at)
            reason = result.refusal or "bootloader: no app"
            step = self.steps[-1] if self.steps else result.step
            return _PassEnd(Outcome.REFUSED, f"refused: {reason}", refusal=reason, step=step)
        self.leave_bootloader(at)
        app = result.app
        if reset:
            return _PassEnd(None, "reset: flash encryption enabled")

        self.enter(Stage.APP_STARTUP)
        try:
            abort = app_startup(hw, config, app)
        except EspsecError as exc:
            abort = AppAbort(f"eFuse update failed: {exc.message}", "esp_efuse_batch_write_commit")
        if abort is not None:
            return self.refuse(f"app aborted at startup: {abort.reason}", abort.step)
        self.leave()
        desc = app.desc if isinstance(app.desc, AppDesc) else None
        partition = result.partition
        assert partition is not None and result.state is not None
        running = RunningApp(
            partition=result.boot.name,
            offset=partition.offset,
            version=desc.version if desc else None,
            project_name=desc.project_name if desc else None,
            secure_version=desc.secure_version if desc else None,
            idf_ver=desc.idf_ver if desc else None,
            ota_state=result.ota_state,
            efuse_slot=app.check.efuse_slot,
        )
        runtime = AppRuntime(hw, config, result.state, result.boot, reboot)
        return _PassEnd(Outcome.RUNNING, "app running", running, runtime)


def run_boot(
    hw: Hardware,
    config: BootloaderConfig,
    *,
    reboot: Callable[[], BootReport],
    predict: bool = True,
) -> tuple[BootReport, AppRuntime | None]:
    """Power on ``hw`` and run until an app runs, a stage refuses, or power is cut.

    ``predict``: after a power cut, boot a copy of the chip as it was left to say what
    the next power-on does (:attr:`PowerCutInfo.next_boot`).
    """
    passes: list[BootPass] = []
    start_flash = hw.counter.flash_writes
    start_efuse = hw.counter.efuse_writes

    def report(outcome: Outcome, **kwargs: object) -> BootReport:
        return BootReport(
            chip=hw.chip.name,
            passes=tuple(passes),
            outcome=outcome,
            flash_writes_made=hw.counter.flash_writes - start_flash,
            efuse_writes_made=hw.counter.efuse_writes - start_efuse,
            **kwargs,  # type: ignore[arg-type]
        )

    for _ in range(MAX_PASSES):
        one = _Pass(hw, config)
        try:
            end = one.run(reboot)
        except EspsecError as exc:  # flash the chip cannot read, a burn it refuses …
            end = one.refuse(f"{hw.log.stage.value}: {exc.message}")
        except PowerCut as cut:
            log = hw.log
            during = log.notes[-1] if log.notes else log.stage.value
            log.fail(f"power cut: {cut.write}")
            one.leave()
            passes.append(BootPass(tuple(one.stages), "power cut"))
            info = power_cut_info(hw, config, cut, log.stage, during, predict=predict)
            return report(Outcome.POWER_LOST, power_cut=info), None
        passes.append(BootPass(tuple(one.stages), end.ended))
        if end.outcome is Outcome.RUNNING:
            return report(Outcome.RUNNING, app=end.app), end.runtime
        if end.outcome is Outcome.REFUSED:
            return report(Outcome.REFUSED, refusal=end.refusal, refusal_step=end.step), None
    return report(
        Outcome.REFUSED,
        refusal=f"still resetting after {MAX_PASSES} passes (boot loop)",
        refusal_step="bootloader_reset",
    ), None


def _state_lines(hw: Hardware) -> list[str]:
    state = security_state(hw.efuses)
    lines = [
        f"SECURE_BOOT_EN = {int(state.secure_boot_enabled)}",
        "SECURE_BOOT_DIGESTn: "
        + (
            ", ".join(
                f"{s.index} in {s.block}{' (revoked)' if s.revoked else ''}"
                for s in state.digest_slots
                if s.block
            )
            or "none burned"
        ),
        f"SPI_BOOT_CRYPT_CNT = 0b{state.flash_crypt_cnt:03b} (flash encryption "
        f"{'on' if state.flash_encryption_enabled else 'off'})",
        f"flash encryption key: {state.flash_encryption_key or 'none burned'}",
    ]
    return lines


def power_cut_info(
    hw: Hardware,
    config: BootloaderConfig,
    cut: PowerCut,
    stage: Stage | None,
    during: str,
    *,
    predict: bool,
) -> PowerCutInfo:
    """Describe a cut: the write it stopped, the state left, the next power-on."""
    state = _state_lines(hw)
    for write in hw.log.writes:
        if not write.completed:
            state.append(f"{write.what}: {write.done} of {write.operations} flash operations made")
    for burn in hw.log.burns:
        if not burn.completed:
            state.append(
                f"eFuse batch '{burn.reason}': {burn.programmed} of {len(burn.blocks)} blocks "
                f"programmed ({', '.join(burn.blocks[: burn.programmed]) or 'none'})"
            )
    fe_started = any(w.what.startswith("encrypt ") and w.done for w in hw.log.writes)
    if (
        stage is Stage.FLASH_ENCRYPTION_ENABLE
        and fe_started
        and not security_state(hw.efuses).flash_encryption_enabled
    ):
        state.append(
            "in-place encryption had started and SPI_BOOT_CRYPT_CNT was not burned: the ROM "
            "reads the encrypted sectors as plaintext, so the chip does not boot again until "
            "plaintext images are re-flashed over UART (ESP-IDF bootloader_utility.c load_image)"
        )
    next_boot = "not predicted"
    if predict:
        efuses = hw.efuses.copy()
        flash = SpiFlash(bytes(hw.flash.data), efuses, WriteCounter())
        twin = Hardware(efuses, flash, defer_wr_dis=hw.defer_wr_dis)
        again, _ = run_boot(twin, config, reboot=_no_reboot, predict=False)
        next_boot = describe_outcome(again)
    return PowerCutInfo(
        after_writes=cut.completed,
        interrupted=cut.write,
        stage=stage,
        during=during,
        state=tuple(state),
        next_boot=next_boot,
    )


def _no_reboot() -> BootReport:  # pragma: no cover - the prediction never runs an app
    raise EspsecError("a predicted boot cannot reboot")


def describe_outcome(report: BootReport) -> str:
    """One line: ``runs ota_0 (1.0.0)``, ``refused: …``."""
    if report.outcome is Outcome.RUNNING and report.app is not None:
        app = report.app
        first = any(
            s.stage in (Stage.SECURE_BOOT_ENABLE, Stage.FLASH_ENCRYPTION_ENABLE)
            for s in report.stages
        )
        return f"runs {app.partition} ({app.version or 'no version'})" + (
            " after finishing the first boot" if first else ""
        )
    if report.outcome is Outcome.REFUSED:
        return f"refused: {report.refusal}"
    return "power lost"  # pragma: no cover
