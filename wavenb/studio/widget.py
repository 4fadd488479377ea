"""``Studio``: the notebook app for making videos, an anywidget over ``AsyncClient``.

The front end (``wavenb/ui/static/studio.js`` and ``studio.css``) draws inputs and result side
by side (stacked when narrow), a gallery of this session's runs with poster frames, and takes
images by drag-and-drop, paste or the file picker. It holds no logic: it shows the synced
traits and sends actions (``{"do": "generate"}``…), which land in the ``_do_*`` methods here.
Videos, posters and timeline plots travel as binary buffers, only when the page asks for them:
the widget state stays small JSON, and a saved notebook holds no video.

Every action only schedules a task on the kernel's running event loop and keeps a reference to
it, so the kernel answers other cells while videos render, and several generations can run at
once. Generations are ``wavenb.Job``s (``client.job`` / ``client.follow``): the Studio observes
their updates and never submits, polls or downloads itself.

Nothing that fails in a task or an action is lost: it shows in the widget's error area as one
sentence with a "details" disclosure, and is cleared when its cause is (a new image, an edited
prompt, a run that worked).

On creation the Studio reads the client's journal: tasks an earlier session left unfinished
are offered to Resume (``client.resume``: waits and downloads, never submits again), and
submissions that got no answer are named in a warning, then settled in the background from the
account's history (``client.reconcile``): those it finds leave the warning (a found task joins
the Resume offer). Unless the client already knows it talks to a sandbox, the Studio asks the
server what it is (``client.detect``) and shows no price until it knows: a served sandbox
never flashes "$0.50", and the SANDBOX badge comes with the first answer.

Images dropped, pasted or picked in the browser are kept on the kernel's machine, under
``<save_dir>/uploads/``, so "copy as code" names a file the code can open.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, ClassVar, Final, TypeVar

import traitlets

from wavenb.client.async_client import AsyncClient
from wavenb.core import protocol
from wavenb.core.errors import InputError, WavenbError
from wavenb.core.images import ImageInput
from wavenb.core.models import Video
from wavenb.core.types import AspectRatio
from wavenb.studio import words
from wavenb.studio.engine import Generations
from wavenb.studio.image import SourceImage, check_image_url, from_upload, load_image
from wavenb.studio.runs import PLOT_MISSING, Run, run_state, timeline_png
from wavenb.ui.channel import FrontEnd, static
from wavenb.ui.posters import poster, poster_missing_reason
from wavenb.ui.text import money

__all__ = ["Studio"]

T = TypeVar("T")

DETECT_PATIENCE: Final = 5.0
"""Seconds Generate waits for the server to say what it is before it shows the list price."""
CHECKING_PRICE: Final = "Generate · checking price…"


class Studio(FrontEnd, Generations):
    """Make videos from an image and a prompt, in a notebook cell (or a Voilà / marimo app).

    Evaluate it in a cell to display it. Without ``WAVESPEED_API_KEY`` it uses the local
    sandbox (free, offline, labelled SANDBOX).

    Args:
        image: a path, URL, bytes or PIL image to start from.
        prompt: the prompt to start from.
        aspect_ratio: one of the five ratios; ``None`` matches the source image.
        client: the ``AsyncClient`` to use; by default ``AsyncClient()``.
        save_dir: where "Save on kernel" puts MP4s; by default wavenb's outputs folder.

    Examples:
        >>> studio = wavenb.Studio(image="cat.jpg")              # doctest: +SKIP
        >>> studio                                                # displays the widget
        >>> video = await studio.generate()                       # or click Generate
        >>> studio.last.path
    """

    _esm = static("studio.js")
    _css = static("studio.css")
    ACTIONS: ClassVar[frozenset[str]] = frozenset({
        "generate", "cancel", "fetch", "show", "resume", "enhance", "undo", "image", "url",
        "save", "video", "poster", "timeline", "download", "dismiss",
    })  # fmt: skip

    prompt_text = traitlets.Unicode("", help="The prompt as typed (two-way).").tag(sync=True)
    ratio = traitlets.Unicode("", help='The chosen ratio; "" matches the source.').tag(sync=True)
    save_dir = traitlets.Unicode(help="The folder Save on kernel writes MP4s into.").tag(sync=True)
    ratio_choices: traitlets.List[Any] = traitlets.List(
        help="(label, value) pairs of the ratio menu."
    ).tag(sync=True)
    examples: traitlets.List[Any] = traitlets.List(help="Example prompts.").tag(sync=True)
    sandbox = traitlets.Bool(default_value=False, help="Whether the backend is a sandbox.").tag(
        sync=True
    )
    sandbox_hint = traitlets.Unicode(help="How to use the real API instead.").tag(sync=True)
    image_info = traitlets.Dict(help="The source image: label, summary.").tag(sync=True)
    preview = traitlets.Bytes(b"", help="A small JPEG of the source image.").tag(sync=True)
    image_message = traitlets.Dict(help="About the image field: text, level.").tag(sync=True)
    char_count = traitlets.Unicode(help='"42 / 1000"').tag(sync=True)
    generate_label = traitlets.Unicode("Generate", help="Generate and the price.").tag(sync=True)
    generate_ready = traitlets.Bool(default_value=False, help="Whether Generate can go.").tag(
        sync=True
    )
    generate_hint = traitlets.Unicode(help="What stops Generate, in words.").tag(sync=True)
    spent_text = traitlets.Unicode(help="What this session spent.").tag(sync=True)
    enhancing = traitlets.Bool(default_value=False, help="Whether Enhance is running.").tag(
        sync=True
    )
    diff: traitlets.List[Any] = traitlets.List(
        help="The last Enhance's word diff: (kind, words)."
    ).tag(sync=True)
    can_undo = traitlets.Bool(default_value=False, help="Whether Undo restores a prompt.").tag(
        sync=True
    )
    resume_text = traitlets.Unicode(help="Runs an earlier session left unfinished.").tag(sync=True)
    resuming = traitlets.Bool(default_value=False, help="Whether Resume is running.").tag(sync=True)
    warning = traitlets.Unicode(help="Submissions that got no answer.").tag(sync=True)
    error = traitlets.Dict(help="The error area: sentence, details.").tag(sync=True)
    runs: traitlets.List[Any] = traitlets.List(help="Every run, newest first (run_state).").tag(
        sync=True
    )
    shown = traitlets.Int(0, help="The number of the run in the result area (0: none).").tag(
        sync=True
    )
    saved_text = traitlets.Unicode(help="Where Save on kernel put the file.").tag(sync=True)
    poster_note = traitlets.Unicode(help="Why posters are input thumbnails.").tag(sync=True)
    running = traitlets.Int(0, read_only=True, help="How many generations are in flight.")

    def __init__(
        self,
        image: ImageInput | None = None,
        prompt: str = "",
        aspect_ratio: AspectRatio | None = None,
        *,
        client: AsyncClient | None = None,
        save_dir: str | Path | None = None,
    ) -> None:
        ratio = protocol.validate_aspect_ratio(aspect_ratio)
        self.client = client if client is not None else AsyncClient()
        """The ``AsyncClient`` the Studio works through."""
        super().__init__(
            prompt_text=prompt,
            ratio=ratio or "",
            save_dir=str(save_dir if save_dir is not None else self.client.output_dir),
            ratio_choices=[list(pair) for pair in words.ratio_options()],
            examples=list(words.EXAMPLE_PROMPTS),
            sandbox_hint=words.SANDBOX_HINT,
            poster_note=poster_missing_reason() or "",
        )
        Generations.__init__(self)
        self._source: SourceImage | None = None
        self._source_text = ""
        self._loading = 0
        self._image_version = 0
        self._before_enhance: str | None = None
        self._error_cause = ""
        self._detecting = False
        self.observe(self._on_prompt, names=["prompt_text"])
        self.observe(lambda _change: self._refresh(), names=["ratio"])
        if image is not None:
            try:
                self.set_image(image)
            except WavenbError as error:
                self.image_message = {"text": str(error), "level": "error"}
        try:
            self._offer_resume()
        except Exception as error:  # noqa: BLE001  (an unreadable journal must not stop the Studio)
            self.show_error(error)
        if self.client.backend != "sandbox":
            self._start_detecting()
            if self.warning:  # uncertain submissions: the account's history may settle them
                self._try_spawn(self._reconcile())
        self._refresh()

    # -- public API ------------------------------------------------------------------------

    @property
    def prompt(self) -> str:
        """The prompt as typed."""
        return str(self.prompt_text)

    @prompt.setter
    def prompt(self, text: str) -> None:
        self.prompt_text = text

    @property
    def aspect_ratio(self) -> AspectRatio | None:
        """The chosen ratio; ``None`` matches the source image."""
        return protocol.validate_aspect_ratio(self.ratio or None)

    @aspect_ratio.setter
    def aspect_ratio(self, ratio: AspectRatio | None) -> None:
        self.ratio = protocol.validate_aspect_ratio(ratio) or ""

    @property
    def image(self) -> SourceImage | None:
        """The checked source image, or ``None`` while there is none (or it is loading)."""
        return self._source

    def set_image(self, image: ImageInput) -> asyncio.Task[None]:
        """Use ``image`` (path, URL, bytes or PIL image); it is checked in a task.

        Raises:
            WavenbError: there is no running event loop (use the Studio in Jupyter).
        """
        if isinstance(image, str) and image.startswith(("http://", "https://")):
            return self._load_image(_check_url(image), image)
        if isinstance(image, bytes):  # kept as a file, like an upload, for "copy as code"
            kept = _upload_path(Path(self.save_dir).expanduser(), image)
            return self._load_image(_load_and_keep(image, "image", kept), str(kept))
        text = str(image) if isinstance(image, str | Path) else "image.jpg"
        label = Path(image).name if isinstance(image, str | Path) else "image"
        return self._load_image(asyncio.to_thread(load_image, image, label), text)

    def generate(self) -> asyncio.Task[Video | None]:
        """Start a video from the current image, prompt and ratio: what Generate does.

        Returns the task; awaiting it gives the ``Video``, or ``None`` if the run failed or was
        cancelled (the reason is in the widget and on ``studio.history[-1]``).

        Raises:
            InputError: no image yet, or the prompt is not usable.
            WavenbError: there is no running event loop.
        """
        source = self._source
        if source is None:
            raise InputError("add an image first (drop, paste or choose one, or a URL)")
        prompt = protocol.validate_prompt(self.prompt)
        run = Run(len(self._runs) + 1, prompt, self.aspect_ratio, source, self._source_text)
        return self._start(run)

    def show(self, run: Run) -> None:
        """Put ``run`` in the result area: its video, or its error."""
        self.shown = run.number
        self.saved_text = ""
        if run.error is not None:
            self._show_error_of(run)
        elif self._error_cause.startswith("run"):
            self.error = {}

    def download(self, video: Video | None = None) -> Path:
        """Save ``video`` (default: the one shown) on the kernel's machine, in ``save_dir``.

        The browser's Download button saves to the user's computer instead; this is "Save on
        kernel". Returns ``<save_dir>/<id>.mp4``.

        Raises:
            InputError: no finished video to save.
        """
        shown = self._run(self.shown) if self.shown else None
        chosen = video or (shown.video if shown is not None else None)
        if chosen is None or chosen.path is None:
            raise InputError("no finished video to save yet")
        folder = Path(self.save_dir).expanduser()
        target = folder / f"{chosen.id}.mp4"
        if not (target.exists() and target.resolve() == chosen.path.resolve()):
            folder.mkdir(parents=True, exist_ok=True)
            chosen.save(target)
        self.saved_text = f"Saved on the kernel's machine: {target}"
        return target

    def show_error(self, error: BaseException, /) -> None:
        """Show an error in the error area: one sentence, raw details in a disclosure."""
        self._set_error(error, "action")

    def __repr__(self) -> str:
        return (
            f"<Studio backend={self.client.backend!r} runs={len(self._runs)} "
            f"running={self.running}>"
        )

    # -- actions from the front end --------------------------------------------------------

    def _do_generate(self, _content: dict[str, Any], _buffers: list[bytes]) -> None:
        self.generate()

    def _do_cancel(self, content: dict[str, Any], _buffers: list[bytes]) -> None:
        self.cancel(self._run(content.get("n")))

    def _do_fetch(self, content: dict[str, Any], _buffers: list[bytes]) -> None:
        self.fetch(self._run(content.get("n")))

    def _do_show(self, content: dict[str, Any], _buffers: list[bytes]) -> None:
        self.show(self._run(content.get("n")))

    def _do_resume(self, _content: dict[str, Any], _buffers: list[bytes]) -> None:
        self.resume()

    def _do_enhance(self, _content: dict[str, Any], _buffers: list[bytes]) -> None:
        self._spawn(self._enhance(protocol.validate_prompt(self.prompt)))

    def _do_undo(self, _content: dict[str, Any], _buffers: list[bytes]) -> None:
        if self._before_enhance is not None:
            self.prompt = self._before_enhance
        self._forget_enhance()

    def _do_dismiss(self, _content: dict[str, Any], _buffers: list[bytes]) -> None:
        self.error, self._error_cause = {}, ""

    def _do_image(self, content: dict[str, Any], buffers: list[bytes]) -> None:
        """A file dropped, pasted or picked in the browser."""
        entry = {"name": content.get("name") or "pasted image", "content": buffers[0] if buffers
                 else b"", "size": content.get("size") or sum(map(len, buffers))}  # fmt: skip
        try:
            data, name = from_upload([entry])
        except InputError as error:
            self._image_version += 1  # whatever was loading is superseded
            self._clear_image(str(error))
            return
        # Kept under the save folder, so the code "copy as code" gives can open it again.
        kept = _upload_path(Path(self.save_dir).expanduser(), data)
        self._load_image(_load_and_keep(data, name, kept), str(kept))

    def _do_url(self, content: dict[str, Any], _buffers: list[bytes]) -> None:
        url = str(content.get("url", "")).strip()
        if url:  # the URL field takes URLs only (never a path on the kernel's machine)
            self._load_image(_check_url(url), url)

    def _do_save(self, content: dict[str, Any], _buffers: list[bytes]) -> None:
        run = self._run(content.get("n", self.shown))
        self.download(run.video)

    def _do_video(self, content: dict[str, Any], _buffers: list[bytes]) -> None:
        run = self._run(content.get("n"))
        if run.video is not None:
            self.reply("video", run.video.read_bytes(), n=run.number)

    def _do_download(self, content: dict[str, Any], _buffers: list[bytes]) -> None:
        run = self._run(content.get("n"))
        if run.video is None:
            raise InputError("no finished video to download yet")
        self.reply("download", run.video.read_bytes(), n=run.number, name=f"{run.video.id}.mp4")

    def _do_poster(self, content: dict[str, Any], _buffers: list[bytes]) -> None:
        run = self._run(content.get("n"))
        self._spawn(self._send_poster(run))

    def _do_timeline(self, content: dict[str, Any], _buffers: list[bytes]) -> None:
        run = self._run(content.get("n"))
        if run.video is None:
            self.reply("timeline", None, n=run.number, note="no video, so no timeline")
            return
        try:
            png = timeline_png(run.video)
        except ImportError:
            self.reply("timeline", None, n=run.number, note=PLOT_MISSING)
        else:
            self.reply("timeline", png, n=run.number, note="")

    # -- image -----------------------------------------------------------------------------

    def _load_image(
        self, loading: Coroutine[Any, Any, SourceImage], text: str
    ) -> asyncio.Task[None]:
        """Check an image in a task; the latest pick wins over slower earlier ones."""
        self._image_version += 1
        version = self._image_version
        self._source = None
        checking = "checking the URL…" if text.startswith("http") else "reading the image…"
        self.image_message = {"text": checking, "level": "info"}

        async def load() -> None:
            try:
                source = await loading
            except InputError as error:
                if version == self._image_version:
                    self._clear_image(str(error))
                return
            finally:
                self._loading -= 1
                self._refresh()
            if version == self._image_version:
                self._use_image(source, text)

        work = load()
        try:
            task = self._spawn(work)
        except BaseException:
            # No running loop (a script): nothing was started, so nothing may be left pending.
            work.close()
            loading.close()
            raise
        self._loading += 1
        self._refresh()
        return task

    def _use_image(self, source: SourceImage, text: str) -> None:
        self._source, self._source_text = source, text
        self.preview = source.preview
        self.image_info = {"label": source.label, "summary": words.image_summary(source)}
        self.image_message = {}
        self._clear_error_of("image")
        self._refresh()

    def _clear_image(self, reason: str = "") -> None:
        self._source, self._source_text = None, ""
        self.preview, self.image_info = b"", {}
        self.image_message = {"text": reason, "level": "error"} if reason else {}
        self._refresh()

    # -- prompt ----------------------------------------------------------------------------

    def _on_prompt(self, _change: object) -> None:
        self._clear_error_of("prompt")
        self._refresh()

    async def _enhance(self, original: str) -> None:
        self.enhancing = True
        self._refresh()
        try:
            enhanced = await self.client.enhance_prompt(original)
        except Exception as error:  # noqa: BLE001  (shown in the widget until the prompt changes)
            self._set_error(error, "prompt")
            return
        finally:
            self.enhancing = False
            self._refresh()
        self.prompt = enhanced
        self._before_enhance = original
        self.diff = [list(part) for part in words.word_diff(original, enhanced)]
        self.can_undo = True

    def _forget_enhance(self) -> None:
        self._before_enhance, self.diff, self.can_undo = None, [], False

    async def _send_poster(self, run: Run) -> None:
        """Send the run's poster: its video's first frame, else the input image."""
        frame = None
        if run.video is not None and run.video.path is not None:
            frame = await asyncio.to_thread(poster, run.video.path)
        if frame is None and run.image is not None:
            frame = run.image.preview
        self.reply("poster", frame, n=run.number, frame=frame is not None and run.video is not None)

    # -- bookkeeping -----------------------------------------------------------------------

    def _publish(self) -> None:
        """Send every run's state to the front end (newest first) and refresh the controls."""
        now = time.monotonic()
        self.runs = [run_state(run, now) for run in reversed(self._runs)]
        self._refresh()

    def _set_error(self, error: BaseException, cause: str) -> None:
        """Show ``error``; it is cleared when ``cause`` changes (image, prompt, run, action)."""
        sentence, details = words.describe_error(error)
        self.error, self._error_cause = {"sentence": sentence, "details": details or ""}, cause

    def _clear_error_of(self, cause: str) -> None:
        if self._error_cause == cause or self._error_cause.startswith("run"):
            self.error, self._error_cause = {}, ""

    def _show_error_of(self, run: Run) -> None:
        assert run.error is not None  # noqa: S101  (only called for runs with an error)
        self._set_error(run.error, f"run {run.number}")

    def _refresh(self) -> None:
        sandbox = self.client.backend == "sandbox"
        self.set_trait("running", sum(1 for run in self._runs if run.active))
        missing = self._missing()
        self.sandbox = sandbox
        self.generate_ready = missing is None
        price = money(self.client.price_per_video)
        self.generate_label = CHECKING_PRICE if self._detecting else f"Generate · {price}"
        self.generate_hint = missing or ""
        self.spent_text = words.spent_label(self._spent, sandbox=sandbox)
        self.char_count = words.char_count(self.prompt)

    def _missing(self) -> str | None:
        """What stops Generate, in words; ``None`` when it can go."""
        if self._source is None:
            return "checking the image…" if self._loading else "add an image"
        try:
            prompt = protocol.validate_prompt(self.prompt)
        except InputError as error:
            return "write a prompt" if not self.prompt.strip() else str(error)
        if (id(self._source), prompt, self.aspect_ratio or "") in self._sending:
            return "sending…"
        if self._detecting:
            return "asking the server for its price…"
        return None

    def _start_detecting(self) -> None:
        """Ask the server what it is in a task (nothing without a running loop: a script)."""
        try:
            self._spawn(self._detect())
        except WavenbError:
            return
        self._detecting = True

    async def _detect(self) -> None:
        """Ask the server what it is, so badge and price are right before any run.

        Generate waits for the answer at most ``DETECT_PATIENCE`` seconds (a slow or retrying
        server must not keep it off), then shows the list price until the answer comes.
        """
        probe = asyncio.ensure_future(self.client.detect())
        try:
            await asyncio.wait({probe}, timeout=DETECT_PATIENCE)
        except asyncio.CancelledError:
            probe.cancel()
            raise
        finally:
            self._detecting = False
            self._refresh()
        try:
            await probe
        finally:
            self._refresh()

    async def _reconcile(self) -> None:
        """Settle uncertain submissions from the account's history; redraw warning and Resume."""
        await self.client.reconcile()
        self._offer_resume()


async def _check_url(url: str) -> SourceImage:
    return await check_image_url(url)


def _upload_path(folder: Path, data: bytes) -> Path:
    """Where an uploaded image is kept: ``<folder>/uploads/<sha256[:16]>.<format>``.

    Named by content, so the same image dropped twice is one file.
    """
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415  (Pillow loads lazily)

    try:
        with Image.open(io.BytesIO(data)) as opened:  # reads the header only
            kind = (opened.format or "img").lower()
    except (UnidentifiedImageError, OSError, ValueError):
        kind = "img"  # not an image: load_image refuses it before anything is written
    suffix = {"jpeg": "jpg", "tiff": "tif"}.get(kind, kind)
    return folder / "uploads" / f"{hashlib.sha256(data).hexdigest()[:16]}.{suffix}"


async def _load_and_keep(data: bytes, name: str, target: Path) -> SourceImage:
    """Check an uploaded image, then write it to ``target`` (only once it is usable).

    Raises:
        InputError: the image is not usable, or cannot be written on the kernel's machine.
    """
    source = await asyncio.to_thread(load_image, data, name)
    try:
        await asyncio.to_thread(_write_once, target, data)
    except OSError as error:
        raise InputError(
            f"{name} could not be kept on the kernel's machine ({error.strerror or error}); "
            "choose a folder you can write to under 'code and kernel folder' (now "
            f"{target.parent.parent})"
        ) from None
    return source


def _write_once(target: Path, data: bytes) -> None:
    if target.exists() and target.stat().st_size == len(data):
        return  # the same content (the name is its hash)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    partial.write_bytes(data)
    partial.replace(target)
