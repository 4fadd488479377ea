// wavenb comparison grid: the front end of wavenb.ab.widget.CompareGrid (anywidget).
//
// A grid may hold a hundred videos. Nothing heavy is widget state: poster frames are asked
// for (in batches) just before their cells scroll into view, and a video's bytes only when
// its cell is on screen; both arrive as binary buffers. Videos far off screen are unloaded
// again when too many are held. Every text from the kernel goes in as textContent.

const MAX_LOADED = 24; // videos held at once; the least recently seen off-screen ones go first
const POSTER_MARGIN = "600px";

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

function blobUrl(data, type) {
  return URL.createObjectURL(new Blob([data], { type }));
}

function render({ model, el }) {
  const send = (content) => model.send(content);
  const views = new Map(); // cell id -> its DOM parts and state
  const asked = new Set();
  const cleanups = [];
  let tick = 0;

  // -- header and controls ---------------------------------------------------------------
  const title = h("span", { class: "wnb-grid-title" });
  const badge = h("span", { class: "wnb-badge", text: "SANDBOX" });
  const cost = h("span", { class: "wnb-muted" });
  const confirm = h("button", { type: "button", class: "wnb-button wnb-primary", onclick: () => { confirm.disabled = true; send({ do: "confirm" }); } });
  const progress = h("span", { class: "wnb-muted" });
  const play = h("button", { type: "button", class: "wnb-button", text: "Play all", onclick: () => {
    model.set("playing", true); model.set("restarts", model.get("restarts") + 1); model.save_changes(); } });
  const pause = h("button", { type: "button", class: "wnb-button", text: "Pause all", onclick: () => {
    model.set("playing", false); model.save_changes(); } });
  const loop = h("input", { type: "checkbox", onchange: () => { model.set("loop", loop.checked); model.save_changes(); } });
  const errors = h("div", { class: "wnb-grid-errors", role: "alert" });
  const summary = h("div", { class: "wnb-muted wnb-grid-summary" });
  const posterNote = h("div", { class: "wnb-muted" });
  const body = h("div", { class: "wnb-grid-body" });
  const root = h("div", { class: "wnb wnb-grid wnb-compare" },
    h("div", { class: "wnb-grid-head" }, title, badge),
    h("div", { class: "wnb-grid-line" }, cost, confirm),
    h("div", { class: "wnb-grid-line" }, progress, h("span", { class: "wnb-grid-controls" }, play, pause,
      h("label", { class: "wnb-muted" }, loop, " loop"))),
    errors, body, summary, posterNote);
  el.append(root);

  // -- lazy media ------------------------------------------------------------------------
  const posterObserver = new IntersectionObserver((entries) => {
    const wanted = [];
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      const id = entry.target.dataset.cell;
      if (!asked.has(`poster:${id}`)) { asked.add(`poster:${id}`); wanted.push(id); }
      posterObserver.unobserve(entry.target);
    }
    if (wanted.length) send({ do: "posters", cells: wanted });
  }, { rootMargin: POSTER_MARGIN });
  const videoObserver = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      const view = views.get(entry.target.dataset.cell);
      if (!view) continue;
      view.visible = entry.isIntersecting;
      if (view.visible) { view.seen = ++tick; wantVideo(view); }
      else if (view.video) view.video.pause();
    }
  }, { threshold: 0.25 });
  cleanups.push(() => { posterObserver.disconnect(); videoObserver.disconnect(); });

  function wantVideo(view) {
    if (!view.state.video || view.videoUrl || asked.has(`video:${view.id}`)) return;
    asked.add(`video:${view.id}`);
    send({ do: "video", cell: view.id });
  }

  function attachVideo(view, data) {
    view.videoUrl = blobUrl(data, "video/mp4");
    const video = h("video", { class: "wnb-grid-video", muted: true, playsinline: true, preload: "auto",
      "aria-label": `Video of cell ${view.id}` });
    Object.assign(video, { muted: true, loop: model.get("loop"), controls: true, src: view.videoUrl });
    if (view.posterUrl) video.poster = view.posterUrl;
    view.video = video;
    view.media.replaceChildren(video);
    if (model.get("playing") && view.visible) video.play().catch(() => {});
    unloadExtra();
  }

  function unloadExtra() {
    const loaded = [...views.values()].filter((view) => view.video);
    if (loaded.length <= MAX_LOADED) return;
    const idle = loaded.filter((view) => !view.visible).sort((a, b) => a.seen - b.seen);
    for (const view of idle.slice(0, loaded.length - MAX_LOADED)) {
      view.video.removeAttribute("src");
      view.video.load();
      URL.revokeObjectURL(view.videoUrl);
      view.video = null;
      view.videoUrl = null;
      asked.delete(`video:${view.id}`);
      drawMedia(view);
    }
  }

  function drawMedia(view) {
    if (view.video) return;
    const state = view.state;
    const word = state.video ? "" : state.live ? `${state.phase}…` : state.phase;
    view.media.replaceChildren(
      view.posterUrl ? h("img", { src: view.posterUrl, alt: "", class: state.video ? "" : "wnb-dim" }) : "",
      word ? h("span", { class: "wnb-media-word", text: word }) : "");
  }

  // -- cells -----------------------------------------------------------------------------
  function makeCell(id) {
    const media = h("div", { class: "wnb-media", "data-cell": id });
    const chip = h("span", { class: "wnb-chip" });
    const time = h("span", { class: "wnb-muted" });
    const good = h("button", { type: "button", class: "wnb-rate", text: "✓", title: "A good video", "aria-label": `Cell ${id}: good`,
      onclick: () => send({ do: "rate", cell: id, rating: 1 }) });
    const bad = h("button", { type: "button", class: "wnb-rate", text: "✗", title: "A bad video", "aria-label": `Cell ${id}: bad`,
      onclick: () => send({ do: "rate", cell: id, rating: -1 }) });
    const note = h("input", { type: "text", class: "wnb-note", placeholder: "note", "aria-label": `Note on cell ${id}`,
      onchange: () => send({ do: "note", cell: id, note: note.value }) });
    const retry = h("button", { type: "button", class: "wnb-button wnb-tiny", onclick: () => { retry.disabled = true; send({ do: "retry", cell: id }); } });
    const more = h("button", { type: "button", class: "wnb-button wnb-tiny", text: "timeline", "aria-expanded": "false",
      onclick: () => {
        const open = more.getAttribute("aria-expanded") !== "true";
        more.setAttribute("aria-expanded", String(open));
        if (open && !timeline.src) send({ do: "timeline", cell: id });
        timeline.hidden = !open;
      } });
    const timeline = h("img", { class: "wnb-grid-timeline", alt: `Timeline of cell ${id}`, hidden: true });
    const error = h("div", { class: "wnb-cell-error" });
    const badges = h("div", { class: "wnb-badges" });
    const node = h("div", { class: "wnb-cell", role: "group", "aria-label": `Cell ${id}` },
      media,
      h("div", { class: "wnb-cell-line" }, chip, time),
      h("div", { class: "wnb-cell-line" }, good, bad, note, more),
      badges, error, retry, timeline);
    const view = { id, node, media, chip, time, good, bad, note, retry, more, timeline, error, badges,
      state: {}, key: "", video: null, videoUrl: null, posterUrl: null, visible: false, seen: 0 };
    views.set(id, view);
    posterObserver.observe(media);
    videoObserver.observe(media);
    return view;
  }

  function drawCell(view, state) {
    const key = JSON.stringify(state);
    if (key === view.key) return;
    const had = view.state.video;
    view.key = key;
    view.state = state;
    view.chip.className = `wnb-chip wnb-phase-${state.phase}`;
    view.chip.textContent = state.phase;
    view.chip.title = state.detail || state.id;
    view.time.textContent = [state.time, state.short].filter(Boolean).join(" · ");
    view.time.title = state.id;
    view.good.setAttribute("aria-pressed", String(state.rating === 1));
    view.bad.setAttribute("aria-pressed", String(state.rating === -1));
    if (document.activeElement !== view.note) view.note.value = state.note || "";
    view.error.textContent = state.error ? `⚠ ${state.error}` : "";
    view.badges.replaceChildren(...state.badges.map((text) => h("span", { class: "wnb-metric", text })));
    view.retry.textContent = state.retry;
    view.retry.hidden = !state.retry;
    view.retry.disabled = false;
    view.more.hidden = !(state.video || state.phase === "failed");
    if (state.video && !had && view.visible) wantVideo(view);
    if (state.video && !had && view.posterUrl && !asked.has(`poster:${view.id}:video`)) {
      asked.add(`poster:${view.id}:video`); // the poster was the input image: now a real frame
      send({ do: "posters", cells: [view.id] });
    }
    drawMedia(view);
  }

  function build() {
    const columns = model.get("columns");
    const template = `minmax(90px, 0.6fr) repeat(${columns.length}, minmax(0, 1fr))`;
    body.replaceChildren(...model.get("sections").map((section) => {
      const corner = h("div", { class: "wnb-corner" },
        h("img", { class: "wnb-source", alt: `Source image ${section.image}`, "data-image": section.image }),
        h("div", { class: "wnb-muted", text: section.image }));
      send({ do: "image", image: section.image });
      const grid = h("div", { class: "wnb-grid-table", style: `grid-template-columns:${template}` }, corner,
        ...columns.map((label) => h("div", { class: "wnb-colhead", text: label })));
      for (const row of section.rows) {
        const heading = h("div", { class: "wnb-prompt" }, h("b", { text: row.prompt_id }),
          row.reference ? h("span", { class: "wnb-muted", text: " (reference)" }) : "",
          h("div", {}, ...row.words.flatMap(([kind, words]) => [kind === "mark" ? h("mark", { text: words }) : words, " "])));
        grid.append(heading, ...row.cells.map((id) => (views.get(id) || makeCell(id)).node));
      }
      return grid;
    }));
  }

  function drawCells() {
    const cells = model.get("cells");
    for (const [id, state] of Object.entries(cells)) {
      const view = views.get(id);
      if (view) drawCell(view, state);
    }
  }

  function drawHead() {
    title.textContent = model.get("title");
    badge.hidden = !model.get("sandbox");
    cost.textContent = model.get("cost");
    confirm.textContent = model.get("confirm");
    confirm.hidden = !model.get("confirm");
    progress.textContent = model.get("progress");
    errors.textContent = model.get("errors") ? `⚠ ${model.get("errors")}` : "";
    summary.replaceChildren(...model.get("summary").map((line) => h("div", { text: line })));
    posterNote.textContent = model.get("poster_note");
    loop.checked = model.get("loop");
  }

  function drawPlayback(rewind) {
    for (const view of views.values()) {
      const video = view.video;
      if (!video) continue;
      video.loop = model.get("loop");
      if (rewind) video.currentTime = 0;
      if (model.get("playing") && view.visible) video.play().catch(() => {});
      else video.pause();
    }
  }

  const onMessage = (message, buffers) => {
    if (message.kind === "posters") {
      message.cells.forEach((id, index) => {
        const view = views.get(id);
        if (!view || !buffers[index]) return;
        if (view.posterUrl) URL.revokeObjectURL(view.posterUrl);
        view.posterUrl = blobUrl(buffers[index], "image/jpeg");
        if (view.video) view.video.poster = view.posterUrl;
        drawMedia(view);
      });
    } else if (message.kind === "video" && buffers?.length) {
      const view = views.get(message.cell);
      if (view && !view.video) attachVideo(view, buffers[0]);
    } else if (message.kind === "image" && buffers?.length) {
      for (const img of body.querySelectorAll(`img.wnb-source`)) {
        if (img.dataset.image === message.image && !img.src) img.src = blobUrl(buffers[0], "image/jpeg");
      }
    } else if (message.kind === "timeline") {
      const view = views.get(message.cell);
      if (view && buffers?.length) view.timeline.src = blobUrl(buffers[0], "image/png");
      else if (view) view.timeline.alt = message.note;
    } else if (message.kind === "download" && buffers?.length) {
      const link = h("a", { href: blobUrl(buffers[0], "video/mp4"), download: message.name });
      document.body.append(link);
      link.click();
      link.remove();
    }
  };
  model.on("msg:custom", onMessage);
  cleanups.push(() => model.off("msg:custom", onMessage));

  const listeners = [
    [["change:title", "change:sandbox", "change:cost", "change:confirm", "change:progress", "change:errors", "change:summary", "change:poster_note", "change:loop"], drawHead],
    [["change:cells"], drawCells],
    [["change:columns", "change:sections"], () => { build(); drawCells(); }],
    [["change:playing", "change:loop"], () => drawPlayback(false)],
    [["change:restarts"], () => drawPlayback(true)],
  ];
  for (const [names, handler] of listeners) {
    for (const name of names) { model.on(name, handler); cleanups.push(() => model.off(name, handler)); }
  }
  build();
  drawHead();
  drawCells();

  return () => {
    for (const cleanup of cleanups) cleanup();
    for (const view of views.values()) {
      if (view.videoUrl) URL.revokeObjectURL(view.videoUrl);
      if (view.posterUrl) URL.revokeObjectURL(view.posterUrl);
    }
  };
}

export default { render };
