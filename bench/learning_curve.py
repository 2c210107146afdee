"""Learning from users, measured: does one retrain on users' corrections lower unseen-photo error?

For each seed, the photos of ``--data`` (one sub-folder per label) are split, per label, into
a *base* part (imported as the bot's dataset, with its fixed golden split), a *stream* (photos
users send) and a *test* part nobody ever corrects. Then, through the real code paths:

1. test error of the serving model (v0 zero-shot on a fresh install);
2. every stream photo is stored, predicted and recorded as a prediction row, exactly as the bot
   does; each wrong answer gets a correction from the sender and one agreeing user (the
   acceptance policy's default of two), or only a fraction of them (``partial``), and in the
   ``adversarial`` variant one user also "corrects" right answers to a wrong label;
3. one training run through ``trainer.runner.run_now`` — the code ``/retrain`` runs, gate included;
4. test error of whatever model serves after the gate.

With ``--cycles K`` the stream arrives in K interleaved parts, each sent to the model serving at
that moment and followed by one retrain, and test error is printed after every cycle: does the bot
keep getting better while it runs, and does any cycle make it worse?

Prints test errors before/after as counts (k/n: one photo moves the rate by more than a percent)
per seed and variant, the totals pooled over seeds, whether any seed got worse, and each run's
duration. The default split is 35 % base / 40 % stream / 25 % test: on ../shared/data/bears the
zero-shot model errs on 1–2 % of photos, so a smaller stream yields almost no corrections
(seed 0 yields none at all) and the benchmark would measure only the retrain on the base part.

    python bench/learning_curve.py --data ../shared/data/bears --seeds 0 1 2
    python bench/learning_curve.py --seeds 0 1 2 3 4 5 6 --variants all --cycles 3
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bearbot.imaging import ImageError, inspect_image  # noqa: E402
from bearbot.settings import Settings, load_settings  # noqa: E402
from storage import corrections, predictions, users  # noqa: E402
from storage.dataset import ItemSource, PhashIndex  # noqa: E402
from storage.models import Origin, RunStatus  # noqa: E402
from storage.store import Storage, open_storage  # noqa: E402

EXTS = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"}


@dataclass(frozen=True)
class Photo:
    path: Path
    label: str


@dataclass
class Result:
    seed: int
    variant: str
    before: int  # test errors of the model serving before the first cycle
    afters: list[int]  # ... and after each cycle (the gate may have kept the old model)
    n_test: int
    corrected: int
    wrong_in_stream: int
    statuses: list[str]
    seconds: list[float]

    @property
    def after(self) -> int:
        return self.afters[-1]

    @property
    def never_worse(self) -> bool:
        """No cycle raised unseen-photo errors above those of the model it replaced."""
        return all(b <= a for a, b in pairwise([self.before, *self.afters]))


def load_photos(root: Path) -> list[Photo]:
    return [
        Photo(p, d.name)
        for d in sorted(root.iterdir()) if d.is_dir()
        for p in sorted(d.iterdir()) if p.suffix.lower() in EXTS
    ]


def split(photos: list[Photo], seed: int, base: float, stream: float) -> tuple[list[Photo], list[Photo], list[Photo]]:
    """Per-label random split into base / stream / test."""
    rng = random.Random(seed)
    parts: tuple[list[Photo], list[Photo], list[Photo]] = ([], [], [])
    for label in sorted({p.label for p in photos}):
        group = [p for p in photos if p.label == label]
        rng.shuffle(group)
        a, b = round(len(group) * base), round(len(group) * (base + stream))
        parts[0].extend(group[:a])
        parts[1].extend(group[a:b])
        parts[2].extend(group[b:])
    return parts


def errors(classifier, photos: list[Photo]) -> int:  # noqa: ANN001
    """Wrong answers on ``photos``, through the bot's own predict-from-bytes path."""
    return sum(classifier.predict(p.path.read_bytes()).label != p.label for p in photos)


def import_base(store: Storage, settings: Settings, photos: list[Photo]) -> None:
    from trainer.ingest import ingest_image

    with store.session() as s:
        index = PhashIndex.load(s)
        for p in photos:
            data = p.path.read_bytes()
            try:
                info = inspect_image(data, max_pixels=settings.max_image_pixels)
            except ImageError:
                continue
            ingest_image(
                s, images=store.images, index=index, data=data, info=info, label=p.label,
                source=ItemSource.IMPORT, source_url=None, golden_fraction=settings.golden_fraction,
            )


def send_stream(
    store: Storage, settings: Settings, classifier, photos: list[Photo], *, fraction: float,  # noqa: ANN001
    adversarial: int, rng: random.Random, first_message: int = 1,
) -> tuple[int, int]:
    """Users send the stream; wrong answers get corrected (two users agree). Returns (wrong, corrected)."""
    wrong = corrected = attacked = 0
    labels = settings.labels
    with store.session() as s:
        sender = users.upsert_user(s, telegram_id=1001, display_name="sender", is_admin=False)
        friend = users.upsert_user(s, telegram_id=1002, display_name="friend", is_admin=False)
        troll = users.upsert_user(s, telegram_id=6666, display_name="troll", is_admin=False)
        for i, p in enumerate(photos):
            data = p.path.read_bytes()
            image, _ = store.images.put(s, data=data, origin=Origin.UPLOAD)
            answer = classifier.predict(data)
            pred = predictions.record_prediction(
                s, image_id=image.id, user_id=sender.id, chat_id=1001, message_id=first_message + i, answer=answer
            )
            if answer.label != p.label:
                wrong += 1
                if rng.random() < fraction:
                    corrected += 1
                    for who in (sender, friend):
                        corrections.record_correction(
                            s, image_id=image.id, user_id=who.id, label=p.label, prediction_id=pred.id,
                            is_admin=False, required=settings.corrections_to_accept,
                        )
            elif attacked < adversarial:
                attacked += 1
                bad = next(lbl for lbl in labels if lbl != p.label)
                corrections.record_correction(
                    s, image_id=image.id, user_id=troll.id, label=bad, prediction_id=pred.id,
                    is_admin=False, required=settings.corrections_to_accept,
                )
    return wrong, corrected


def one_seed(data: Path, seed: int, variant: str, args: argparse.Namespace) -> Result:
    """Import the base part, then ``args.cycles`` times: users send their share of the stream, one retrain."""
    from trainer.runner import load_serving, run_now

    photos = load_photos(data)
    base, stream, test = split(photos, seed, args.base, args.stream)
    labels = ",".join(sorted({p.label for p in photos}))
    rng = random.Random(seed)
    fraction = args.partial if variant == "partial" else 1.0
    adversarial = args.adversarial if variant == "adversarial" else 0
    afters, statuses, seconds = [], [], []
    wrong = corrected = 0
    with tempfile.TemporaryDirectory(prefix="bearbot-lc-") as tmp:
        settings = load_settings(data_dir=Path(tmp), labels=labels)
        store = open_storage(settings)
        import_base(store, settings, base)
        model = load_serving(store, settings)
        before = errors(model, test)
        for cycle in range(args.cycles):
            part = stream[cycle :: args.cycles]  # interleaved: every part holds every label
            w, c = send_stream(
                store, settings, model, part, fraction=fraction, adversarial=adversarial, rng=rng,
                first_message=1 + cycle * len(stream),
            )
            wrong, corrected = wrong + w, corrected + c
            started = time.perf_counter()
            with contextlib.redirect_stdout(sys.stderr):  # fastai's progress bars; keep the table clean
                run = run_now(store)
            seconds.append(time.perf_counter() - started)
            if run.status is RunStatus.FAILED:
                print(f"  run failed: {run.error}", file=sys.stderr)
            model = load_serving(store, settings)
            afters.append(errors(model, test))
            statuses.append(run.status.value)
        store.close()
    return Result(seed, variant, before, afters, len(test), corrected, wrong, statuses, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/bears")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=["all", "partial", "adversarial"])
    parser.add_argument("--base", type=float, default=0.35, help="share of each label imported as the dataset")
    parser.add_argument("--stream", type=float, default=0.4, help="share users send (the rest, 25 %%, is test)")
    parser.add_argument("--partial", type=float, default=0.5, help="share of wrong answers corrected in 'partial'")
    parser.add_argument("--adversarial", type=int, default=10, help="right answers one user mislabels per cycle")
    parser.add_argument("--cycles", type=int, default=1, help="split the stream in this many parts, a retrain after each")
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"no photo folder at {args.data}; pass --data DIR (one sub-folder per label)")
    results: list[Result] = []
    afters = " ".join(f"{'after ' + str(k + 1):>12}" for k in range(args.cycles)) if args.cycles > 1 else f"{'after':>12}"
    print(f"{'seed':>4} {'variant':<12} {'before':>12} {afters} {'wrong':>5} {'fixed':>5} {'status':<10} {'run s':>6}")
    for variant in args.variants:
        for seed in args.seeds:
            r = one_seed(args.data, seed, variant, args)
            results.append(r)
            cells = " ".join(f"{fmt(a, r.n_test):>12}" for a in r.afters)
            print(
                f"{r.seed:>4} {r.variant:<12} {fmt(r.before, r.n_test):>12} {cells} "
                f"{r.wrong_in_stream:>5} {r.corrected:>5} {','.join(r.statuses):<10} "
                f"{','.join(f'{x:.0f}' for x in r.seconds):>6}", flush=True,
            )
    for variant in args.variants:
        print(summarize([r for r in results if r.variant == variant], variant))


def fmt(errors: int, n: int) -> str:
    """``2/83 2.4%``: counts first, since one photo moves the rate by more than a percent."""
    return f"{errors}/{n} {errors / n:.1%}"


def summarize(rs: list[Result], variant: str) -> str:
    """Totals over seeds (pooled errors / pooled test photos) per cycle, never-worse check, run times."""
    b, n = sum(r.before for r in rs), sum(r.n_test for r in rs)
    cycles = len(rs[0].afters)
    path = " → ".join(fmt(sum(r.afters[k] for r in rs), n) for k in range(cycles))
    a = sum(r.after for r in rs)
    ratio = f"{a / b:.2f}" if b else "n/a"
    times = [t for r in rs for t in r.seconds]
    return (
        f"total {variant:<12} before {fmt(b, n)} after {path} (after/before {ratio}); "
        f"never worse: {all(r.never_worse for r in rs)}; run {statistics.mean(times):.0f} s (max {max(times):.0f} s)"
    )


if __name__ == "__main__":
    main()
