"""The Studio's controls and where they sit: stock ipywidgets only, no behaviour.

``Controls`` names every widget the Studio drives (tests and users reach them as
``studio.ui.<name>``); ``arrange`` lays them out. Behaviour lives in ``_studio``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ipywidgets as widgets

from wavenb.studio.html import EXAMPLE_PROMPTS, STYLE, ratio_options
from wavenb.studio.image import UPLOAD_LIMIT
from wavenb.studio.runs import TimelineToggle

__all__ = ["Controls", "arrange", "hide", "show"]

PREVIEW_WIDTH = "320px"


def _html(value: str = "") -> Any:  # noqa: ANN401  (ipywidgets is untyped)
    return widgets.HTML(value)


@dataclass(frozen=True, slots=True, eq=False)
class Controls:
    """Every widget of the Studio, by name."""

    header: Any = field(default_factory=_html)
    """Title, and the SANDBOX badge with its hint when the sandbox answers."""
    style: Any = field(default_factory=lambda: _html(STYLE))
    resume_line: Any = field(default_factory=lambda: widgets.HTML(layout=_hidden()))
    """How many runs an earlier session left unfinished (hidden when none)."""
    resume: Any = field(
        default_factory=lambda: widgets.Button(
            description="Resume",
            icon="redo",
            tooltip="Wait for and download them; nothing is submitted again",
            layout=_hidden(),
        )
    )
    unresolved: Any = field(default_factory=_html)
    """The warning about submissions that got no answer (empty when none)."""
    upload: Any = field(
        default_factory=lambda: widgets.FileUpload(
            accept="image/*",
            multiple=False,
            description="Upload image",
            tooltip=f"JPEG, PNG or WebP up to {UPLOAD_LIMIT // 2**20} MB",
            layout=widgets.Layout(width="auto"),
        )
    )
    url: Any = field(
        default_factory=lambda: widgets.Text(
            placeholder="…or paste an image URL (https://…) and press Enter",
            continuous_update=False,
            layout=widgets.Layout(width=PREVIEW_WIDTH),
        )
    )
    image_message: Any = field(default_factory=_html)
    """Why an image was refused, or that a URL is being checked."""
    preview: Any = field(
        default_factory=lambda: widgets.Image(
            format="jpeg", layout=widgets.Layout(max_width=PREVIEW_WIDTH, display="none")
        )
    )
    image_info: Any = field(default_factory=_html)
    """Size, detected ratio and closest output ratio of the image."""
    examples: Any = field(
        default_factory=lambda: widgets.Dropdown(
            options=[("Examples…", ""), *[(text, text) for text in EXAMPLE_PROMPTS]],
            value="",
            layout=widgets.Layout(width="auto"),
        )
    )
    prompt: Any = field(
        default_factory=lambda: widgets.Textarea(
            placeholder="Describe the motion: what moves, and how the camera moves",
            rows=4,
            layout=widgets.Layout(width="100%"),
        )
    )
    char_count: Any = field(default_factory=_html)
    enhance: Any = field(
        default_factory=lambda: widgets.Button(
            description="Enhance", icon="magic", tooltip="Rewrite the prompt with the optimizer"
        )
    )
    undo: Any = field(
        default_factory=lambda: widgets.Button(
            description="Undo",
            icon="undo",
            tooltip="Restore the prompt as it was before Enhance",
            layout=widgets.Layout(display="none"),
        )
    )
    diff: Any = field(default_factory=_html)
    """The word diff of the last Enhance: deletions struck, insertions highlighted."""
    ratio: Any = field(
        default_factory=lambda: widgets.Dropdown(
            options=ratio_options(), value="", description="Aspect ratio"
        )
    )
    generate: Any = field(
        default_factory=lambda: widgets.Button(
            description="Generate", button_style="primary", icon="play", disabled=True
        )
    )
    generate_hint: Any = field(default_factory=_html)
    """What is still missing before Generate can be clicked."""
    spent: Any = field(default_factory=_html)
    """What the runs submitted from this Studio cost ("free (sandbox)" on the sandbox)."""
    running: Any = field(default_factory=widgets.VBox)
    """One progress row per generation in flight."""
    status: Any = field(default_factory=_html)
    """The chip of the run shown below, with its prompt."""
    error: Any = field(default_factory=_html)
    """The error area: one sentence and a "details" disclosure."""
    player: Any = field(
        default_factory=lambda: widgets.Video(
            format="mp4",
            autoplay=True,
            loop=True,
            controls=True,
            layout=widgets.Layout(max_width="640px", display="none"),
        )
    )
    caption: Any = field(default_factory=_html)
    timeline: Any = field(default_factory=TimelineToggle)
    """The "timeline" toggle of the video shown (``plot_timeline``, drawn when opened)."""
    download: Any = field(
        default_factory=lambda: widgets.Button(
            description="Download MP4",
            icon="download",
            tooltip="Save the MP4 into the folder on the right",
            disabled=True,
        )
    )
    save_dir: Any = field(
        default_factory=lambda: widgets.Text(
            description="to folder", layout=widgets.Layout(width="420px")
        )
    )
    saved: Any = field(default_factory=_html)
    """Where the last Download put the file."""
    history: Any = field(default_factory=widgets.VBox)
    """One row per run of this session, newest first."""


def arrange(ui: Controls) -> list[Any]:
    """The Studio's children: inputs in two columns, then progress, result and history."""
    image_column = widgets.VBox(
        [ui.upload, ui.url, ui.image_message, ui.preview, ui.image_info],
        layout=widgets.Layout(width="340px", margin="0 16px 0 0"),
    )
    prompt_column = widgets.VBox(
        [
            ui.examples,
            ui.prompt,
            widgets.HBox([ui.char_count, ui.enhance, ui.undo], layout=_centered()),
            ui.diff,
            ui.ratio,
            widgets.HBox([ui.generate, ui.generate_hint, ui.spent], layout=_centered()),
        ],
        layout=widgets.Layout(flex="1 1 auto", min_width="320px"),
    )
    result = widgets.VBox(
        [
            ui.status,
            ui.error,
            ui.player,
            ui.caption,
            ui.timeline,
            widgets.HBox([ui.download, ui.save_dir], layout=_centered()),
            ui.saved,
        ]
    )
    return [
        ui.style,
        ui.header,
        widgets.HBox([ui.resume_line, ui.resume], layout=_centered()),
        ui.unresolved,
        widgets.HBox([image_column, prompt_column], layout=widgets.Layout(flex_flow="row wrap")),
        ui.running,
        result,
        widgets.HTML("<b>History</b> <small>(this session; Show plays a run again)</small>"),
        ui.history,
    ]


def show(widget: Any, visible: bool = True) -> None:  # noqa: ANN401, FBT001, FBT002
    """Show or hide a widget without removing it from the layout tree."""
    widget.layout.display = None if visible else "none"


def hide(widget: Any) -> None:  # noqa: ANN401
    """Hide a widget."""
    show(widget, visible=False)


def _hidden() -> Any:  # noqa: ANN401
    return widgets.Layout(display="none")


def _centered() -> Any:  # noqa: ANN401
    return widgets.Layout(align_items="center")
