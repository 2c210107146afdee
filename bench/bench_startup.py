"""`bearbot run` start-up: seconds from starting the process to its first getUpdates (first poll),
and to its answer to a first photo, against the local fake Bot API (bot/console/fake_api.py).

Each start is a new process, as systemd or compose would start it. "fresh" starts on an empty
data directory (creates and migrates the SQLite database, records model v1); "again" restarts
on that directory.

    python bench/bench_startup.py --runs 3
"""

from __future__ import annotations

import argparse
import os
import resource
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


def one_start(data_dir: Path) -> tuple[float, float, float]:
    """Seconds to the first getUpdates and to the first photo's answer, and the process's CPU seconds.

    CPU seconds (user + system, the whole life of the process, which idles after its answer) say
    what the start costs even when other work shares the machine and stretches the wall clock.
    """
    cpu_before = _children_cpu()
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
            api.wait_for(lambda s: s.reply_to == photo["message_id"], timeout=120)
            first_answer = time.perf_counter() - started
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
    return first_poll, first_answer, _children_cpu() - cpu_before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows: dict[str, list[tuple[float, float, float]]] = {"fresh": [], "again": []}
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "var"
            rows["fresh"].append(one_start(data))
            rows["again"].append(one_start(data))
    load = os.getloadavg()[0]
    print(f"median of {args.runs} starts; {os.cpu_count()} CPUs, load average {load:.1f} when done")
    print(f"{'start':<7} {'first getUpdates (s)':>21} {'first answer (s)':>17} {'CPU (s)':>8}   first getUpdates per run")
    for name, values in rows.items():
        poll, answer, cpu = (statistics.median(v[i] for v in values) for i in range(3))
        runs = ", ".join(f"{v[0]:.2f}" for v in values)
        print(f"{name:<7} {poll:>21.2f} {answer:>17.2f} {cpu:>8.2f}   {runs}")


if __name__ == "__main__":
    main()
