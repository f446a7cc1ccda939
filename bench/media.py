"""Media benchmark: what an image message costs the process, and that the loop stays free.

Measures, for a 12-megapixel JPEG photo (4000 x 3000, noisy like a real photo):
  * CPU milliseconds to make it what a persona sees (``bot.media.normalise_image``:
    decode, EXIF-rotate, scale to MEDIA__MAX_IMAGE_SIDE, re-encode), median of runs;
  * the process's peak memory growth for one conversion (``ru_maxrss`` in a fresh child
    process, after the photo's bytes are loaded, so only the conversion counts);
  * the event loop's longest stall while several image messages are converted at once
    through ``MediaProcessor`` (a ticker asks for a 1 ms sleep and records the longest
    wait beyond it): decoding runs in worker threads, so the loop keeps serving.

And what a reply read aloud (``/voice on``) costs the bot's process: CPU milliseconds
per spoken reply through ``VoiceReplies.speak`` (the owner's preference read from the
store, the text made speakable, the real ``OpenAISpeech`` client posting to
``audio/speech`` and reading the audio back), against a fake speech server in another
process that answers at once with :data:`SPOKEN_BYTES` of audio (about a minute of
Opus speech, what a 1,000-character reply makes), so that only the bot's CPU counts.

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
GOAL_SPEECH_CPU_MS = 25.0  # per spoken reply: a tenth of a photo message at most
SETTINGS = MediaSettings()
#: The audio the fake speech server answers: ~60 s of 24 kbit/s Opus.
SPOKEN_BYTES = 180_000
#: A reply of SPEECH__MAX_CHARS' default length.
REPLY = ("The container shares the host's kernel, so it starts in a blink. " * 16)[:1000]


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


def speech_server() -> None:
    """In a child process: an ``audio/speech`` endpoint answering SPOKEN_BYTES at once;
    prints its port, serves until killed."""
    from aiohttp import web

    audio = b"OggS" + bytes(SPOKEN_BYTES - 4)

    async def speech(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=audio, content_type="audio/ogg")

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/v1/audio/speech", speech)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(runner.addresses[0][1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


async def speech_cpu_ms(port: int, replies: int) -> list[float]:
    """CPU ms of the bot's process per spoken reply (after a few to warm up)."""
    from bot.backends.speech import OpenAISpeech
    from bot.commands import VOICE_PREFERENCE
    from bot.config import SpeechSettings
    from bot.messages import Identity, Incoming, ReplyDone, ReplyKind, guest_owner
    from bot.personas import Persona, PersonaLibrary
    from bot.speech import SpokenReply, VoiceReplies
    from bot.store.memory import MemoryStore

    url = f"http://127.0.0.1:{port}/v1"
    synthesizer = OpenAISpeech(base_url=url, model="tts-1")
    timings = []
    async with MemoryStore() as store:
        personas = PersonaLibrary([Persona(id="ada", name="Ada")])
        speech = VoiceReplies(store, personas, synthesizer, SpeechSettings(base_url=url))
        incoming = Incoming("telegram", "1", "Sam", "1", True, "hi")
        owner = guest_owner(Identity("telegram", "1"))
        await store.set_preference(owner, VOICE_PREFERENCE, "on")
        done = ReplyDone(REPLY, ReplyKind.CHAT, "Ada")
        for n in range(replies + 3):
            start = time.process_time()
            spoken = await speech.speak(incoming, done)
            if n >= 3:
                timings.append((time.process_time() - start) * 1000)
            assert isinstance(spoken, SpokenReply) and len(spoken.data) == SPOKEN_BYTES
    await synthesizer.aclose()
    return timings


def spoken_reply_cpu(replies: int) -> list[float]:
    server = subprocess.Popen(
        [sys.executable, __file__, "--speech-server"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        return asyncio.run(speech_cpu_ms(port, replies))
    finally:
        server.terminate()
        server.wait(timeout=10)


def main(quick: bool) -> list[Figure]:
    data = photo()
    runs = 3 if quick else 15
    timings = cpu_ms(data, runs)
    cpu = statistics.median(timings)
    peak = peak_mib(data)
    stall = asyncio.run(loop_stall_ms(data, 4 if quick else 16))
    idle = asyncio.run(loop_stall_ms(None, 4 if quick else 16))
    blocking = asyncio.run(loop_stall_ms(data, 2, on_loop=True))
    speaking = spoken_reply_cpu(10 if quick else 60)
    speech = statistics.median(speaking)
    print(f"12 MP JPEG photo, {len(data) / 1e6:.1f} MB; max side {SETTINGS.max_image_side}")
    print(f"CPU per conversion: median {cpu:.1f} ms over {runs} runs (min {min(timings):.1f})")
    print(f"peak memory growth for one conversion: {peak:.1f} MiB")
    print(
        f"longest event-loop stall while converting: {stall:.1f} ms (idle: {idle:.1f} ms; "
        f"converting on the loop instead: {blocking:.1f} ms)"
    )
    print(
        f"CPU per spoken reply (1,000 characters, {SPOKEN_BYTES / 1000:.0f} kB of audio): "
        f"median {speech:.2f} ms over {len(speaking)} (min {min(speaking):.2f})"
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
        Figure("media", "CPU per reply read aloud (/voice on), fake speech server", speech,
               "ms", GOAL_SPEECH_CPU_MS, "lower",
               note="1,000 characters to audio/speech, 180 kB of audio back; the server in "
               "another process"),
    ]  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child_peak(sys.argv[2])
        sys.exit(0)
    if sys.argv[1:] == ["--speech-server"]:
        speech_server()
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    add_json_option(parser)
    arguments = parser.parse_args()
    emit(main(arguments.quick), arguments.json)
