"""Run every benchmark, one after another, and print one table of their figures.

Each bench runs in a subprocess of its own (``--json FILE`` added, ``--quick`` passed on),
so no bench's threads, processes or garbage disturb the next one; its detailed report
goes to the terminal as it runs. At the end comes one Markdown table of every headline
figure against its goal, with the machine and the command, ready for the README.

A bench that crashes, times out or writes no figures makes the run fail (exit status 1,
the failure named at the end), after the rows of the benches that did run. Each bench
runs in its own process group, and a bench that outlives its time is killed with
everything it started.

Run: ``make bench``, or ``.venv/bin/python bench/all.py [--quick] [BENCH ...]`` where a
BENCH is a name below or the path of a script taking ``--quick`` and ``--json PATH``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
# This folder holds telegram.py, named like a library: keep it off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

from bench.report import Figure, FigureError, load, table  # noqa: E402

#: In the order they run (and their rows appear).
BENCHES = {
    name: HERE / f"{name}.py"
    for name in ("engine", "web", "telegram", "store", "leases", "media", "login", "e2e", "memory")
}
#: Seconds one bench may take before it is killed: far above what a run needs (a full
#: run of the slowest takes a few minutes on a loaded 2-core machine).
TIMEOUT = {"quick": 600.0, "full": 1800.0}


@dataclass
class Outcome:
    """What the run of every bench gave: figures, failures, and how long each took."""

    figures: list[Figure] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def resolve(benches: Sequence[str]) -> dict[str, Path]:
    """Names and paths from the command line; every bench when none is given."""
    if not benches:
        return dict(BENCHES)
    chosen = {}
    for bench in benches:
        if bench in BENCHES:
            chosen[bench] = BENCHES[bench]
        elif bench.endswith(".py") and Path(bench).is_file():
            chosen[Path(bench).stem] = Path(bench).resolve()
        else:
            names = ", ".join(BENCHES)
            raise SystemExit(f"no bench {bench!r}: use {names} or the path of a bench script")
    return chosen


def run_one(name: str, script: Path, quick: bool, timeout: float, outcome: Outcome) -> None:
    """Run one bench to its end (or its timeout) and note its figures or its failure."""
    print(f"\n## {name} ({script.name}{' --quick' if quick else ''})\n", flush=True)
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as folder:
        figures_file = Path(folder) / "figures.json"
        command = [sys.executable, str(script), "--json", str(figures_file)]
        command += ["--quick"] if quick else []
        started = time.perf_counter()
        # Its own session: on a timeout the whole group goes (servers, wrk, moto).
        process = subprocess.Popen(command, cwd=HERE.parent, start_new_session=True)
        try:
            status = process.wait(timeout)
        except subprocess.TimeoutExpired:
            status = None
        finally:
            _kill_group(process)
        outcome.seconds[name] = time.perf_counter() - started
        if status is None:
            outcome.failures.append(f"{name}: still running after {timeout:g} s, killed")
        elif status != 0:
            outcome.failures.append(f"{name}: exited with status {status} (its output is above)")
        elif not figures_file.exists():
            outcome.failures.append(f"{name}: exited without writing its figures")
        else:
            try:
                outcome.figures += load(figures_file)
            except FigureError as exc:
                outcome.failures.append(f"{name}: unreadable figures: {exc}")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Whatever the bench left running (it started a session of its own) goes with it."""
    with contextlib.suppress(ProcessLookupError):  # gone already: nothing was left behind
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def machine() -> str:
    load = " ".join(f"{n:.2f}" for n in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}"
        f" on {platform.system()} {platform.machine()}, load average {load} at the start,"
        f" {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC"
    )


def command_line(argv: Sequence[str]) -> str:
    python = os.path.relpath(sys.executable) if sys.executable else "python"
    script = os.path.relpath(Path(__file__).resolve())
    invoked = shlex.join([python, script, *argv])
    return f"make bench ({invoked})" if os.environ.get("MAKELEVEL") else invoked


def report(outcome: Outcome, machine_line: str, command: str) -> str:
    took = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in outcome.seconds.items())
    lines = [
        "",
        "## Benchmarks against the goals",
        "",
        table(outcome.figures) if outcome.figures else "(no bench gave figures)",
        "",
        f"Machine: {machine_line}.  ",
        f"Command: `{command}`.  ",
        f"Time per bench: {took}.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("benches", nargs="*", metavar="BENCH", help=f"{', '.join(BENCHES)}")
    parser.add_argument("--quick", action="store_true", help="each bench's short smoke run")
    parser.add_argument(
        "--timeout", type=float, help="seconds each bench may take (default 600 quick, 1800)"
    )
    arguments = parser.parse_args(argv)
    timeout = arguments.timeout or TIMEOUT["quick" if arguments.quick else "full"]
    machine_line = machine()  # before the benches load the machine
    outcome = Outcome()
    try:
        for name, script in resolve(arguments.benches).items():
            run_one(name, script, arguments.quick, timeout, outcome)
    except KeyboardInterrupt:  # the running bench was killed on the way out
        outcome.failures.append("interrupted: the benches after it did not run")
    command = command_line(sys.argv[1:] if argv is None else argv)
    print(report(outcome, machine_line, command), flush=True)
    if outcome.failures:
        print("\nFAILED:", *outcome.failures, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
