"""The benchmarks cannot rot silently: their figures, the one table, and ``bench/all.py``.

The runner is driven as ``make bench`` drives it, in a subprocess: once with the real
engine bench in quick mode (a few seconds), and with small stand-in bench scripts for
what a real bench must never do (crash, hang, write nothing or garbage), since a quick
run of every real bench takes about a minute.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.report import Figure, FigureError, emit, load, table

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "bench" / "all.py"
_CELL_SEPARATOR = re.compile(r"(?<!\\)\|")


def run_all(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "MAKELEVEL"}
    return subprocess.run(
        [sys.executable, str(RUNNER), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
        check=False,
    )


def rows(markdown: str) -> list[list[str]]:
    """The body rows of the Markdown table in ``markdown``, as lists of cells."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    assert lines[0].startswith("| benchmark | figure | measured | goal |"), lines[0]
    return [[cell.strip() for cell in _CELL_SEPARATOR.split(line)[1:-1]] for line in lines[2:]]


# -- figures and the table ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("figure", "measured", "goal", "ratio", "met"),
    [
        pytest.param(
            Figure("engine", "msg/s", 2182.4, "msg/s", 5000),
            "2,182 msg/s",
            "≥ 5,000 msg/s",
            "0.44",
            "**no**",
            id="higher-is-better-missed",
        ),
        pytest.param(
            Figure("web", "req/s", 12_500, "req/s", 10_000),
            "12,500 req/s",
            "≥ 10,000 req/s",
            "1.25",
            "yes",
            id="higher-is-better-met",
        ),
        pytest.param(
            Figure("engine", "long/short", 0.99, "×", 1.2, "lower"),
            "0.99 ×",
            "≤ 1.20 ×",
            "1.21",
            "yes",
            id="lower-is-better-met",
        ),
        pytest.param(
            Figure("dynamodb", "calls", 3.5, "calls", 3, "lower"),
            "3.50 calls",
            "≤ 3.00 calls",
            "0.86",
            "**no**",
            id="lower-is-better-missed",
        ),
        pytest.param(
            Figure("telegram", "missing", 0, "", 0, "lower", digits=0),
            "0",
            "≤ 0",
            "—",
            "yes",
            id="zero-goal-met-without-a-ratio",
        ),
        pytest.param(
            Figure("telegram", "missing", 2, "", 0, "lower", digits=0),
            "2",
            "≤ 0",
            "—",
            "**no**",
            id="zero-goal-missed",
        ),
        pytest.param(
            Figure("telegram", "writes/s", math.nan, "/s", 1.0, "lower"),
            "nan /s",
            "≤ 1.00 /s",
            "—",
            "**no**",
            id="no-measurement-misses",
        ),
        pytest.param(
            Figure("web", "empty handler", 16_735.2, "req/s"),
            "16,735 req/s",
            "—",
            "—",
            "(context)",
            id="context-without-goal",
        ),
    ],
)
def test_table_row_states_figure_goal_ratio_and_verdict(
    figure: Figure, measured: str, goal: str, ratio: str, met: str
) -> None:
    assert rows(table([figure])) == [[figure.bench, figure.name, measured, goal, ratio, met]]


def test_each_note_is_one_footnote_marked_on_every_row_it_explains() -> None:
    shared = "against moto: calls carry over, wall times do not"
    markdown = table(
        [
            Figure("dynamodb", "calls", 3, "calls", 3, "lower", note=shared),
            Figure("engine", "msg/s", 1, "msg/s", 5000),
            Figure("dynamodb", "cpu", 11, "ms", note=shared),
            Figure("web", "p50 ÷ idle", 1.1, "×", 2, "lower", note="no number was set"),
        ]
    )
    names = [row[1] for row in rows(markdown)]
    assert names == ["calls [1]", "msg/s", "cpu [1]", "p50 ÷ idle [2]"]
    assert markdown.splitlines()[-2:] == [f"- [1] {shared}", "- [2] no number was set"]


_finite = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False)


@settings(max_examples=300)
@given(value=_finite, goal=_finite, better=st.sampled_from(["higher", "lower"]))
def test_ratio_of_one_or_more_is_exactly_a_met_goal(value: float, goal: float, better: str) -> None:
    figure = Figure("b", "f", value, "u", goal, better)
    assert figure.ratio is not None
    assert figure.met is (figure.ratio >= 1.0)


@settings(max_examples=100)
@given(
    st.lists(
        st.builds(
            Figure,
            bench=st.text(max_size=12),
            name=st.text(max_size=40),
            value=st.floats(allow_nan=True, allow_infinity=True),
            unit=st.text(max_size=6),
            goal=st.none() | st.floats(min_value=0, max_value=1e12),
            better=st.sampled_from(["higher", "lower"]),
            note=st.text(max_size=30),
        ),
        max_size=8,
    )
)
def test_any_names_and_values_keep_the_table_one_row_of_six_cells_per_figure(
    figures: list[Figure],
) -> None:
    """A ``|`` or a line break in a name or a unit must not break the Markdown table."""
    markdown = table(figures)
    lines = markdown.splitlines()
    assert len([line for line in lines if line.startswith("|")]) == 2 + len(figures)
    assert all(line.startswith(("|", "- [")) for line in lines if line)
    assert all(len(row) == 6 for row in rows(markdown))
    assert [row[5] for row in rows(markdown)] == [
        "(context)" if f.met is None else "yes" if f.met else "**no**" for f in figures
    ]
    for row in rows(markdown):
        if row[4] != "—":
            assert (float(row[4]) >= 1.0) is (row[5] == "yes"), row


@pytest.mark.parametrize(
    ("value", "goal", "better", "ratio", "met"),
    [
        pytest.param(0.3335, 1 / 3, "lower", "0.99", "**no**", id="just-over-a-limit"),
        pytest.param(4_990, 5_000, "higher", "0.99", "**no**", id="just-under-a-floor"),
        pytest.param(5_000, 5_000, "higher", "1.00", "yes", id="exactly-the-goal"),
    ],
)
def test_a_ratio_never_reads_1_00_for_a_missed_goal(
    value: float, goal: float, better: str, ratio: str, met: str
) -> None:
    row = rows(table([Figure("b", "f", value, "u", goal, better)]))[0]
    assert row[4:] == [ratio, met]


def test_figures_survive_the_json_file_between_a_bench_and_the_runner(tmp_path: Path) -> None:
    figures = [
        Figure("engine", "msg/s", 2182.4, "msg/s", 5000),
        Figure("web", "p50 ÷ idle", 1.07, "×", 2.0, "lower", note="read as ≤ 2×"),
        Figure("telegram", "missing", 0, "", 0, "lower", digits=0),
        Figure("web", "reference", 16_735.2, "req/s"),
    ]
    path = tmp_path / "figures.json"
    emit(figures, str(path))
    assert load(path) == figures


def test_json_to_stdout_with_a_dash_and_nowhere_without_the_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    figure = Figure("engine", "msg/s", 2182.4, "msg/s", 5000)
    emit([figure], None)
    assert capsys.readouterr().out == ""
    emit([figure], "-")
    assert [Figure.from_json(item) for item in json.loads(capsys.readouterr().out)] == [figure]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("not json", id="not-json"),
        pytest.param('{"bench": "x"}', id="not-a-list"),
        pytest.param('["a figure"]', id="not-an-object"),
        pytest.param('[{"bench": "x", "name": "y", "unit": "z"}]', id="no-value"),
        pytest.param('[{"bench": "x", "name": "y", "value": "fast", "unit": "z"}]', id="text"),
        pytest.param('[{"bench": "x", "name": "y", "value": true, "unit": "z"}]', id="bool"),
        pytest.param(
            '[{"bench": "x", "name": "y", "value": 1, "unit": "z", "gaol": 2}]', id="typo"
        ),
        pytest.param(
            '[{"bench": "x", "name": "y", "value": 1, "unit": "z", "better": "more"}]',
            id="direction",
        ),
        pytest.param('[{"bench": 1, "name": "y", "value": 1, "unit": "z"}]', id="bench-number"),
        pytest.param(
            '[{"bench": "x", "name": "y", "value": 1, "unit": "z", "digits": 1.5}]', id="digits"
        ),
    ],
)
def test_malformed_figures_are_a_clear_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "figures.json"
    path.write_text(text)
    with pytest.raises(FigureError):
        load(path)


# -- the runner ------------------------------------------------------------------------------


def test_every_bench_offers_quick_and_json() -> None:
    """Each bench imports and takes the two options the runner passes (only the engine
    bench runs below: the others take 10-30 s each even in quick mode)."""
    for name in ("engine", "web", "telegram", "e2e", "memory", "store", "leases", "media", "login"):
        result = subprocess.run(
            [sys.executable, str(ROOT / "bench" / f"{name}.py"), "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            check=False,
        )
        assert result.returncode == 0, (name, result.stderr)
        assert "--quick" in result.stdout and "--json" in result.stdout, name


def test_make_bench_quick_runs_the_engine_bench_into_one_table() -> None:
    result = run_all("--quick", "engine")
    assert result.returncode == 0, result.stdout + result.stderr
    # the bench's own report went through, then the one table at the end
    assert "best throughput:" in result.stdout
    report = result.stdout.split("## Benchmarks against the goals", 1)[1]
    table_rows = rows(report)
    assert [row[0] for row in table_rows] == ["engine", "engine"]
    throughput, long_short = table_rows
    assert throughput[2].endswith(" msg/s") and throughput[3] == "≥ 5,000 msg/s"
    rate = float(throughput[2].split()[0].replace(",", ""))
    assert rate > 0
    assert abs(float(throughput[4]) - rate / 5000) <= 0.01  # the rate is printed rounded
    assert long_short[2].endswith(" ×") and long_short[3] == "≤ 1.20 ×"
    assert float(long_short[2].split()[0]) > 0
    assert {throughput[5], long_short[5]} <= {"yes", "**no**"}
    assert re.search(r"Machine: \d+ cores, CPython 3\.\d+\.\d+ on .*\d{4}-\d\d-\d\d", report)
    assert "Command: `" in report and "bench/all.py --quick engine`" in report


STAND_IN = """
import json, os, sys, time
log = {log!r}
name = os.path.basename(sys.argv[0])
with open(log, "a") as f:
    f.write(f"start {{name}} {{' '.join(sys.argv[1:])}}\\n")
time.sleep(0.2)
json_path = sys.argv[sys.argv.index("--json") + 1]
{body}
with open(log, "a") as f:
    f.write(f"end {{name}}\\n")
"""


def stand_in(folder: Path, name: str, body: str) -> str:
    path = folder / f"{name}.py"
    path.write_text(STAND_IN.format(log=str(folder / "log"), body=body))
    return str(path)


def test_benches_run_one_after_another_and_a_failure_fails_the_run_after_the_table(
    tmp_path: Path,
) -> None:
    figure = {"bench": "good", "name": "speed", "value": 7.0, "unit": "x/s", "goal": 5.0}
    good = stand_in(tmp_path, "good", f"open(json_path, 'w').write({json.dumps([figure])!r})")
    crash = stand_in(tmp_path, "crash", "raise RuntimeError('the bench broke')")
    silent = stand_in(tmp_path, "silent", "pass")
    garbage = stand_in(tmp_path, "garbage", "open(json_path, 'w').write('[{\"oops\": 1}]')")
    later = {**figure, "bench": "later", "value": 3.0}
    last = stand_in(tmp_path, "later", f"open(json_path, 'w').write({json.dumps([later])!r})")

    result = run_all("--quick", good, crash, silent, garbage, last)

    assert result.returncode == 1
    # the rows of the benches that ran, with their verdicts, in the order they ran
    assert rows(result.stdout.split("## Benchmarks against the goals", 1)[1]) == [
        ["good", "speed", "7.00 x/s", "≥ 5.00 x/s", "1.40", "yes"],
        ["later", "speed", "3.00 x/s", "≥ 5.00 x/s", "0.60", "**no**"],
    ]
    failed = result.stderr.split("FAILED:", 1)[1]
    assert "crash: exited with status 1" in failed
    assert "RuntimeError: the bench broke" in result.stderr  # its own traceback, shown
    assert "silent: exited without writing its figures" in failed
    assert "garbage: unreadable figures" in failed
    assert "good" not in failed and "later" not in failed
    # one at a time, in the order given, each told to be quick
    log = (tmp_path / "log").read_text().splitlines()
    names = ["good", "crash", "silent", "garbage", "later"]
    expected = []
    for name in names:
        expected.append(f"start {name}.py --json")
        if name != "crash":
            expected.append(f"end {name}.py")
    assert [line.split(" /")[0] if line.startswith("start") else line for line in log] == expected
    assert all(line.endswith(" --quick") for line in log if line.startswith("start"))


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, just not reaped


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_bench_that_hangs_is_killed_with_what_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    body = (
        "import subprocess\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'],"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(120)\n"
    )
    hang = stand_in(tmp_path, "hang", body)

    result = run_all("--quick", "--timeout", "5", hang)

    assert result.returncode == 1
    assert "hang: still running after 5 s, killed" in result.stderr
    assert "(no bench gave figures)" in result.stdout
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(child):
        os.kill(child, signal.SIGKILL)  # leave nothing behind, even when failing
        pytest.fail("the bench's own child process outlived it")


def test_an_unknown_bench_name_is_a_clear_error() -> None:
    result = run_all("engin")
    assert result.returncode != 0
    assert "no bench 'engin': use engine, web, telegram, store" in result.stderr
