"""`bearbot run` start-up: seconds from starting the process to its first getUpdates (first poll),
to its answer to a first photo, and (on an empty data dir) until the ONNX graph is cached, against
the local fake Bot API (tests/fake_bot_api.py); and the bot process's resident memory once it has
answered (a restart serves the cached graph without importing torch: bearbot/serving.py).

Each start is a new process, as systemd or compose would start it. "fresh" starts on an empty
data directory (creates and migrates the SQLite database, records model v1, answers with the eager
model while a child process exports the ONNX graph); "again" restarts on that directory (the cached
graph). The bot polls while its model loads, so the first answer can come later than the first poll.

    python bench/bench_startup.py --runs 3
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the fake Bot API lives in tests/
from tests.fake_bot_api import FakeBotApi  # noqa: E402

PHOTO = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "bears" / "teddy" / "teddy1.jpg"
USER = {"id": 5, "is_bot": False, "first_name": "Bench"}


def one_start(data_dir: Path) -> tuple[float, float, float, float | None, float]:
    """Seconds to the first getUpdates and to the first photo's answer, the process's CPU seconds, the
    seconds until the ONNX graph was in the cache (None: it was there before the start), and the bot
    process's resident memory (MB) once it has answered.

    CPU seconds (user + system of the bot, until its answer; not its export child) say what the start
    costs even when other work shares the machine and stretches the wall clock.
    """
    compiled = data_dir / "models" / "compiled"
    cached_before = any(compiled.glob("*.json"))
    with FakeBotApi() as api:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("BEARBOT_", "TELEGRAM_"))},
            "TELEGRAM_BOT_TOKEN": api.token, "TELEGRAM_API_URL": api.url, "BEARBOT_DATA_DIR": str(data_dir),
        }
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "bearbot", "run"], env=env, cwd=data_dir.parent,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not any(method == "getUpdates" for method, _ in list(api.calls)):
                if proc.poll() is not None:
                    raise RuntimeError(f"bearbot run exited with {proc.returncode}")
                time.sleep(0.005)
            first_poll = time.perf_counter() - started
            photo = api.send_user_message(USER, photo=PHOTO.read_bytes())
            api.wait_for(lambda s: s.reply_to == photo["message_id"], timeout=300)
            first_answer = time.perf_counter() - started
            cpu = _process_cpu(proc.pid)
            rss = _resident_mb(proc.pid)
            graph = None
            if not cached_before:  # the export child's graph: a restart must find it
                while not any(compiled.glob("*.json")) and time.perf_counter() - started < 900:
                    time.sleep(0.05)
                graph = time.perf_counter() - started
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
    return first_poll, first_answer, cpu, graph, rss


def _resident_mb(pid: int) -> float:
    """A running process's resident memory in MB (Linux /proc: VmRSS; its children not counted)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds a running process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows: dict[str, list[tuple[float, float, float, float | None, float]]] = {"fresh": [], "again": []}
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "var"
            rows["fresh"].append(one_start(data))
            rows["again"].append(one_start(data))
    load = os.getloadavg()[0]
    print(f"median of {args.runs} starts; {os.cpu_count()} CPUs, load average {load:.1f} when done")
    print(f"{'start':<7} {'first getUpdates (s)':>21} {'first answer (s)':>17} {'CPU (s)':>8} {'graph cached (s)':>17}"
          f" {'resident (MB)':>14}   first getUpdates per run")
    for name, values in rows.items():
        poll, answer, cpu = (statistics.median(v[i] for v in values) for i in range(3))
        graphs = [v[3] for v in values if v[3] is not None]
        graph = f"{statistics.median(graphs):.1f}" if graphs else "-"
        rss = statistics.median(v[4] for v in values)
        runs = ", ".join(f"{v[0]:.2f}" for v in values)
        print(f"{name:<7} {poll:>21.2f} {answer:>17.2f} {cpu:>8.2f} {graph:>17} {rss:>14.0f}   {runs}")


if __name__ == "__main__":
    main()
