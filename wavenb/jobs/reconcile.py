"""Settling "may have been charged" from the account's history.

When the answer to a submit is lost (a timeout, a 5xx, a dropped connection), the journal row
is ``unknown``: the task may exist and may be charged, and resending could pay twice. The
account's history (``POST /api/v3/predictions``) can settle it. For each uncertain row:

- the history is read for the window around the moment the request went out (from
  ``WINDOW_BEFORE`` before to ``WINDOW_AFTER`` after: clocks differ, queues delay creation);
- a prediction **matches** when it is of the same model, was created in that window, carries
  the same inputs (prompt, image URL as sent, aspect ratio) and is not already another journal
  row's task;
- exactly one match: the row becomes that task (accepted; then waited for and downloaded, never
  submitted again);
- no match, once ``SETTLE_AFTER`` has passed since sending (the history may lag behind a fresh
  submit): the row is settled as **not charged**, with the evidence (the window searched and
  how many predictions were looked at);
- several matches (identical submits close together): **ambiguous**: shown with the candidate
  ids, never guessed; the row stays ``unknown``;
- a prediction of the window that cannot be compared (the history item carries no inputs, or no
  creation time) may be the row's task: with no match, the row is **ambiguous** with those ids,
  never "not charged" (the exact shape of the history's items is not documented, so missing
  inputs are no evidence of absence).

When the server has no history endpoint (or refuses), nothing changes: the row stays
``unknown`` and the reason is reported.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from wavenb.core import protocol
from wavenb.core.errors import WavenbError
from wavenb.core.models import Prediction
from wavenb.journal.rows import JournalRow

if TYPE_CHECKING:
    from wavenb.jobs.session import Session

__all__ = ["Settlement", "matches", "settle", "undecidable"]

logger = logging.getLogger("wavenb")

WINDOW_BEFORE: Final = timedelta(minutes=2)
WINDOW_AFTER: Final = timedelta(minutes=10)
SETTLE_AFTER: Final = timedelta(minutes=2)
"""A row is declared "not charged" only this long after its request went out."""

Outcome = Literal["accepted", "not charged", "ambiguous", "pending", "unavailable"]


@dataclass(frozen=True, slots=True)
class Settlement:
    """What the account's history said about one uncertain submission."""

    row: JournalRow
    outcome: Outcome
    """``accepted`` (found: it is that task), ``not charged`` (no such task), ``ambiguous``
    (several candidates: not guessed), ``pending`` (too early to say), ``unavailable`` (no
    history to read)."""
    prediction: Prediction | None = None
    """The matching task, when ``accepted``."""
    candidates: tuple[str, ...] = ()
    """The matching task ids, when ``ambiguous``."""
    evidence: str = ""
    """In words: what was searched and found."""


def matches(row: JournalRow, prediction: Prediction, window: tuple[datetime, datetime]) -> bool:
    """Whether a history item is the task an uncertain row may have created."""
    if prediction.model and prediction.model != row.model:
        return False
    created = prediction.created_at
    if created is None or not window[0] <= created <= window[1]:
        return False
    inputs: Mapping[str, Any] = protocol.inputs_of(prediction)
    if not inputs:
        return False
    if str(inputs.get("prompt", "")).strip() != row.prompt:
        return False
    if row.image_url is not None and inputs.get("image") != row.image_url:
        return False
    ratio = inputs.get("aspect_ratio") or None
    return ratio == row.aspect_ratio


def undecidable(row: JournalRow, prediction: Prediction, window: tuple[datetime, datetime]) -> bool:
    """Whether a history item might be the row's task but cannot be compared with it.

    Same model (or none given), and no inputs to compare or no creation time to place it in
    the window (a task created inside the window with no inputs, or one with no time at all).
    """
    if prediction.model and prediction.model != row.model:
        return False
    created = prediction.created_at
    if created is None:
        return True
    return window[0] <= created <= window[1] and not protocol.inputs_of(prediction)


async def settle(session: Session, rows: Sequence[JournalRow]) -> list[Settlement]:
    """Settle the uncertain rows of this session's server from the account's history.

    Uncertain: ``unknown``, or ``submitting`` and sent by a process that has died (pass only
    what ``Journal.unresolved`` lists). Writes the outcome to the journal (``accepted`` / ``not
    charged``) and returns one ``Settlement`` per row asked about.
    """
    journal = session.journal_or_none()
    server = session.base_url.rstrip("/")
    # ``unknown`` rows, and ``submitting`` ones that were sent by a process that died before
    # the answer (``Journal.unresolved`` lists both; a submit in flight is never passed here).
    mine = [r for r in rows if r.status in ("unknown", "submitting") and r.sent_at is not None
            and r.base_url == server]  # fmt: skip
    if journal is None or not mine:
        return []
    now = session.runtime.now()
    sent = [r.sent_at or r.submitted_at for r in mine]
    window = (min(sent) - WINDOW_BEFORE, max(sent) + WINDOW_AFTER)
    try:
        history = [p async for p in session.predictions.list(
            created_after=window[0], created_before=min(window[1], now + WINDOW_BEFORE),
            model=mine[0].model,
        )]  # fmt: skip
    except WavenbError as error:
        reason = f"the account's history could not be read ({error})"
        logger.info("wavenb: %s", reason)
        return [Settlement(row, "unavailable", evidence=reason) for row in mine]
    taken = {r.prediction_id for r in journal.rows(since=window[0] - WINDOW_AFTER)
             if r.prediction_id is not None and r.base_url == session.base_url}  # fmt: skip
    results = []
    for row in mine:
        results.append(await _settle_one(session, row, history, taken, now))
    return results


async def _settle_one(
    session: Session,
    row: JournalRow,
    history: Sequence[Prediction],
    taken: set[str],
    now: datetime,
) -> Settlement:
    journal = session.journal
    assert journal is not None  # noqa: S101  (checked by settle)
    sent = row.sent_at or row.submitted_at
    window = (sent - WINDOW_BEFORE, sent + WINDOW_AFTER)
    found = [p for p in history if p.id not in taken and matches(row, p, window)]
    span = f"{_when(window[0])}-{_when(window[1])}"
    looked = f"{len(history)} predictions of {row.model} created {span}"
    if len(found) == 1:
        prediction = found[0]
        await session.write(journal.accepted, row.request_key, prediction)
        taken.add(prediction.id)
        logger.info("wavenb: uncertain submission settled: it is task %s", prediction.id)
        return Settlement(row, "accepted", prediction, evidence=f"matched in {looked}")
    if len(found) > 1:
        ids = tuple(p.id for p in found)
        evidence = f"{len(ids)} tasks with the same inputs in {looked}: {', '.join(ids)}"
        return await _ambiguous(session, row, ids, evidence)
    blind = tuple(p.id for p in history if p.id not in taken and undecidable(row, p, window))
    if blind:
        evidence = (f"{len(blind)} task(s) in {looked} carry no inputs (or no time) to compare: "
                    f"{', '.join(blind)}; any of them may be this one")  # fmt: skip
        return await _ambiguous(session, row, blind, evidence)
    if now - sent < SETTLE_AFTER:
        return Settlement(row, "pending", evidence=f"nothing yet in {looked}; too early to say")
    evidence = f"no task with these inputs in {looked} (checked {_when(now)})"
    await session.write(journal.not_charged, row.request_key, evidence)
    logger.info("wavenb: uncertain submission %s settled: not charged", row.request_key[:12])
    return Settlement(row, "not charged", evidence=evidence)


async def _ambiguous(
    session: Session, row: JournalRow, ids: tuple[str, ...], evidence: str
) -> Settlement:
    """Never guessed: the row stays ``unknown``, and its error says what was found."""
    journal = session.journal
    assert journal is not None  # noqa: S101  (checked by settle)
    await session.write(journal.unknown, row.request_key, f"ambiguous: {evidence}")
    return Settlement(row, "ambiguous", candidates=ids, evidence=evidence)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
