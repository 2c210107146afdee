"""Learning from users, measured: does a retrain on users' corrections lower unseen-photo error?

Two setups, both through the real code (the image store, prediction and correction rows, the
acceptance policy, and ``trainer.runner.run_now`` — the run ``/retrain`` starts, gate included):

* ``--base DIR --stream DIR``: the bot's dataset is imported from one folder; users send photos
  from another, independent scrape, and the unseen test photos come from that one too. This is
  the setup that carries over to real traffic.
* ``--data DIR``: one folder split per label into base / stream / test (the old benchmark).

Near-duplicates (difference hash within 10 bits: crops and re-encodes of one photo) are never on
two sides: a stream or test photo near a base photo is dropped, and near-duplicate groups inside
the stream folder go to stream or test whole.

Users: every wrong answer in the stream is corrected by an admin (``--fix`` of them), and a share of
the right answers (``--confirm``) is confirmed with ✅ by the sender. ``--only black:grizzly`` corrects
only that confusion (black bears the model called grizzly), ``--max-corrections K`` at most K per
seed: ``correction_curve.py``'s question with the gate in the loop. Then one retrain; with
``--cycles K`` the stream arrives in K parts, each answered by the model serving then, with a
retrain after each.

Printed per seed: unseen test errors before → after, the paired *fixes* (serving wrong, new model
right) and *breaks* (the reverse) on the test photos, and the gate's verdict. Totals: pooled errors,
fixes and breaks, per-class errors, and how often the gate promoted a model that was worse on the
unseen photos. Answers on test photos are read off cached body features (the serving model's own
``forward_all`` on them, equal to the bytes path to 1e-6), so seeds cost seconds.

    python bench/learning_curve.py --base ../shared/data/bears --stream ../shared/data/bears-2019 --seeds 0-19
    python bench/learning_curve.py --base ../shared/data/bears-2019 --stream ../shared/data/bears --seeds 0-19
    python bench/learning_curve.py --data ../shared/data/bears --seeds 0-6
    python bench/learning_curve.py --base ../shared/data/bears-2019 --stream ../shared/data/bears --only black:grizzly --max-corrections 3
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bearbot.imaging import IMAGE_SUFFIXES, ImageError, hash_distance, inspect_image
from bearbot.settings import Settings, load_settings
from storage import corrections, predictions, users
from storage.dataset import ItemSource, PhashIndex
from storage.models import Origin, RunStatus
from storage.store import Storage, open_storage

NEAR = 10  # difference-hash bits: storage.dataset.SAME_SIDE_DISTANCE
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FEATURES = Path(__file__).resolve().parent / "out" / "features"  # body features by photo and body hash


@dataclass(frozen=True)
class Photo:
    path: Path
    label: str
    phash: int
    sha256: str


@dataclass
class Result:
    seed: int
    before: int  # unseen test errors of the model serving before the first cycle
    afters: list[int]  # ... and after each cycle (the gate may have kept the old model)
    fixes: int  # test photos wrong before and right after the last cycle
    breaks: int  # right before, wrong after
    n_test: int
    corrected: int
    confirmed: int
    statuses: list[str]
    seconds: list[float]
    class_before: Counter[str] = field(default_factory=Counter)
    class_after: Counter[str] = field(default_factory=Counter)
    worse_promoted: int = 0  # cycles whose promoted model made more test errors than the one it replaced
    gates: list[str] = field(default_factory=list)  # the gate's fixes/breaks and p per cycle
    calibration: list[dict] = field(default_factory=list)  # the runs' temperature fits (held-out ECE before/after)
    confidence: list[tuple[float, bool, float, bool]] = field(default_factory=list)  # test: (conf, right) before, after
    cell_before: int = 0  # with --only TRUE:SAID: test photos of TRUE answered SAID, before the first cycle
    cell_after: int = 0  # ... and after the last

    @property
    def after(self) -> int:
        return self.afters[-1]


def load_photos(root: Path) -> list[Photo]:
    """Every photo under ``root/<label>/`` with its difference hash and sha256."""
    photos = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                info = inspect_image(path.read_bytes())
            except ImageError:
                continue
            photos.append(Photo(path, folder.name, int(info.phash, 16), info.sha256))
    return photos


def near(a: Photo, others: list[Photo]) -> bool:
    return any(hash_distance(a.phash, o.phash) <= NEAR for o in others)


def groups_of(photos: list[Photo]) -> list[list[Photo]]:
    """Near-duplicate groups (single linkage within NEAR bits)."""
    groups: list[list[Photo]] = []
    for photo in photos:
        joined = [g for g in groups if near(photo, g)]
        merged = [photo] + [p for g in joined for p in g]
        groups = [g for g in groups if g not in joined] + [merged]
    return groups


def split_groups(photos: list[Photo], rng: random.Random, shares: list[float]) -> list[list[Photo]]:
    """Per label, near-duplicate groups shuffled and dealt into parts of the given shares."""
    parts: list[list[Photo]] = [[] for _ in shares]
    for label in sorted({p.label for p in photos}):
        groups = groups_of([p for p in photos if p.label == label])
        rng.shuffle(groups)
        total = sum(len(g) for g in groups)
        bounds = [sum(shares[: i + 1]) * total for i in range(len(shares))]
        taken = 0
        for g in groups:
            part = next(i for i, b in enumerate(bounds) if taken < b or i == len(bounds) - 1)
            parts[part].extend(g)
            taken += len(g)
    return parts


@dataclass
class Sources:
    """Two folders' photos with cached zero-shot features: what the feature-only benches work on."""

    base: list[Photo]
    stream: list[Photo]
    labels: tuple[str, ...]
    zero_shot: object  # BearNet
    table: object  # trainer.features.FeatureTable

    @classmethod
    def load(cls, base_dir: Path, stream_dir: Path, cache: Path | None = None) -> Sources:
        from bearbot.backbone import load_backbone
        from bearbot.model_def import build_zero_shot
        from trainer.features import FeatureCache, feature_table

        base, stream = load_photos(base_dir), load_photos(stream_dir)
        labels = tuple(sorted({p.label for p in base}))
        zero_shot = build_zero_shot(load_backbone("efficientnet_lite0"), labels)
        cache = cache or FEATURES
        cache.mkdir(parents=True, exist_ok=True)
        table = feature_table(
            zero_shot, base + stream, cache=FeatureCache(cache, zero_shot), device="cpu",
            batch_size=32, max_pixels=40_000_000,
        )
        return cls(base, stream, labels, zero_shot, table)

    def x(self, photos: list[Photo], mirrored: bool = False):  # noqa: ANN201 - torch.Tensor
        table = self.table
        return (table.mirrored if mirrored else table.plain)[table.rows([p.sha256 for p in photos])]

    def y(self, photos: list[Photo]):  # noqa: ANN201 - torch.Tensor
        import torch

        index = {label: i for i, label in enumerate(self.labels)}
        return torch.tensor([index[p.label] for p in photos], dtype=torch.long)

    def fit(self, rows: list[tuple[Photo, float]], *, l2: float, max_iter: int = 100):  # noqa: ANN201 - nn.Linear
        """The head refit on (photo, weight) rows and their mirror images, pulled to zero-shot's rows."""
        import torch

        from trainer.head_fit import fit_head

        photos = [p for p, _ in rows]
        weights = torch.tensor([w for _, w in rows] * 2)
        x = torch.cat([self.x(photos), self.x(photos, True)])
        return fit_head(x, torch.cat([self.y(photos)] * 2), weights, self.zero_shot.head, l2=l2, max_iter=max_iter)

    def base_train(self) -> list[Photo]:
        """The base photos an import puts in the train split (golden 20 %, valid 10 % by hash)."""
        from storage.dataset import Split, assign_split

        return [p for p in self.base if assign_split(p.sha256, golden_fraction=0.2) is Split.TRAIN]

    def pool(self) -> list[Photo]:
        """Stream photos with nothing near a base photo."""
        return [p for p in self.stream if not near(p, self.base)]


def feature_bench_parser(description: str, *, seeds: int) -> argparse.ArgumentParser:
    """The arguments every feature-only bench shares: the two folders, how many seeds, the ✅ share."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--base", type=Path, default=SHARED / "bears", help="folder the dataset comes from")
    parser.add_argument("--stream", type=Path, default=SHARED / "bears-2019", help="folder of users' and test photos")
    parser.add_argument("--seeds", type=int, default=seeds)
    parser.add_argument("--confirm", type=float, default=0.5, help="share of right answers the sender confirms (✅)")
    return parser


def import_base(store: Storage, settings: Settings, photos: list[Photo]) -> None:
    from trainer.ingest import ingest_image

    with store.session() as s:
        index = PhashIndex.load(s)
        for p in photos:
            data = p.path.read_bytes()
            info = inspect_image(data, max_pixels=settings.max_image_pixels)
            ingest_image(
                s, images=store.images, index=index, data=data, info=info, label=p.label,
                source=ItemSource.IMPORT, source_url=None, golden_fraction=settings.golden_fraction,
            )


class Answers:
    """The serving model's answers on photos, from cached body features (``forward_all`` on them)."""

    def __init__(self, store: Storage, settings: Settings, photos: list[Photo]) -> None:
        from bearbot.backbone import load_backbone
        from bearbot.model_def import build_zero_shot
        from trainer.features import FeatureCache, feature_table

        zero_shot = build_zero_shot(load_backbone(settings.arch), settings.labels, image_size=settings.image_size)
        self.table = feature_table(
            zero_shot, photos, cache=FeatureCache(settings.features_dir, zero_shot), device="cpu",
            batch_size=32, max_pixels=settings.max_image_pixels,
        )
        self.store, self.settings = store, settings

    def of(self, photos: list[Photo]):
        from trainer.features import readout
        from trainer.pipeline import answers, load_serving

        serving = load_serving(self.store, self.settings)
        logits, score = readout(serving.model)(self.table.plain[self.table.rows([p.sha256 for p in photos])])
        return answers(logits, score, serving.labels, threshold=self.settings.bear_threshold, version_id=serving.version_id)


def send_stream(
    store: Storage, settings: Settings, photos: list[Photo], answers: list, *, rng: random.Random,
    fix: float, confirm: float, first_message: int, may_correct: Callable[[Photo, Any], bool] = lambda p, a: True,
) -> tuple[int, int]:
    """Users send ``photos``; an admin corrects wrong answers (those ``may_correct`` allows), senders
    confirm right ones. (corrected, confirmed)"""
    corrected = confirmed = 0
    with store.session() as s:
        sender = users.upsert_user(s, telegram_id=1001, display_name="sender", is_admin=False)
        admin = users.upsert_user(s, telegram_id=1, display_name="admin", is_admin=True)
        for i, (p, answer) in enumerate(zip(photos, answers, strict=True)):
            image, _ = store.images.put(s, data=p.path.read_bytes(), origin=Origin.UPLOAD)
            pred = predictions.record_prediction(
                s, image_id=image.id, user_id=sender.id, chat_id=1001, message_id=first_message + i, answer=answer
            )
            if answer.label != p.label and rng.random() < fix and may_correct(p, answer):
                corrected += 1
                corrections.record_correction(
                    s, image_id=image.id, user_id=admin.id, label=p.label, prediction_id=pred.id,
                    is_admin=True, required=settings.corrections_to_accept,
                )
            elif answer.label == p.label and answer.is_bear and rng.random() < confirm:
                confirmed += 1
                corrections.record_correction(
                    s, image_id=image.id, user_id=sender.id, label=p.label, prediction_id=pred.id,
                    is_admin=False, required=settings.corrections_to_accept,
                )
    return corrected, confirmed


def one_seed(seed: int, args: argparse.Namespace, cache: Path) -> Result:
    """Import the base, then ``args.cycles`` times: users send their share of the stream, one retrain."""
    from trainer.runner import run_now

    rng = random.Random(seed)
    if args.data is not None:
        base, stream, test = split_groups(PHOTOS["data"], rng, [args.base_share, args.stream_share, 1.0])
    else:
        base = PHOTOS["base"]
        pool = [p for p in PHOTOS["stream"] if not near(p, base)]  # nothing on both sides
        stream, test = split_groups(pool, rng, [args.stream_share, 1.0])
    labels = ",".join(sorted({p.label for p in base}))
    with tempfile.TemporaryDirectory(prefix="bearbot-lc-") as tmp:
        settings = load_settings(data_dir=Path(tmp), labels=labels, **OVERRIDES)
        Path(tmp, "features").symlink_to(cache, target_is_directory=True)  # one feature cache for every seed
        store = open_storage(settings)
        import_base(store, settings, base)
        answers = Answers(store, settings, stream + test)
        first = last = answers.of(test)
        before = sum(a.label != p.label for a, p in zip(first, test, strict=True))
        budget = [args.max_corrections if args.max_corrections is not None else len(stream)]

        def may_correct(p: Photo, answer: Any) -> bool:
            """Only the ``--only`` confusion, and at most ``--max-corrections`` of it per seed."""
            if args.only is not None and (p.label, answer.label) != args.only:
                return False
            budget[0] -= 1
            return budget[0] >= 0

        class_before = Counter(p.label for a, p in zip(first, test, strict=True) if a.label != p.label)
        afters, statuses, seconds, gates, calibration = [], [], [], [], []
        corrected = confirmed = worse_promoted = 0
        previous = before
        for cycle in range(args.cycles):
            part = stream[cycle :: args.cycles]
            c, k = send_stream(
                store, settings, part, answers.of(part), rng=rng, fix=args.fix, confirm=args.confirm,
                first_message=1 + cycle * len(stream), may_correct=may_correct,
            )
            corrected, confirmed = corrected + c, confirmed + k
            started = time.perf_counter()
            with contextlib.redirect_stdout(sys.stderr):
                run = run_now(store)
            seconds.append(time.perf_counter() - started)
            if run.status is RunStatus.FAILED:
                print(f"  run failed: {run.error}", file=sys.stderr)
            last = answers.of(test)  # after this cycle; after the loop, the answers the last model gives
            errors = sum(a.label != p.label for a, p in zip(last, test, strict=True))
            if run.status is RunStatus.SUCCEEDED and errors > previous:
                worse_promoted += 1
            afters.append(errors)
            statuses.append(run.status.value)
            g = (run.metrics or {}).get("gate") or {}
            if (run.metrics or {}).get("temperature", {}).get("ece_before") is not None:
                calibration.append(run.metrics["temperature"])
            gates.append(
                f"{g.get('fixes', 0) - g.get('golden_fixes', 0)}/{g.get('breaks', 0) - g.get('golden_breaks', 0)}"
                f" p={g.get('p_value', 1):.2f}, golden {g.get('golden_fixes', 0)}/{g.get('golden_breaks', 0)}"
            )
            if args.verbose:
                for change in g.get("fixed", []) + g.get("broken", []):
                    print(f"    {change}", file=sys.stderr)
            previous = errors
        store.close()
    fixes = sum(a.label != p.label and b.label == p.label for a, b, p in zip(first, last, test, strict=True))
    breaks = sum(a.label == p.label and b.label != p.label for a, b, p in zip(first, last, test, strict=True))
    class_after = Counter(p.label for b, p in zip(last, test, strict=True) if b.label != p.label)
    cells = [sum((p.label, x.label) == args.only for x, p in zip(said, test, strict=True)) if args.only else 0
             for said in (first, last)]
    confidence = [
        (a.confidence, a.label == p.label, b.confidence, b.label == p.label) for a, b, p in zip(first, last, test, strict=True)
    ]
    return Result(
        seed, before, afters, fixes, breaks, len(test), corrected, confirmed, statuses, seconds,
        class_before, class_after, worse_promoted, gates, calibration, confidence, *cells,
    )


PHOTOS: dict[str, list[Photo]] = {}
OVERRIDES: dict[str, object] = {}


def parse_seeds(values: list[str]) -> list[int]:
    """``0-19`` or ``0 1 2``."""
    out: list[int] = []
    for v in values:
        lo, _, hi = v.partition("-")
        out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, help="folder the bot's dataset is imported from")
    parser.add_argument("--stream", type=Path, help="folder users' photos (and the unseen test photos) come from")
    parser.add_argument("--data", type=Path, help="one folder split into base / stream / test instead")
    parser.add_argument("--seeds", nargs="+", default=["0-19"])
    parser.add_argument("--stream-share", type=float, default=0.6, help="share of the stream folder users send; the rest is test")
    parser.add_argument("--base-share", type=float, default=0.35, help="with --data: share imported as the dataset")
    parser.add_argument("--fix", type=float, default=1.0, help="share of wrong answers an admin corrects")
    parser.add_argument("--confirm", type=float, default=0.5, help="share of right answers the sender confirms (✅)")
    parser.add_argument("--cycles", type=int, default=1)
    parser.add_argument("--verbose", action="store_true", help="list the gate's fixed and broken photos (stderr)")
    parser.add_argument("--alpha", type=float, help="BEARBOT_GATE_ALPHA for this run (default: the setting's)")
    parser.add_argument("--only", type=confusion, metavar="TRUE:SAID",
                        help="correct only this confusion (e.g. black:grizzly, cinnamon black bears called grizzly)")
    parser.add_argument("--max-corrections", type=int, metavar="K", help="correct at most K wrong answers per seed")
    parser.add_argument(
        "--cache", type=Path, default=FEATURES,
        help="body-feature cache kept between runs (keyed by photo and body hash, so always safe to reuse)",
    )
    args = parser.parse_args()
    if args.data is None and (args.base is None or args.stream is None):
        args.base, args.stream = SHARED / "bears", SHARED / "bears-2019"
    for name in ("data", "base", "stream"):
        folder = getattr(args, name)
        if folder is not None:
            if not folder.is_dir():
                sys.exit(f"no photo folder at {folder} (one sub-folder per label)")
            PHOTOS[name] = load_photos(folder)
    if args.alpha is not None:
        OVERRIDES["gate_alpha"] = args.alpha
    seeds = parse_seeds(args.seeds)
    setup = f"--data {args.data}" if args.data else f"--base {args.base} --stream {args.stream}"
    which = f"'{args.only[0]}' answered '{args.only[1]}'" if args.only else "wrong answers"
    cap = f", at most {args.max_corrections} per seed" if args.max_corrections is not None else ""
    print(f"# {setup}; seeds {seeds[0]}–{seeds[-1]}; corrected {args.fix:.0%} of {which}{cap}, "
          f"confirmed {args.confirm:.0%} of right ones; {args.cycles} cycle(s)")
    afters = " ".join(f"{'after ' + str(k + 1):>8}" for k in range(args.cycles))
    print(f"{'seed':>4} {'before':>8} {afters} {'fixes':>5} {'breaks':>6} {'fixed':>5} {'✅':>4} {'status':<20} {'gate: users f/b, p; golden f/b':<30} {'run s':>6}")
    results: list[Result] = []
    args.cache.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        r = one_seed(seed, args, args.cache.resolve())
        results.append(r)
        cells = " ".join(f"{a:>4}/{r.n_test:<3}" for a in r.afters)
        print(
            f"{r.seed:>4} {r.before:>4}/{r.n_test:<3} {cells} {r.fixes:>5} {r.breaks:>6} {r.corrected:>5} "
            f"{r.confirmed:>4} {','.join(r.statuses):<20} {'; '.join(r.gates):<30} {','.join(f'{x:.0f}' for x in r.seconds):>6}",
            flush=True,
        )
    print(summarize(results))
    if args.only:
        print(f"the corrected confusion on unseen photos ({args.only[0]} answered {args.only[1]}): "
              f"{sum(r.cell_before for r in results)} → {sum(r.cell_after for r in results)}")


def confusion(value: str) -> tuple[str, str]:
    """``black:grizzly`` → ('black', 'grizzly'): photos of the first label answered as the second."""
    true, sep, said = value.partition(":")
    if not (sep and true and said):
        raise argparse.ArgumentTypeError("expected TRUE:SAID, e.g. black:grizzly")
    return true, said


def summarize(rs: list[Result]) -> str:
    """Pooled errors, fixes and breaks, per class; promotions that were worse on unseen photos."""
    b, a, n = sum(r.before for r in rs), sum(r.after for r in rs), sum(r.n_test for r in rs)
    promoted = sum(s == "succeeded" for r in rs for s in r.statuses)
    runs = sum(len(r.statuses) for r in rs)
    classes = sorted({c for r in rs for c in (*r.class_before, *r.class_after)})
    per_class = ", ".join(
        f"{c} {sum(r.class_before[c] for r in rs)}→{sum(r.class_after[c] for r in rs)}" for c in classes
    )
    times = [t for r in rs for t in r.seconds]
    fits = [c for r in rs for c in r.calibration]
    calibration = (
        f"calibration (temperature fit on held-out reviewed + valid photos, {len(fits)} runs): "
        f"T {statistics.mean(c['value'] for c in fits):.2f}, expected calibration error "
        f"{statistics.mean(c['ece_before'] for c in fits):.3f} → {statistics.mean(c['ece_after'] for c in fits):.3f}, "
        f"log-loss {statistics.mean(c['nll_before'] for c in fits):.3f} → {statistics.mean(c['nll_after'] for c in fits):.3f}"
        if fits else "calibration: no run had enough held-out photos"
    )
    pairs = [c for r in rs for c in r.confidence]
    reliability = (
        f"confidence on unseen photos (expected calibration error, 10 bins): before {ece([(c, k) for c, k, _, _ in pairs]):.3f}, "
        f"after {ece([(c, k) for _, _, c, k in pairs]):.3f}"
    )
    return "\n".join([
        f"pooled unseen errors: {b}/{n} ({b / n:.2%}) → {a}/{n} ({a / n:.2%}), after/before {a / b:.2f}" if b else
        f"pooled unseen errors: {b}/{n} → {a}/{n}",
        f"paired on unseen photos: {sum(r.fixes for r in rs)} fixes, {sum(r.breaks for r in rs)} breaks",
        f"errors per true class, before→after: {per_class}",
        f"seeds worse after than before: {sum(r.after > r.before for r in rs)} of {len(rs)}; "
        f"better: {sum(r.after < r.before for r in rs)}",
        f"runs promoted: {promoted} of {runs}; promoted but worse on unseen photos: {sum(r.worse_promoted for r in rs)}",
        f"corrections {sum(r.corrected for r in rs)}, confirmations {sum(r.confirmed for r in rs)}; "
        f"run {statistics.mean(times):.1f} s on average (max {max(times):.1f} s)",
        calibration,
        reliability,
        *reliability_table(pairs),
    ])


def ece(answers: list[tuple[float, bool]], bins: int = 10) -> float:
    """Expected calibration error: |confidence − accuracy| averaged over equal-width confidence bins."""
    total = 0.0
    for b in range(bins):
        inside = [(c, k) for c, k in answers if b / bins < c <= (b + 1) / bins]
        if inside:
            total += len(inside) / len(answers) * abs(statistics.mean(c for c, _ in inside) - statistics.mean(k for _, k in inside))
    return total


def reliability_table(pairs: list[tuple[float, bool, float, bool]]) -> list[str]:
    """Per confidence band, on unseen photos: answers and how many were right, before → after."""
    lines = ["reliability on unseen photos (confidence band: right/answers, before → after):"]
    for lo, hi in ((0.0, 0.6), (0.6, 0.8), (0.8, 0.9), (0.9, 0.97), (0.97, 1.01)):
        before = [k for c, k, _, _ in pairs if lo <= c < hi]
        after = [k for _, _, c, k in pairs if lo <= c < hi]
        lines.append(f"  {lo:.0%}–{min(hi, 1):.0%}: {sum(before)}/{len(before)} → {sum(after)}/{len(after)}")
    return lines


if __name__ == "__main__":
    main()
