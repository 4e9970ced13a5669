"""The scenario file a SIPp run uses, placed in the runner's work directory (SIPp writes its rtt
file beside the scenario)."""

from __future__ import annotations

import shutil
from pathlib import Path

from runners.call_options import apply
from sipflow.runner_config import RunnerConfig

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
BUILT_IN = ("call", "answer", "register", "options")


def built_in_path(name: str) -> Path:
    if name not in BUILT_IN:
        raise ValueError(f"unknown built-in scenario {name!r}; known: {', '.join(BUILT_IN)}")
    return SCENARIO_DIR / f"{name}.xml"


def uses_injection(name: str) -> bool:
    """answer.xml reads no injection file; every other scenario gets one."""
    return name != "answer"


def prepare(cfg: RunnerConfig, name: str, work_dir: Path) -> Path:
    """Copy built-in `name` (or write the custom XML) into work_dir; returns its path."""
    if name == "custom":
        if not cfg.scenario_xml:
            raise ValueError('scenario "custom" needs scenario_xml')
        target = work_dir / "custom.xml"
        # Call options reach a custom XML only when it is a compiled call script.
        xml = apply(cfg.scenario_xml, cfg.messages) if cfg.messages else cfg.scenario_xml
        target.write_text(xml)
        return target
    target = work_dir / f"{name}.xml"
    if cfg.messages is not None and name == "call":
        target.write_text(apply(built_in_path(name).read_text(), cfg.messages))
        return target
    shutil.copyfile(built_in_path(name), target)
    return target
