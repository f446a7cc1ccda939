"""Media benchmark: what an image message costs the process, and that the loop stays free.

Measures, for a 12-megapixel JPEG photo (4000 x 3000, noisy like a real photo):
  * CPU milliseconds to make it what a persona sees (``bot.media.normalise_image``:
    decode, EXIF-rotate, scale to MEDIA__MAX_IMAGE_SIDE, re-encode), median of runs;
  * the process's peak memory growth for one conversion (``ru_maxrss`` in a fresh child
    process, after the photo's bytes are loaded, so only the conversion counts);
  * the event loop's longest stall while several image messages are converted at once
    through ``MediaProcessor`` (a ticker asks for a 1 ms sleep and records the longest
    wait beyond it): decoding runs in worker threads, so the loop keeps serving.

Run: ``.venv/bin/python bench/media.py`` (``--quick`` for a smoke run; ``--json PATH``
also writes the headline figures for ``bench/all.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image

from bench.report import Figure, add_json_option, emit
from bot.config import MediaSettings
from bot.media import MediaProcessor, normalise_image
from bot.messages import IncomingFile

GOAL_CPU_MS = 250.0  # per 12 MP photo
GOAL_PEAK_MIB = 96.0  # memory growth while converting one
GOAL_STALL_MS = 50.0  # the loop's longest stall while images are converted (unnoticed in chat)
SETTINGS = MediaSettings()


def photo(width: int = 4000, height: int = 3000) -> bytes:
    """A 12 MP JPEG with noise in it (a flat image would compress and decode unfairly)."""
    bands = [Image.effect_noise((width, height), sigma) for sigma in (40, 60, 80)]
    image = Image.merge("RGB", bands)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def convert(data: bytes) -> None:
    normalise_image(
        data,
        "image/jpeg",
        max_pixels=SETTINGS.max_pixels,
        max_side=SETTINGS.max_image_side,
    )


def cpu_ms(data: bytes, runs: int) -> list[float]:
    timings = []
    for _ in range(runs):
        start = time.process_time()
        convert(data)
        timings.append((time.process_time() - start) * 1000)
    return timings


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child_peak(path: str) -> None:
    """In a fresh process: the peak memory growth of one conversion, in KiB (Linux:
    the high-water mark is reset first, so the imports' peak does not hide it)."""
    data = Path(path).read_bytes()
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = _status_kib("VmRSS")
    convert(data)
    print(json.dumps({"kib": _status_kib("VmHWM") - before}))


def peak_mib(data: bytes) -> float:
    with tempfile.NamedTemporaryFile(suffix=".jpg") as file:
        file.write(data)
        file.flush()
        result = subprocess.run(
            [sys.executable, __file__, "--child", file.name],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
    return float(json.loads(result.stdout)["kib"]) / 1024


async def loop_stall_ms(data: bytes | None, images: int, *, on_loop: bool = False) -> float:
    """The longest the loop waited beyond a 1 ms sleep while ``images`` messages with
    a photo each were converted concurrently."""
    processor = MediaProcessor(SETTINGS)
    longest = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal longest
        while not done.is_set():
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            longest = max(longest, time.perf_counter() - start - 0.001)

    async def message(n: int) -> None:
        if data is None:  # the baseline: the same wait with nothing to convert
            await asyncio.sleep(0.05)
            return
        if on_loop:  # what the worker threads spare the loop: converting on it
            convert(data)
            await asyncio.sleep(0)
            return
        result = await processor.process([IncomingFile.of_bytes(f"{n}.jpg", data)])
        assert result.attachments and not result.refusals, result.refusals

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    await asyncio.gather(*(message(n) for n in range(images)))
    done.set()
    await tick
    return longest * 1000


def main(quick: bool) -> list[Figure]:
    data = photo()
    runs = 3 if quick else 15
    timings = cpu_ms(data, runs)
    cpu = statistics.median(timings)
    peak = peak_mib(data)
    stall = asyncio.run(loop_stall_ms(data, 4 if quick else 16))
    idle = asyncio.run(loop_stall_ms(None, 4 if quick else 16))
    blocking = asyncio.run(loop_stall_ms(data, 2, on_loop=True))
    print(f"12 MP JPEG photo, {len(data) / 1e6:.1f} MB; max side {SETTINGS.max_image_side}")
    print(f"CPU per conversion: median {cpu:.1f} ms over {runs} runs (min {min(timings):.1f})")
    print(f"peak memory growth for one conversion: {peak:.1f} MiB")
    print(
        f"longest event-loop stall while converting: {stall:.1f} ms (idle: {idle:.1f} ms; "
        f"converting on the loop instead: {blocking:.1f} ms)"
    )
    return [
        Figure("media", "CPU per 12 MP photo message (decode, rotate, scale, encode)", cpu,
               "ms", GOAL_CPU_MS, "lower"),
        Figure("media", "peak memory growth converting one 12 MP photo", peak, "MiB",
               GOAL_PEAK_MIB, "lower"),
        Figure("media", "longest event-loop stall while photos are converted", stall, "ms",
               GOAL_STALL_MS, "lower"),
        Figure("media", "longest event-loop stall, the same wait with nothing converted",
               idle, "ms", note="the machine's own noise, for reading the figure above"),
        Figure("media", "longest event-loop stall if photos were converted on the loop",
               blocking, "ms", note="what converting in worker threads spares the loop"),
    ]  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child_peak(sys.argv[2])
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    add_json_option(parser)
    arguments = parser.parse_args()
    emit(main(arguments.quick), arguments.json)
