"""The saved report of a comparison: one HTML page that opens with no kernel.

Pure functions from a saved manifest (``wavenb.ab.manifest``) to HTML text, plus
``write_report``. The page is self-contained: CSS and a small script inline, everything else
by relative path (``videos/…``, ``images/…``, ``previews/…``, ``contact-sheet.png``), so the
saved folder opens in any browser and can be zipped or moved whole. Everything user-supplied
goes through ``html.escape``.

It shows, top to bottom: the verdict (who leads, how sure), the ranking (Bradley-Terry score,
its 95 % interval, P(best)), the per-prompt numbers, the contact sheet, the grid of videos (the
animated previews as their posters; each cell's phase, times, metric badges, rating and note)
and every run as a table with its metrics.

``PLAYBACK_JS`` plays, pauses, rewinds and loops every ``<video>`` under a root together.
"""

from __future__ import annotations

import difflib
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from wavenb.ui.display import SANDBOX_BADGE
from wavenb.ui.tasks import STATUS_COLORS
from wavenb.ui.text import money

__all__ = [
    "PLAYBACK_CSS",
    "PLAYBACK_JS",
    "column_label",
    "highlight_changes",
    "ratio_label",
    "render_report",
    "status_chip",
    "write_report",
]

_DONE: Final = frozenset({"downloaded", "completed"})
"""Words of a cell with its video: ``downloaded`` (version 2), ``completed`` (version 1)."""


PLAYBACK_JS: Final = r"""
function wavenbPlayback(bar, findRoot, state) {
  // bar: where the buttons go. findRoot(): the element whose <video>s are driven, or null
  // while it is not in the page yet. state: get(name), set(name, value), on(name, callback)
  // over "playing" (bool), "loop" (bool) and "restarts" (a counter: each bump rewinds all).
  const doc = bar.ownerDocument;
  const button = (text, title) => {
    const b = doc.createElement("button");
    b.type = "button";
    b.className = "wavenb-play-button";
    b.textContent = text;
    b.title = title;
    bar.appendChild(b);
    return b;
  };
  const play = button("\u25B6 Play all", "Play every video from the start, together");
  const pause = button("\u275A\u275A Pause all", "Pause every video");
  const label = doc.createElement("label");
  label.className = "wavenb-play-loop";
  const loop = doc.createElement("input");
  loop.type = "checkbox";
  label.append(loop, " loop");
  bar.appendChild(label);

  const videos = () => {
    const root = findRoot();
    return root ? [...root.querySelectorAll("video")] : [];
  };
  const seen = new WeakSet();
  const prepare = (video) => {
    seen.add(video);
    video.muted = true;  // browsers only let muted videos start without a click on them
    video.playsInline = true;
    video.loop = Boolean(state.get("loop"));
  };
  const run = (video) => {
    const started = video.play();
    if (started) started.catch(() => {});  // not loaded yet: it joins when it can
  };
  const apply = () => {
    loop.checked = Boolean(state.get("loop"));
    for (const video of videos()) {
      prepare(video);
      if (state.get("playing")) run(video); else video.pause();
    }
  };
  const restart = () => {
    for (const video of videos()) video.currentTime = 0;
    apply();
  };
  // A video that appears later (a cell finishing) joins in step with one already playing.
  const join = (video) => {
    const lead = videos().find((other) => other !== video && seen.has(other) && !other.paused);
    prepare(video);
    if (lead) video.currentTime = lead.currentTime;
    if (state.get("playing")) run(video); else video.pause();
  };
  play.onclick = () => {
    state.set("playing", true);
    state.set("restarts", (state.get("restarts") || 0) + 1);
  };
  pause.onclick = () => state.set("playing", false);
  loop.onchange = () => state.set("loop", loop.checked);
  state.on("playing", apply);
  state.on("loop", apply);
  state.on("restarts", restart);

  let observer = null;
  let timer = null;
  let tries = 0;
  const attach = () => {
    const root = findRoot();
    if (!root) {
      // A widget's element enters the page after it is rendered: look again shortly.
      if (tries++ < 600) timer = setTimeout(attach, 50);
      return;
    }
    observer = new MutationObserver(() => {
      for (const video of videos()) if (!seen.has(video)) join(video);
    });
    observer.observe(root, { childList: true, subtree: true });
    apply();
  };
  attach();
  return () => {
    clearTimeout(timer);
    if (observer) observer.disconnect();
  };
}
"""

PLAYBACK_CSS: Final = """
.wavenb-play-button{margin:0 6px 0 0;padding:3px 10px;border:1px solid #9ca3af;
  border-radius:4px;background:#f9fafb;cursor:pointer;font:inherit;font-size:13px}
.wavenb-play-button:hover{background:#e5e7eb}
.wavenb-play-loop{font-size:13px;margin-left:4px}
"""

_REPORT_CSS: Final = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#111827}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.meta{color:#4b5563;margin:0 0 12px}
table{border-collapse:collapse}
.grid th,.grid td{border:1px solid #e5e7eb;padding:6px;vertical-align:top;text-align:left}
.grid td{width:320px}
.grid video{width:100%;max-height:360px;background:#111;display:block}
.prompt{max-width:240px;font-weight:normal} .prompt b{display:block}
mark{background:#fde68a;padding:0 1px}
.wavenb-chip{display:inline-block;border-radius:9px;padding:0 8px;font-size:11px;
  font-weight:600;color:white;line-height:18px}
.small{font-size:12px;color:#4b5563} .error{color:#b91c1c;font-size:12px}
.rows{font-size:12px} .rows th,.rows td{border:1px solid #e5e7eb;padding:3px 6px}
.rows th{background:#f3f4f6;position:sticky;top:0}
.source{max-width:160px;max-height:120px;display:block;margin-bottom:4px}
.wavenb-playback{position:sticky;top:0;background:white;padding:6px 0;z-index:1}
.wide{overflow-x:auto;max-width:100%} .verdict{max-width:760px;font-size:15px}
.badges{font-size:12px;color:#374151}
.sheet{max-width:100%;border:1px solid #e5e7eb} .notes{color:#92400e;font-size:12px}
"""

_TABLE_COLUMNS: Final = (
    "cell_id", "status", "prediction_id", "inference_ms", "wall_s", "cost", "reused",
    "rating", "note", "camera_move", "motion_match", "first_frame_ssim", "flicker", "sharpness",
    "error",
)  # fmt: skip


def ratio_label(ratio: str | None) -> str:
    """``"16:9"``, or ``"match source"`` for ``None``."""
    return ratio or "match source"


def column_label(ratio: str | None, repeat: int, repeats: int) -> str:
    """A grid column's heading: ``"16:9 · run 2"`` (no run number with a single repeat)."""
    label = ratio_label(ratio)
    return label if repeats == 1 else f"{label} · run {repeat + 1}"


def highlight_changes(reference: str, text: str) -> str:
    """``text`` as HTML with the words that differ from ``reference`` in ``<mark>``.

    Words are compared case-insensitively, so only real changes light up.

    >>> highlight_changes("camera zooms in", "camera pans left")
    'camera <mark>pans left</mark>'
    """
    before, after = reference.split(), text.split()
    matcher = difflib.SequenceMatcher(
        a=[w.casefold() for w in before], b=[w.casefold() for w in after], autojunk=False
    )
    parts = []
    for op, _a0, _a1, b0, b1 in matcher.get_opcodes():
        words = html.escape(" ".join(after[b0:b1]))
        if not words:
            continue
        parts.append(words if op == "equal" else f"<mark>{words}</mark>")
    return " ".join(parts)


def prompt_heading(prompt_id: str, text: str, reference: str | None) -> str:
    """A grid row's heading: the prompt's name and text, changes from the first marked."""
    body = html.escape(text) if reference is None else highlight_changes(reference, text)
    tag = " <small>(reference)</small>" if reference is None else ""
    return f"<b>{html.escape(prompt_id)}{tag}</b>{body}"


def status_chip(status: str) -> str:
    """A coloured chip naming a cell's status."""
    color = STATUS_COLORS.get(status, "#6b7280")
    return f'<span class="wavenb-chip" style="background:{color}">{html.escape(status)}</span>'


def render_report(manifest: Mapping[str, Any]) -> str:
    """The whole report page for a saved comparison's manifest (see ``Comparison.save``)."""
    prompts = manifest["prompts"]
    rows = manifest["cells"]
    sandbox = manifest.get("backend") == "sandbox"
    title = " vs ".join(p["id"] for p in prompts)
    summary = manifest.get("summary") or {}
    body = [
        f"<h1>Prompt comparison: {html.escape(title)}</h1>",
        f'<p class="meta">{_meta(manifest)}{" " + SANDBOX_BADGE if sandbox else ""}</p>',
        _notes(manifest.get("notes") or []),
        _verdict(summary),
        _ranking_table(manifest.get("ranking")),
        _summary_table(summary.get("prompts", []) if isinstance(summary, Mapping) else summary),
        _sheet(manifest.get("contact_sheet")),
        '<div class="wavenb-playback" id="wavenb-playback"></div>',
        *(_image_grid(manifest, image, rows) for image in manifest["images"]),
        "<h2>All runs</h2>",
        _rows_table(rows),
    ]
    state = {"playing": True, "loop": True, "restarts": 0}
    script = (
        f"{PLAYBACK_JS}\n(() => {{\n  const values = {json.dumps(state)};\n"
        "  const listeners = {};\n"
        "  const state = {\n    get: (name) => values[name],\n"
        "    set: (name, value) => { values[name] = value; "
        "(listeners[name] || []).forEach((f) => f()); },\n"
        "    on: (name, f) => { (listeners[name] = listeners[name] || []).push(f); },\n  };\n"
        '  wavenbPlayback(document.getElementById("wavenb-playback"), '
        "() => document.body, state);\n})();"
    )
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>wavenb comparison — {html.escape(title)}</title>\n"
        f"<style>{_REPORT_CSS}{PLAYBACK_CSS}</style>\n</head>\n"
        f'<body class="wavenb-compare">\n{chr(10).join(body)}\n'
        f"<script>{script}</script>\n</body>\n</html>\n"
    )


def write_report(folder: Path, manifest: Mapping[str, Any]) -> Path:
    """Write ``report.html`` into ``folder`` (whole or not at all) and return its path."""
    target = folder / "report.html"
    partial = target.with_name(target.name + ".part")
    partial.write_text(render_report(manifest), "utf-8")
    partial.replace(target)
    return target


def _meta(manifest: Mapping[str, Any]) -> str:
    rows = manifest["cells"]
    done = sum(row["status"] in _DONE for row in rows)
    spent = sum(float(row.get("cost") or 0) for row in rows)
    ratios = ", ".join(ratio_label(r) for r in manifest["aspect_ratios"])
    return html.escape(
        f"{manifest['model']} · {len(rows)} videos ({done} downloaded) · ratios {ratios} · "
        f"{manifest['repeats']} run(s) each · cost {money(spent)} · saved "
        f"{str(manifest.get('saved_at', ''))[:19].replace('T', ' ')} UTC"
    )


def _summary_table(summary: Sequence[Mapping[str, Any]]) -> str:
    if not summary:
        return ""
    head = "<tr><th>prompt</th><th>done</th><th>failed</th><th>rating</th><th>wins</th>"
    head += "<th>camera as asked</th><th>inference</th><th>wall</th></tr>"
    lines = [
        f"<tr><td><b>{html.escape(s['prompt_id'])}</b></td>"
        f"<td>{s['completed']}/{s['cells']}</td><td>{s['failed']}</td>"
        f"<td>{_number(s['mean_rating'], '{:+.2f}')} ({s['rated']} rated)</td>"
        f"<td>{_wins(s['win_rate'], s['comparisons'])}</td>"
        f"<td>{_number(s.get('motion_match_rate'), '{:.0%}')}</td>"
        f"<td>{_number(s['mean_inference_s'], '{:.1f} s')}</td>"
        f"<td>{_number(s['mean_wall_s'], '{:.1f} s')}</td></tr>"
        for s in summary
    ]
    return f'<h2>Per prompt</h2><table class="grid rows">{head}{"".join(lines)}</table>'


def _verdict(summary: object) -> str:
    text = summary.get("text") if isinstance(summary, Mapping) else None
    if not text:
        return ""
    return f'<h2>Verdict</h2><p class="verdict">{html.escape(str(text))}</p>'


def _ranking_table(ranking: Mapping[str, Any] | None) -> str:
    if not ranking or not ranking.get("prompts"):
        return ""
    head = (
        "<tr><th>rank</th><th>prompt</th><th>score</th><th>95 % interval</th>"
        "<th>P(best)</th><th>wins</th><th>losses</th></tr>"
    )
    lines = [
        f"<tr><td>{p['rank']}</td><td><b>{html.escape(p['prompt_id'])}</b></td>"
        f"<td>{p['score']:+.2f}</td><td>{p['ci_low']:+.2f} to {p['ci_high']:+.2f}</td>"
        f"<td>{p['p_best']:.0%}</td><td>{p['wins']:g}</td><td>{p['losses']:g}</td></tr>"
        for p in ranking["prompts"]
    ]
    how = html.escape(
        f"Bradley-Terry scores from {ranking.get('votes', 0):g} votes (ties count half; each "
        f"thumbs-up beats each thumbs-down of another prompt on the same image and ratio); "
        f"{ranking.get('interval', '')}."
    )
    return (
        f'<h2>Ranking</h2><table class="grid rows">{head}{"".join(lines)}</table>'
        f'<p class="small">{how}</p>'
    )


def _sheet(relative: str | None) -> str:
    if not relative:
        return ""
    return (
        "<h2>Contact sheet</h2>"
        f'<img class="sheet" src="{_href(relative)}" alt="a few frames of every video, by prompt">'
    )


def _notes(notes: Sequence[str]) -> str:
    if not notes:
        return ""
    return "".join(f'<p class="notes">⚠ {html.escape(str(note))}</p>' for note in notes)


def _image_grid(
    manifest: Mapping[str, Any], image: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]
) -> str:
    prompts = manifest["prompts"]
    ratios, repeats = manifest["aspect_ratios"], int(manifest["repeats"])
    by_place = {
        (row["prompt_id"], row["aspect_ratio"], row["repeat"]): row
        for row in rows
        if row["image"] == image["id"]
    }
    source = ""
    if image.get("file"):
        source = f'<img class="source" src="{_href(image["file"])}" alt="source image">'
    elif image.get("url"):
        source = f'<img class="source" src="{html.escape(image["url"], quote=True)}" alt="">'
    corner = f"<th>{source}<small>{html.escape(image['id'])}</small></th>"
    columns = [(ratio, repeat) for ratio in ratios for repeat in range(repeats)]
    head = corner + "".join(
        f"<th>{html.escape(column_label(ratio, repeat, repeats))}</th>" for ratio, repeat in columns
    )
    reference = prompts[0]["text"]
    lines = []
    for index, prompt in enumerate(prompts):
        heading = prompt_heading(prompt["id"], prompt["text"], None if index == 0 else reference)
        cells = "".join(
            _cell(by_place.get((prompt["id"], ratio, repeat))) for ratio, repeat in columns
        )
        lines.append(f'<tr><th class="prompt">{heading}</th>{cells}</tr>')
    return (
        f"<h2>{html.escape(image['id'])}</h2>"
        f'<table class="grid"><tr>{head}</tr>{"".join(lines)}</table>'
    )


def _cell(row: Mapping[str, Any] | None) -> str:
    if row is None:
        return "<td></td>"
    parts = []
    if row.get("path"):
        poster = f' poster="{_href(row["preview"])}"' if row.get("preview") else ""
        parts.append(
            f'<video src="{_href(row["path"])}"{poster} controls muted loop playsinline '
            f'preload="metadata" title="{html.escape(row["cell_id"], quote=True)}"></video>'
        )
    parts.append(f'<div class="small">{status_chip(row["status"])} {_facts(row)}</div>')
    if row.get("badge"):
        parts.append(f'<div class="badges">{html.escape(row["badge"])}</div>')
    if row.get("error"):
        parts.append(f'<div class="error">{html.escape(row["error"])}</div>')
    # Words, not emoji: a browser without an emoji font draws those as empty boxes.
    rating = {1: "rated good (+1)", -1: "rated bad (-1)"}.get(row.get("rating") or 0, "")
    if rating or row.get("note"):
        parts.append(f'<div class="small">{rating} {html.escape(row.get("note") or "")}</div>')
    return f"<td>{''.join(parts)}</td>"


def _facts(row: Mapping[str, Any]) -> str:
    facts = [f"<code>{html.escape(row['cell_id'])}</code>"]
    if row.get("inference_ms"):
        facts.append(f"inference {row['inference_ms'] / 1000:.1f} s")
    if row.get("wall_s") is not None:
        facts.append(f"wall {row['wall_s']:.1f} s")
    if row.get("reused"):
        facts.append("reused")
    return " · ".join(facts)


def _rows_table(rows: Sequence[Mapping[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(name)}</th>" for name in ("prompt", *_TABLE_COLUMNS))
    body = "".join(
        "<tr>"
        + f"<td>{html.escape(row['prompt_id'])}</td>"
        + "".join(f"<td>{_plain(row.get(name))}</td>" for name in _TABLE_COLUMNS)
        + "</tr>"
        for row in rows
    )
    return f'<div class="wide"><table class="rows"><tr>{head}</tr>{body}</table></div>'


def _plain(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return html.escape(str(value))


def _wins(rate: float | None, comparisons: int) -> str:
    return "-" if rate is None else f"{rate:.0%} of {comparisons}"


def _number(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def _href(relative: str) -> str:
    """A relative path as an attribute value: each part URL-quoted, then HTML-escaped."""
    return html.escape(quote(relative, safe="/"), quote=True)
