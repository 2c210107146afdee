"""One retrain, the only one: view → features → cross-fitted candidates → gate → calibrate → publish.

Every trigger runs this (the worker, ``/retrain``, ``bearbot train``, ``bearbot train --data``
after importing the folder, and the benchmarks), so what the benchmarks measure is what runs.

How a candidate is judged (:mod:`trainer.gate`): on the fixed golden split, the fully trained
candidate; on the photos users reviewed, candidates refit K times, each without one fold of them
(and without anything that looks like them), so every reviewed photo is answered by a head that
never saw it — the same head refit, on cached features, costs a fraction of a second.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bearbot.backbone import load_backbone
from bearbot.imaging import hash_distance
from bearbot.inference import TorchClassifier
from bearbot.labels import NOT_BEAR
from bearbot.model_def import BearNet, build_zero_shot
from bearbot.prediction import Prediction, predictions_from
from bearbot.settings import Settings
from storage import model_versions, snapshot
from storage.dataset import SAME_SIDE_DISTANCE
from storage.snapshot import Reviewed, TrainingView
from storage.store import Storage
from trainer import calibrate, gate
from trainer.data import is_correction
from trainer.evaluate import Scored, metrics_of, plot_confusion, plot_top_losses
from trainer.features import FeatureCache, FeatureTable, feature_table, readout
from trainer.train import (
    TrainConfig,
    default_config,
    examples_of,
    export_model,
    fit_examples,
    with_head,
)

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What a retrain decided; ``version_id`` is set when a model was promoted."""

    promoted: bool
    decision: gate.Decision
    metrics: dict[str, Any]
    counts: dict[str, int]
    version_id: int | None = None
    plots: list[str] = field(default_factory=list)


def load_serving(storage: Storage, settings: Settings) -> TorchClassifier:
    """The model serving now (v0 recorded on a fresh install), loaded as the bot loads it."""
    from bearbot.inference import load_for_settings

    with storage.session() as session:
        active = model_versions.serving_version(session, settings)
        return load_for_settings(active, settings, optimize=False)  # the gate reads its head; no tracing needed


def answers(
    logits: torch.Tensor, score: torch.Tensor, labels: Sequence[str], *, threshold: float, version_id: int | None
) -> list[Prediction]:
    """Predictions from label logits and bear scores, exactly as :class:`TorchClassifier` makes them."""
    return predictions_from(logits.softmax(dim=-1), score, labels, threshold=threshold, version_id=version_id)


def folds_of(photos: Sequence[Reviewed], k: int) -> list[int]:
    """A fold per photo; near-duplicates (crops, re-encodes) share a fold, so none judges its twin."""
    parent = list(range(len(photos)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    hashes = [int(p.phash, 16) for p in photos]
    for i in range(len(photos)):
        for j in range(i):
            if hash_distance(hashes[i], hashes[j]) <= SAME_SIDE_DISTANCE:
                parent[root(i)] = root(j)
    groups: dict[int, str] = {}
    for i, photo in enumerate(photos):
        r = root(i)
        groups[r] = min(groups.get(r, photo.sha256), photo.sha256)
    return [int(hashlib.sha256(groups[root(i)].encode()).hexdigest()[:8], 16) % k for i in range(len(photos))]


def _near(phash: str, others: Sequence[int]) -> bool:
    value = int(phash, 16)
    return any(hash_distance(value, o) <= SAME_SIDE_DISTANCE for o in others)


class _Judge:
    """Serving's and candidates' answers on cached features."""

    def __init__(
        self, zero_shot: BearNet, serving: TorchClassifier, table: FeatureTable, cache: FeatureCache, settings: Settings
    ) -> None:
        from bearbot.backbone import state_dict_sha256

        self.zero_shot, self.serving, self.table, self.settings = zero_shot, serving, table, settings
        same_body = (
            serving.model.arch == zero_shot.arch and serving.model.image_size == zero_shot.image_size
            and state_dict_sha256(serving.model.body) == cache.body_hash
        )
        self._serving_view = readout(serving.model) if same_body else None

    def candidate(self, head: nn.Linear, shas: Sequence[str]) -> tuple[list[Prediction], torch.Tensor]:
        logits, score = readout(self.zero_shot, head)(self.table.plain[self.table.rows(shas)])
        preds = answers(logits, score, self.zero_shot.labels, threshold=self.settings.bear_threshold, version_id=None)
        return preds, logits

    def serving_answers(self, photos: Sequence[Any]) -> list[Prediction]:
        if self._serving_view is None:  # another body (the arch setting changed): run it on the images
            from trainer.evaluate import score_items

            scored, _ = score_items(self.serving, photos)
            return [s.prediction for s in scored]
        logits, score = self._serving_view(self.table.plain[self.table.rows([p.sha256 for p in photos])])
        return answers(
            logits, score, self.serving.labels, threshold=self.settings.bear_threshold,
            version_id=self.serving.version_id,
        )


def train_and_gate(
    storage: Storage, settings: Settings, *, run_id: int, work_dir: Path, progress: bool = False
) -> Outcome:
    """One retrain on the database's data; publishes and activates the candidate if the gate passes."""
    started = time.perf_counter()
    cfg = default_config(settings)
    with storage.session() as session:
        view = snapshot.take_view(session, images=storage.images)
    if not view.golden or not view.train:
        raise RuntimeError("the dataset has no golden or no training images; build or import one first")
    serving = load_serving(storage, settings)
    zero_shot = build_zero_shot(load_backbone(settings.arch), view.labels, image_size=cfg.image_size).to(cfg.device)
    photos = [*view.train, *view.valid, *view.golden, *view.reviewed, *view.confirmed, *view.presumed]
    cache = FeatureCache(settings.features_dir, zero_shot)
    table = feature_table(
        zero_shot, photos, cache=cache, device=cfg.device,
        batch_size=cfg.batch_size, max_pixels=settings.max_image_pixels, progress=progress,
    )
    feature_seconds = time.perf_counter() - started
    judge = _Judge(zero_shot, serving, table, cache, settings)
    readable = lambda items: [i for i in items if i.sha256 in table.row]
    judged = lambda items: [r for r in readable(items) if r.label in view.labels or r.label == NOT_BEAR]
    train = readable([*view.train, *view.confirmed])
    golden = readable(view.golden)
    reviewed = judged(view.reviewed)
    if not train:
        missing = table.unreadable[0] if table.unreadable else "?"
        raise ValueError(f"all {len(view.train)} training images are unreadable (missing or corrupt files), e.g. {missing}")
    anchor = zero_shot.head
    head = fit_examples(table, examples_of(train, cfg), view.labels, anchor, cfg)

    golden_cand, _ = judge.candidate(head, [g.sha256 for g in golden])
    pairs = [
        gate.Pair(g.path, g.label, "golden", s, c)
        for g, s, c in zip(golden, judge.serving_answers(golden), golden_cand, strict=True)
    ]
    presumed = judged(view.presumed)
    if presumed:  # answers nobody corrected: the candidate never trained on them, so the full head judges them
        said = judge.serving_answers(presumed)
        pairs += [
            gate.Pair(r.path, r.label, "presumed", s, c)
            for r, s, c in zip(presumed, said, judge.candidate(head, [r.sha256 for r in presumed])[0], strict=True)
        ]
    held_out_logits, held_out_labels = _cross_fit(judge, reviewed, train, anchor, view.labels, cfg, settings, pairs)
    decision = gate.decide(pairs, alpha=settings.gate_alpha)

    valid = [v for v in readable(view.valid) if v.label in view.labels]
    if valid:
        logits = judge.candidate(head, [v.sha256 for v in valid])[1]
        held_out_logits.append(logits)
        held_out_labels += [view.labels.index(v.label) for v in valid]
    temperature = calibrate.fit_temperature(
        torch.cat(held_out_logits) if held_out_logits else torch.empty(0, len(view.labels)),
        torch.tensor(held_out_labels, dtype=torch.long),
    )
    head = calibrate.scaled(head, temperature.value)

    plots = _plots(work_dir, decision, golden, golden_cand, view.labels)
    metrics = _metrics(view, decision, pairs, temperature, cfg, table, started, feature_seconds)
    counts = {
        "train": len(train), "valid": len(view.valid), "golden": len(golden),
        "corrections": sum(map(is_correction, train)),
    }
    outcome = Outcome(promoted=False, decision=decision, metrics=metrics, counts=counts, plots=plots)
    if decision.promote:
        outcome.version_id = _publish(storage, settings, zero_shot, head, view, train, cfg, work_dir, metrics, serving)
        outcome.promoted = True
    metrics["promoted"] = outcome.promoted
    metrics["plots"] = plots
    return outcome


def _cross_fit(
    judge: _Judge,
    reviewed: Sequence[Reviewed],
    train: Sequence[Any],
    anchor: nn.Linear,
    labels: Sequence[str],
    cfg: TrainConfig,
    settings: Settings,
    pairs: list[gate.Pair],
) -> tuple[list[torch.Tensor], list[int]]:
    """Answer each reviewed photo with a head fit without its fold; add the pairs; return held-out logits."""
    if not reviewed:
        return [], []
    k = max(2, min(settings.gate_folds, len(reviewed)))
    folds = folds_of(reviewed, k)
    serving = judge.serving_answers(reviewed)
    logits_out: list[torch.Tensor] = []
    labels_out: list[int] = []
    for fold in range(k):
        members = [i for i, f in enumerate(folds) if f == fold]
        if not members:
            continue
        held = [reviewed[i] for i in members]
        drop = {r.item_id for r in held if r.item_id is not None} | {r.sha256 for r in held}
        twins = [int(r.phash, 16) for r in held]
        kept = [t for t in train if t.item_id not in drop and t.sha256 not in drop and not _near(t.phash, twins)]
        head = fit_examples(judge.table, examples_of(kept, cfg), labels, anchor, cfg)
        preds, logits = judge.candidate(head, [r.sha256 for r in held])
        for i, r, pred, row in zip(members, held, preds, logits, strict=True):
            pairs.append(gate.Pair(r.path, r.label, "reviewed", serving[i], pred))
            if r.label != NOT_BEAR:
                logits_out.append(row.unsqueeze(0))
                labels_out.append(list(labels).index(r.label))
    return logits_out, labels_out


def _plots(
    work_dir: Path, decision: gate.Decision, golden: Sequence[Any], golden_cand: Sequence[Prediction], labels: Sequence[str]
) -> list[str]:
    """The book's two pictures for the candidate on golden, and the photos it breaks and fixes."""
    out = work_dir / "plots"
    out.mkdir(parents=True, exist_ok=True)
    scored = [Scored(g.path, g.label, p) for g, p in zip(golden, golden_cand, strict=True)]
    paths = [plot_confusion(metrics_of(scored, labels), out / "confusion_matrix.png"),
             plot_top_losses(scored, out / "top_losses.png")]
    changes = gate.plot_changes(decision, out / "breaks_and_fixes.png")
    return [str(p) for p in [changes, *paths] if p is not None]


def _metrics(
    view: TrainingView,
    decision: gate.Decision,
    pairs: Sequence[gate.Pair],
    temperature: calibrate.Temperature,
    cfg: TrainConfig,
    table: FeatureTable,
    started: float,
    feature_seconds: float,
) -> dict[str, Any]:
    def errors(group: str, who: str) -> int:
        return sum(not getattr(p, f"{who}_right") for p in pairs if p.group == group)

    n_golden = sum(p.group == "golden" for p in pairs)
    return {
        "gate": decision.summary(),
        "candidate_error": errors("golden", "candidate") / n_golden if n_golden else None,
        "current_error": errors("golden", "serving") / n_golden if n_golden else None,
        "golden_errors": {"serving": errors("golden", "serving"), "candidate": errors("golden", "candidate")},
        "reviewed_errors": {"serving": errors("reviewed", "serving"), "candidate": errors("reviewed", "candidate")},
        "reviewed": {"photos": len(view.reviewed), "confirmed": sum(r.confirmed for r in view.reviewed)},
        "merge_outcomes": view.outcomes,
        "temperature": asdict(temperature),
        "unreadable": [str(p) for p in table.unreadable],
        "config": asdict(cfg),
        "feature_seconds": round(feature_seconds, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _publish(
    storage: Storage,
    settings: Settings,
    zero_shot: BearNet,
    head: nn.Linear,
    view: TrainingView,
    train: Sequence[Any],
    cfg: TrainConfig,
    work_dir: Path,
    metrics: dict[str, Any],
    serving: TorchClassifier,
) -> int:
    """Export, publish and activate the candidate; the corrections it learned join the dataset."""
    from bearbot.artifact import publish

    model = with_head(zero_shot, head)
    path, _ = export_model(model, train_items=view.train, valid_items=view.valid, cfg=cfg, out_dir=work_dir)
    final, sha = publish(path, settings.models_dir)
    _publish_graph(model, sha, settings.models_dir)  # before activation: the bot's swap finds it
    with storage.session() as session:
        version = model_versions.create_version(
            session, artifact_path=final.name, sha256=sha, arch=settings.arch, labels=list(view.labels),
            metrics={
                "golden_error": metrics["candidate_error"], "replaced": serving.version_id,
                "gate": {k: v for k, v in metrics["gate"].items() if k not in ("fixed", "broken")},
                "temperature": metrics["temperature"]["value"],
            },
            activate=True, expected_active_id=serving.version_id,  # refused if another run swapped meanwhile
        )
        snapshot.learn_corrections(session, correction_ids=view.learnable, version_id=version.id)
        return version.id


def _publish_graph(model: BearNet, sha256: str, models_dir: Path) -> None:
    """Export the published model's serving graph into the bot's cache, checked against the model, so
    the bot swaps to it without importing torch (:mod:`bearbot.serving`). On failure the bot makes
    the graph itself, in a child process, as for any version without one."""
    from bearbot.exported import load_or_export
    from bearbot.serving_graph import compiled_dir

    started = time.perf_counter()
    try:
        _forward, source = load_or_export(model.cpu().eval(), artifact_sha256=sha256, cache_dir=compiled_dir(models_dir))
    except Exception:  # noqa: BLE001 - the run's result stands; serving only loses the shortcut
        log.warning("could not export the serving graph of %s; the bot will export it", sha256[:12], exc_info=True)
        return
    log.info("serving graph of %s: %s in %.1f s", sha256[:12], source, time.perf_counter() - started)
