"""The tables of docs/reliability.md, filled by the fault and hostile-input suites as they run.

``scripts/reliability_report.sh`` runs both suites with ``RECSYS_RELIABILITY_REPORT=<file>``;
the e2e conftest then writes the tables there at the end of the session (and prints them in the
terminal summary whenever anything was recorded). The numbers are the tests' own observations:
the fault rows come from the same load loops and ledgers the tests assert on, the bad-input rows
from every call the hostile-input suite made.
"""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import grpc


@dataclass
class FaultRow:
    fault: str
    calls: int
    ok: int
    degraded: int
    failed: Counter[str]
    longest_s: float
    deadline_s: float
    recovery_s: float | None
    acknowledged: int
    lost: int
    duplicates: int
    warning_lines: int
    fault_s: float


def _count_lines(path: Path, start: int) -> list[str]:
    try:
        with path.open("rb") as f:
            f.seek(start)
            return f.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return []


class LogWatch:
    """New lines in a stack's service logs since the watch began (or was last reset)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._start: dict[Path, int] = {}
        self.reset()

    def reset(self) -> None:
        self._start = {p: p.stat().st_size for p in self.log_dir.glob("*.log")}

    def lines(self) -> dict[str, list[str]]:
        out = {}
        for p in sorted(self.log_dir.glob("*.log")):
            out[p.stem] = _count_lines(p, self._start.get(p, 0))
        return out


_LEVEL = re.compile(r'"severity": ?"(WARNING|ERROR|CRITICAL)"|\s(WARNING|ERROR|CRITICAL)\s')


def warning_lines(lines: dict[str, list[str]]) -> int:
    return sum(1 for ls in lines.values() for line in ls if _LEVEL.search(line))


@dataclass
class BadInputRow:
    codes: Counter[str] = field(default_factory=Counter)
    #: log lines written while the refused (non-OK) calls ran: all services, the gateway alone
    log_lines: int = 0
    gateway_log_lines: int = 0
    #: the most lines one refused call wrote (all services)
    max_lines: int = 0


class Report:
    def __init__(self) -> None:
        self.faults: list[FaultRow] = []
        self.bad_input: dict[str, BadInputRow] = defaultdict(BadInputRow)

    def __bool__(self) -> bool:
        return bool(self.faults or self.bad_input)

    def bad_call(self, rpc: str, code: grpc.StatusCode, lines: dict[str, list[str]]) -> None:
        row = self.bad_input[rpc]
        row.codes[code.name] += 1
        if code != grpc.StatusCode.OK:
            n = sum(len(v) for v in lines.values())
            row.log_lines += n
            row.max_lines = max(row.max_lines, n)
            row.gateway_log_lines += len(lines.get("gateway", []))

    def markdown(self) -> str:
        out: list[str] = []
        if self.faults:
            out += [
                "| fault | calls | OK | OK degraded | failed (by code) | longest call / deadline | "
                "recovered after the fault ended | acknowledged ratings | lost | duplicated | "
                "WARNING+ log lines during the run |",
                "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            ]
            for r in self.faults:
                failed = ", ".join(f"{k} {v}" for k, v in sorted(r.failed.items())) or "0"
                recovery = f"{r.recovery_s:.2f} s" if r.recovery_s is not None else "–"
                out.append(
                    f"| {r.fault} ({r.fault_s:.1f} s) | {r.calls} | {r.ok - r.degraded} | {r.degraded} | "
                    f"{failed} | {r.longest_s:.2f} s / {r.deadline_s:.1f} s | {recovery} | "
                    f"{r.acknowledged} | {r.lost} | {r.duplicates} | {r.warning_lines} |"
                )
        if self.bad_input:
            if out:
                out.append("")
            out += [
                "| RPC | hostile calls | answers by code | UNKNOWN or INTERNAL | "
                "log lines per refused call: mean (all services) | max | gateway's mean |",
                "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
            ]
            for rpc, row in sorted(self.bad_input.items()):
                n = sum(row.codes.values())
                refused = max(1, n - row.codes["OK"])
                codes = ", ".join(f"{k} {v}" for k, v in sorted(row.codes.items()))
                worst = row.codes["UNKNOWN"] + row.codes["INTERNAL"]
                out.append(
                    f"| {rpc} | {n} | {codes} | {worst} | {row.log_lines / refused:.2f} | "
                    f"{row.max_lines} | {row.gateway_log_lines / refused:.2f} |"
                )
        return "\n".join(out) + "\n"

    def write(self) -> Path | None:
        target = os.environ.get("RECSYS_RELIABILITY_REPORT")
        if not target or not self:
            return None
        path = Path(target)
        path.write_text(self.markdown())
        return path


REPORT = Report()
