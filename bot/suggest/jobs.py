"""The scheduled fine-tuning sweep (`FEEDBACK_TRAIN_CRON`, off by default)."""

from __future__ import annotations

import logging
from typing import Any

from bot.deps import Deps
from bot.suggest import retrain
from storage import model_versions

log = logging.getLogger(__name__)
MIN_NEW_LABELS = 50


def train(deps: Deps) -> dict[str, Any]:
    """Fine-tunes when switched on and at least MIN_NEW_LABELS labels arrived since the active version; the
    running bots swap a winning encoder in by themselves (they watch the model version table)."""
    if not deps.settings.feedback_train_cron:
        return {"skipped": "FEEDBACK_TRAIN_CRON is not set"}
    with deps.transaction() as session:
        labelled = len(model_versions.labelled_feedback(session=session))
        active = model_versions.active_version(session=session)
        since = labelled - (active.labels if active else 0)
    if since < MIN_NEW_LABELS:
        return {"skipped": f"{since} new labels (fine-tuning waits for {MIN_NEW_LABELS})"}
    result, lines = retrain.run(deps.sessions, minutes=15.0, progress=False)
    log.info("scheduled fine-tuning: %s", "; ".join(lines))
    return {"kept": result.better, "base_f1": result.base_f1, "tuned_f1": result.tuned_f1}
