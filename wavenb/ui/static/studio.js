// wavenb Studio: the front end of wavenb.Studio (an anywidget ES module, no bundler).
//
// It shows the synced traits and sends actions ({do: "generate"}, ...) to the kernel; it holds
// no logic of its own. Videos, posters and timeline plots arrive as binary buffers of custom
// messages, only when asked for, so the widget state stays small. Every text from the kernel
// is put in with textContent, never as HTML.

const TICK_MS = 1000;
const UPLOAD_LIMIT = 10 * 1024 * 1024;

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

function seconds(value) {
  const whole = Math.max(0, Math.round(value));
  if (whole < 60) return `${whole} s`;
  return `${Math.floor(whole / 60)} min ${String(whole % 60).padStart(2, "0")} s`;
}

function timing(run, since) {
  // Elapsed time ticks in the page between updates: nothing is sent while nothing happens.
  const extra = run.live ? (performance.now() - since) / 1000 : 0;
  const elapsed = seconds(run.elapsed + extra);
  if (!run.live) return `took ${elapsed}`;
  if (run.eta === null || run.eta === undefined) return `${elapsed} elapsed`;
  const left = run.eta - extra;
  return left > 0 ? `${elapsed} elapsed · about ${seconds(left)} left` : `${elapsed} elapsed · taking longer than usual`;
}

function chip(phase) {
  return h("span", { class: `wnb-chip wnb-phase-${phase}`, text: phase });
}

function saveBlob(url, name) {
  // A real download: the bytes go to the user's computer, wherever the kernel runs.
  const link = h("a", { href: url, download: name, style: "display:none" });
  document.body.append(link);
  link.click();
  link.remove();
}

function render({ model, el }) {
  const send = (content, buffers) => model.send(content, undefined, buffers);
  const blobs = new Map(); // run number -> object URL of its MP4
  const posters = new Map(); // "n:video?" -> object URL of its poster
  const asked = new Set();
  const cleanups = [];
  let receivedAt = performance.now();
  let previewUrl = null;
  let timelineOf = 0;

  // -- the skeleton ----------------------------------------------------------------------
  const badge = h("span", { class: "wnb-badge", text: "SANDBOX", title: "Free local renders, not Runway" });
  const hint = h("span", { class: "wnb-muted wnb-hint" });
  const head = h("header", { class: "wnb-head" },
    h("span", { class: "wnb-title", text: "wavenb Studio" }),
    h("span", { class: "wnb-muted", text: "Runway Gen4 Turbo image-to-video" }), badge, hint);

  const resumeText = h("span");
  const resumeButton = h("button", { type: "button", class: "wnb-button", text: "Resume",
    title: "Wait for and download them; nothing is submitted again",
    onclick: () => send({ do: "resume" }) });
  const resumeBox = h("div", { class: "wnb-notice wnb-info", role: "status" }, resumeText, resumeButton);
  const warningBox = h("div", { class: "wnb-notice wnb-warn", role: "status" });

  const fileInput = h("input", { type: "file", accept: "image/*", hidden: true, tabindex: "-1" });
  const preview = h("img", { class: "wnb-preview", alt: "The source image" });
  const chooseButton = h("button", { type: "button", class: "wnb-link", text: "choose a file",
    onclick: (event) => { event.stopPropagation(); fileInput.click(); } });
  const dropText = h("div", { class: "wnb-drop-text" }, "Drop an image here, paste one, or ", chooseButton);
  const drop = h("div", { class: "wnb-drop", tabindex: "0", role: "group",
    "aria-label": "Source image: drop, paste (Ctrl+V) or choose a file" }, preview, dropText);
  const imageInfo = h("div", { class: "wnb-small wnb-image-info" });
  const imageMessage = h("div", { class: "wnb-small wnb-field-message", "aria-live": "polite" });
  const url = h("input", { type: "url", class: "wnb-input", "aria-label": "Image URL",
    placeholder: "…or an image URL (https://…), then Enter" });

  const examples = h("select", { class: "wnb-input wnb-examples", "aria-label": "Example prompts" });
  const prompt = h("textarea", { class: "wnb-input wnb-prompt", rows: "4", id: `wnb-prompt-${model.cid ?? Math.random()}`,
    "aria-label": "Prompt", placeholder: "Describe the motion: what moves, and how the camera moves. Enter generates; Shift+Enter starts a new line." });
  const count = h("span", { class: "wnb-small wnb-muted" });
  const enhance = h("button", { type: "button", class: "wnb-button", text: "Enhance",
    title: "Rewrite the prompt with the provider's prompt optimizer", onclick: () => send({ do: "enhance" }) });
  const undo = h("button", { type: "button", class: "wnb-button", text: "Undo",
    title: "Restore the prompt as it was before Enhance", onclick: () => send({ do: "undo" }) });
  const diff = h("div", { class: "wnb-small wnb-diff", "aria-label": "What Enhance changed" });
  const ratio = h("select", { class: "wnb-input", "aria-label": "Aspect ratio" });
  // No aria-label: the visible text ("Generate · $0.50") is the name, price included.
  const generate = h("button", { type: "button", class: "wnb-button wnb-primary",
    onclick: () => send({ do: "generate" }) });
  const generateHint = h("span", { class: "wnb-small wnb-muted", "aria-live": "polite" });
  const spent = h("div", { class: "wnb-small wnb-muted" });

  const inputs = h("section", { class: "wnb-inputs", "aria-label": "Inputs" },
    drop, fileInput, imageInfo, imageMessage, url,
    h("div", { class: "wnb-row wnb-between" }, h("label", { class: "wnb-label", for: prompt.id, text: "Prompt" }), examples),
    prompt,
    h("div", { class: "wnb-row" }, count, enhance, undo),
    diff,
    h("label", { class: "wnb-label wnb-row" }, "Aspect ratio", ratio),
    h("div", { class: "wnb-row" }, generate, generateHint),
    spent);

  const statusChip = h("span");
  const statusText = h("span", { class: "wnb-small" });
  const statusTime = h("span", { class: "wnb-small wnb-muted" });
  const cancel = h("button", { type: "button", class: "wnb-button wnb-quiet", text: "Cancel",
    title: "Stop waiting; the provider goes on and the run can be fetched again" });
  const fetchAgain = h("button", { type: "button", class: "wnb-button", text: "Fetch again",
    title: "Wait for this task again: the provider kept running it" });
  const status = h("div", { class: "wnb-status", "aria-live": "polite" }, statusChip, statusText, statusTime, cancel, fetchAgain);

  const errorText = h("div", { class: "wnb-error-text" });
  const errorDetails = h("pre");
  const errorMore = h("details", {}, h("summary", { text: "details" }), errorDetails);
  const dismiss = h("button", { type: "button", class: "wnb-close", "aria-label": "Dismiss the error", text: "×",
    onclick: () => send({ do: "dismiss" }) });
  const errorBox = h("div", { class: "wnb-notice wnb-error", role: "alert" }, h("div", { class: "wnb-grow" }, errorText, errorMore), dismiss);

  const video = h("video", { class: "wnb-video", controls: true, loop: true, muted: true, autoplay: true,
    playsinline: true, preload: "auto", "aria-label": "The generated video" });
  video.muted = true; // the attribute alone does not mute in every browser
  const placeholder = h("div", { class: "wnb-placeholder", text: "Your video appears here" });
  const stage = h("div", { class: "wnb-stage" }, video, placeholder);
  const captionBadge = h("span", { class: "wnb-badge", text: "SANDBOX" });
  const caption = h("div", { class: "wnb-small wnb-caption" }, captionBadge, h("span"));
  const download = h("button", { type: "button", class: "wnb-button wnb-primary", text: "Download",
    title: "Save the MP4 to this computer" });
  const save = h("button", { type: "button", class: "wnb-button", text: "Save on kernel",
    title: "Save the MP4 into the folder below, on the machine the kernel runs on" });
  const timelineButton = h("button", { type: "button", class: "wnb-button", text: "Timeline", "aria-expanded": "false",
    title: "When the task was queued, processed and checked" });
  const copy = h("button", { type: "button", class: "wnb-button", text: "Copy as code",
    title: "Copy the wavenb.generate(...) call that makes this video" });
  const saveDir = h("input", { type: "text", class: "wnb-input wnb-small", "aria-label": "Folder on the kernel's machine" });
  const saved = h("div", { class: "wnb-small wnb-muted wnb-wrap" });
  const timeline = h("img", { class: "wnb-timeline", alt: "Timeline of the task" });
  const timelineNote = h("div", { class: "wnb-small wnb-muted" });
  const code = h("pre", { class: "wnb-code" });
  const codeBox = h("details", { class: "wnb-code-box" }, h("summary", { class: "wnb-small wnb-muted", text: "code and kernel folder" }),
    code, h("label", { class: "wnb-row wnb-small wnb-muted" }, "Save on kernel into", saveDir));
  const actions = h("div", { class: "wnb-row" }, download, save, timelineButton, copy);
  const result = h("section", { class: "wnb-result", "aria-label": "Result" },
    status, errorBox, stage, caption,
    actions,
    saved, timeline, timelineNote, codeBox);

  const cards = h("div", { class: "wnb-cards", role: "list" });
  const posterNote = h("div", { class: "wnb-small wnb-muted" });
  const gallery = h("section", { class: "wnb-gallery", "aria-label": "This session's runs" },
    h("div", { class: "wnb-label", text: "This session" }), cards, posterNote);

  const root = h("div", { class: "wnb wnb-studio" }, head, resumeBox, warningBox,
    h("div", { class: "wnb-main" }, inputs, result), gallery);
  el.append(root);

  // -- helpers ---------------------------------------------------------------------------
  const runs = () => model.get("runs") || [];
  const byNumber = (n) => runs().find((run) => run.n === n);
  const shownRun = () => byNumber(model.get("shown"));
  const show = (node, visible) => { node.hidden = !visible; };
  const setSelect = (select, options, value) => {
    const key = JSON.stringify(options);
    if (select.dataset.options !== key) {
      select.replaceChildren(...options.map(([label, v]) => h("option", { value: v, text: label })));
      select.dataset.options = key;
    }
    select.value = value;
  };

  function sendFile(file) {
    if (!file) return;
    if (file.size > UPLOAD_LIMIT) {
      imageMessage.textContent = `${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MB; drop files up to 10 MB, or pass a path: Studio(image="path/to/${file.name}")`;
      imageMessage.className = "wnb-small wnb-field-message wnb-bad";
      return;
    }
    file.arrayBuffer().then((bytes) => send({ do: "image", name: file.name || "pasted image", size: file.size }, [bytes]));
  }

  function imageFrom(items) {
    for (const item of items || []) {
      const file = item instanceof File ? item : item.kind === "file" ? item.getAsFile() : null;
      if (file && file.type.startsWith("image/")) return file;
    }
    return null;
  }

  // -- events ----------------------------------------------------------------------------
  fileInput.addEventListener("change", () => { sendFile(fileInput.files[0]); fileInput.value = ""; });
  drop.addEventListener("click", () => fileInput.click());
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); fileInput.click(); }
  });
  for (const kind of ["dragenter", "dragover"]) {
    drop.addEventListener(kind, (event) => { event.preventDefault(); drop.classList.add("wnb-over"); });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("wnb-over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("wnb-over");
    const file = imageFrom(event.dataTransfer?.files);
    if (file) sendFile(file);
    else {
      const link = event.dataTransfer?.getData("text/uri-list") || event.dataTransfer?.getData("text/plain");
      if (link && /^https?:\/\//.test(link.trim())) send({ do: "url", url: link.trim() });
    }
  });
  root.addEventListener("paste", (event) => {
    const file = imageFrom(event.clipboardData?.items);
    if (file) { event.preventDefault(); sendFile(file); }
  });
  url.addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); send({ do: "url", url: url.value }); }
  });
  url.addEventListener("change", () => { if (url.value.trim()) send({ do: "url", url: url.value }); });
  examples.addEventListener("change", () => {
    if (!examples.value) return;
    prompt.value = examples.value;
    model.set("prompt_text", examples.value);
    model.save_changes();
    examples.value = "";
  });
  let typed = null; // the last prompt typed here: the kernel's echo of it must not move the caret
  prompt.addEventListener("input", () => { typed = prompt.value; model.set("prompt_text", prompt.value); model.save_changes(); });
  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      event.stopPropagation(); // never a notebook shortcut
      model.set("prompt_text", prompt.value);
      model.save_changes();
      if (model.get("generate_ready")) send({ do: "generate" });
      else generateHint.classList.add("wnb-flash");
    }
  });
  generateHint.addEventListener("animationend", () => generateHint.classList.remove("wnb-flash"));
  ratio.addEventListener("change", () => { model.set("ratio", ratio.value); model.save_changes(); });
  saveDir.addEventListener("change", () => { model.set("save_dir", saveDir.value); model.save_changes(); });
  cancel.addEventListener("click", () => {
    const run = shownRun();
    if (!run) return;
    cancel.disabled = true;
    cancel.textContent = "Stopping…";
    send({ do: "cancel", n: run.n });
  });
  fetchAgain.addEventListener("click", () => { const run = shownRun(); if (run) send({ do: "fetch", n: run.n }); });
  download.addEventListener("click", () => {
    const run = shownRun();
    if (!run || !run.video) return;
    const name = `${run.id || "video"}.mp4`;
    if (blobs.has(run.n)) saveBlob(blobs.get(run.n), name);
    else send({ do: "download", n: run.n });
  });
  save.addEventListener("click", () => { const run = shownRun(); if (run) send({ do: "save", n: run.n }); });
  timelineButton.addEventListener("click", () => {
    const run = shownRun();
    const open = timelineButton.getAttribute("aria-expanded") !== "true";
    timelineButton.setAttribute("aria-expanded", String(open));
    if (open && run && timelineOf !== run.n) { timelineNote.textContent = "drawing…"; send({ do: "timeline", n: run.n }); }
    drawTimeline();
  });
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(code.textContent);
      copy.textContent = "Copied";
    } catch {
      codeBox.open = true; // no clipboard here (an insecure page): show it to copy by hand
      window.getSelection()?.selectAllChildren(code);
      copy.textContent = "Select and copy";
    }
    setTimeout(() => { copy.textContent = "Copy as code"; }, 1500);
  });

  const onMessage = (message, buffers) => {
    const data = buffers && buffers.length ? buffers[0] : null;
    if (message.kind === "video" && data) {
      blobs.set(message.n, URL.createObjectURL(new Blob([data], { type: "video/mp4" })));
      drawStage();
    } else if (message.kind === "download" && data) {
      const link = URL.createObjectURL(new Blob([data], { type: "video/mp4" }));
      blobs.set(message.n, link);
      saveBlob(link, message.name);
    } else if (message.kind === "poster") {
      const key = `${message.n}:${message.frame ? 1 : 0}`;
      if (data) posters.set(key, URL.createObjectURL(new Blob([data], { type: "image/jpeg" })));
      drawCards();
    } else if (message.kind === "timeline") {
      timelineOf = message.n;
      if (timeline.src) URL.revokeObjectURL(timeline.src);
      timeline.removeAttribute("src");
      if (data) timeline.src = URL.createObjectURL(new Blob([data], { type: "image/png" }));
      timelineNote.textContent = message.note || "";
      drawTimeline();
    }
  };
  model.on("msg:custom", onMessage);
  cleanups.push(() => model.off("msg:custom", onMessage));

  // -- drawing ---------------------------------------------------------------------------
  function drawHead() {
    const sandbox = model.get("sandbox");
    show(badge, sandbox);
    hint.textContent = sandbox ? model.get("sandbox_hint") : "";
    const resume = model.get("resume_text");
    resumeText.textContent = resume;
    resumeButton.disabled = model.get("resuming");
    resumeButton.textContent = model.get("resuming") ? "Resuming…" : "Resume";
    show(resumeBox, Boolean(resume) || model.get("resuming"));
    warningBox.textContent = model.get("warning") ? `⚠ ${model.get("warning")}` : "";
    show(warningBox, Boolean(model.get("warning")));
  }

  function drawImage() {
    const bytes = model.get("preview");
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = bytes && bytes.byteLength ? URL.createObjectURL(new Blob([bytes], { type: "image/jpeg" })) : null;
    if (previewUrl) preview.src = previewUrl; else preview.removeAttribute("src");
    show(preview, Boolean(previewUrl));
    drop.classList.toggle("wnb-has-image", Boolean(previewUrl));
    dropText.firstChild.textContent = previewUrl ? "Drop or paste another image, or " : "Drop an image here, paste one, or ";
    const info = model.get("image_info") || {};
    imageInfo.replaceChildren(...(info.label ? [h("b", { text: info.label }), " · ", info.summary] : []));
    const message = model.get("image_message") || {};
    imageMessage.textContent = message.text || "";
    imageMessage.className = `wnb-small wnb-field-message ${message.level === "error" ? "wnb-bad" : "wnb-muted"}`;
  }

  function drawPrompt() {
    const text = model.get("prompt_text");
    if (text !== prompt.value && text !== typed) prompt.value = text; // set by the kernel (Enhance, Undo)
    setSelect(examples, [["Examples…", ""], ...model.get("examples").map((text) => [text, text])], "");
    setSelect(ratio, model.get("ratio_choices"), model.get("ratio"));
    count.textContent = model.get("char_count");
    enhance.disabled = model.get("enhancing") || !model.get("prompt_text").trim();
    enhance.textContent = model.get("enhancing") ? "Enhancing…" : "Enhance";
    show(undo, model.get("can_undo"));
    diff.replaceChildren(...model.get("diff").flatMap(([kind, words]) => [
      kind === "same" ? document.createTextNode(words) : h(kind, { text: words }), " "]));
    show(diff, model.get("diff").length > 0);
    generate.textContent = model.get("generate_label");
    generate.disabled = !model.get("generate_ready");
    generateHint.textContent = model.get("generate_hint");
    spent.textContent = model.get("spent_text");
    if (document.activeElement !== saveDir) saveDir.value = model.get("save_dir");
  }

  function drawError() {
    const error = model.get("error") || {};
    errorText.textContent = error.sentence ? `⚠ ${error.sentence}` : "";
    errorDetails.textContent = error.details || "";
    show(errorMore, Boolean(error.details));
    show(errorBox, Boolean(error.sentence));
  }

  function drawStage() {
    const run = shownRun();
    const url = run && run.video ? blobs.get(run.n) : null;
    if (run && run.video && !url && !asked.has(`video:${run.n}`)) {
      asked.add(`video:${run.n}`);
      send({ do: "video", n: run.n });
    }
    if (url && video.getAttribute("src") !== url) {
      video.src = url;
      video.play().catch(() => {}); // autoplay refused: the controls are there
    }
    if (!url && video.getAttribute("src")) video.removeAttribute("src");
    show(video, Boolean(url));
    placeholder.textContent = !run ? "Your video appears here"
      : run.video ? "loading the video…" : run.live ? `${run.phase}…` : `no video (${run.phase})`;
    show(placeholder, !url);
    stage.classList.toggle("wnb-empty", !url);
  }

  function drawStatus() {
    const run = shownRun();
    for (const node of [status, caption, actions, codeBox]) show(node, Boolean(run));
    if (!run) { show(timeline, false); show(timelineNote, false); return; }
    statusChip.replaceChildren(chip(run.phase));
    statusText.textContent = [run.detail, `run ${run.n}`, run.short && `id ${run.short}`].filter(Boolean).join(" · ");
    statusText.title = run.id;
    statusTime.textContent = timing(run, receivedAt);
    show(cancel, run.live);
    if (run.live && run.detail !== "stopping…") { cancel.disabled = false; cancel.textContent = "Cancel"; }
    show(fetchAgain, run.fetchable);
    caption.lastChild.textContent = run.caption || run.prompt;
    show(captionBadge, run.sandbox);
    for (const button of [download, save, timelineButton]) button.disabled = !run.video;
    code.textContent = run.code;
    saved.textContent = model.get("saved_text");
    if (timelineOf && timelineOf !== run.n) { timelineButton.setAttribute("aria-expanded", "false"); }
    drawTimeline();
  }

  function drawTimeline() {
    const run = shownRun();
    const open = timelineButton.getAttribute("aria-expanded") === "true" && run && timelineOf === run.n;
    show(timeline, Boolean(open && timeline.src));
    show(timelineNote, Boolean(open || timelineNote.textContent === "drawing…"));
  }

  function drawCards() {
    const list = runs();
    const shown = model.get("shown");
    cards.replaceChildren(...list.map((run) => {
      const key = `${run.n}:${run.video ? 1 : 0}`;
      if (!posters.has(key) && !asked.has(`poster:${key}`)) {
        asked.add(`poster:${key}`);
        send({ do: "poster", n: run.n });
      }
      const thumb = posters.get(key) || (run.video ? null : posters.get(`${run.n}:0`));
      const label = `Run ${run.n}: ${run.phase}${run.short ? `, id ${run.short}` : ""}, ${run.prompt}`;
      const card = h("div", { class: `wnb-card${run.n === shown ? " wnb-current" : ""}`, role: "listitem" },
        h("button", { type: "button", class: "wnb-card-show", "aria-label": label, title: run.prompt,
          "aria-pressed": String(run.n === shown), onclick: () => send({ do: "show", n: run.n }) },
          h("div", { class: `wnb-thumb${run.video ? "" : " wnb-dim"}` },
            thumb ? h("img", { src: thumb, alt: "" }) : h("span", { class: "wnb-muted", text: "…" })),
          h("div", { class: "wnb-card-line" }, chip(run.phase),
            h("span", { class: "wnb-small wnb-muted wnb-time", "data-n": run.n, text: timing(run, receivedAt) })),
          h("div", { class: "wnb-small wnb-card-prompt", text: run.prompt }),
          h("div", { class: "wnb-small wnb-muted", text: [run.started, run.ratio, run.short].filter(Boolean).join(" · ") })),
        run.live ? h("button", { type: "button", class: "wnb-button wnb-quiet wnb-tiny", text: run.detail === "stopping…" ? "Stopping…" : "Cancel",
          disabled: run.detail === "stopping…", "aria-label": `Cancel run ${run.n}`,
          onclick: (event) => { event.currentTarget.disabled = true; event.currentTarget.textContent = "Stopping…"; send({ do: "cancel", n: run.n }); } }) : null,
        run.fetchable ? h("button", { type: "button", class: "wnb-button wnb-tiny", text: "Fetch again",
          "aria-label": `Fetch run ${run.n} again`, onclick: () => send({ do: "fetch", n: run.n }) }) : null);
      return card;
    }));
    show(gallery, list.length > 0);
    posterNote.textContent = model.get("poster_note");
  }

  function tick() {
    const run = shownRun();
    if (run && run.live) statusTime.textContent = timing(run, receivedAt);
    for (const node of cards.querySelectorAll(".wnb-time")) {
      const each = byNumber(Number(node.dataset.n));
      if (each && each.live) node.textContent = timing(each, receivedAt);
    }
  }

  const drawRuns = () => { receivedAt = performance.now(); drawStatus(); drawStage(); drawCards(); };
  const listeners = {
    "change:sandbox change:sandbox_hint change:resume_text change:resuming change:warning": drawHead,
    "change:preview change:image_info change:image_message": drawImage,
    "change:prompt_text change:ratio change:char_count change:enhancing change:diff change:can_undo change:generate_label change:generate_ready change:generate_hint change:spent_text change:save_dir change:examples change:ratio_choices": drawPrompt,
    "change:error": drawError,
    "change:runs": drawRuns,
    "change:shown": () => { drawStatus(); drawStage(); drawCards(); },
    "change:saved_text": drawStatus,
    "change:poster_note": drawCards,
  };
  for (const [events, handler] of Object.entries(listeners)) {
    for (const name of events.split(" ")) { model.on(name, handler); cleanups.push(() => model.off(name, handler)); }
  }
  drawHead(); drawImage(); drawPrompt(); drawError(); drawRuns();
  const timer = setInterval(tick, TICK_MS);

  return () => {
    clearInterval(timer);
    for (const cleanup of cleanups) cleanup();
    for (const link of [...blobs.values(), ...posters.values()]) URL.revokeObjectURL(link);
    if (previewUrl) URL.revokeObjectURL(previewUrl);
  };
}

export default { render };
