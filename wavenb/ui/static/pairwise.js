// wavenb blind pairwise judge: two videos side by side, unlabelled; pick the better one.
// The page is told only "left" and "right" for the pair on screen: never which cell or prompt.

function button(text, onclick, primary) {
  const node = document.createElement("button");
  node.type = "button";
  node.className = primary ? "wnb-button wnb-primary" : "wnb-button";
  node.textContent = text;
  node.addEventListener("click", onclick);
  return node;
}

function render({ model, el }) {
  const counter = document.createElement("div");
  counter.className = "wnb-muted";
  const sides = { left: document.createElement("video"), right: document.createElement("video") };
  const urls = {};
  const stage = document.createElement("div");
  stage.className = "wnb-pair";
  for (const [side, video] of Object.entries(sides)) {
    Object.assign(video, { muted: true, loop: true, controls: true, playsInline: true, autoplay: true });
    video.className = "wnb-pair-video";
    video.setAttribute("aria-label", `${side} video`);
    stage.append(video);
  }
  const choose = (side) => model.send({ do: "choose", side });
  const buttons = [
    button("◀ Left is better", () => choose("left"), true),
    button("Same", () => choose("tie")),
    button("Right is better ▶", () => choose("right"), true),
    button("Skip", () => model.send({ do: "skip" })),
  ];
  const row = document.createElement("div");
  row.className = "wnb-grid-line";
  row.append(...buttons);
  const errors = document.createElement("div");
  errors.className = "wnb-grid-errors";
  const title = document.createElement("div");
  title.className = "wnb-grid-title";
  title.textContent = "Which video is better? (prompts hidden)";
  const root = document.createElement("div");
  root.className = "wnb wnb-grid wnb-pairwise";
  root.append(title, counter, stage, row, errors);
  el.append(root);

  const draw = () => {
    counter.textContent = model.get("counter");
    errors.textContent = model.get("errors") ? `⚠ ${model.get("errors")}` : "";
    for (const node of buttons) node.disabled = !model.get("active");
    stage.hidden = !model.get("active");
    for (const [side, video] of Object.entries(sides)) {
      if (urls[side]) URL.revokeObjectURL(urls[side]);
      urls[side] = null;
      video.removeAttribute("src");
      if (model.get("active")) model.send({ do: "video", side, position: model.get("position") });
    }
  };
  const onMessage = (message, buffers) => {
    if (message.kind !== "video" || !buffers?.length || message.position !== model.get("position")) return;
    urls[message.side] = URL.createObjectURL(new Blob([buffers[0]], { type: "video/mp4" }));
    sides[message.side].src = urls[message.side];
    sides[message.side].play().catch(() => {});
  };
  const names = ["change:position", "change:active"];
  const drawText = () => { errors.textContent = model.get("errors") ? `⚠ ${model.get("errors")}` : ""; counter.textContent = model.get("counter"); };
  for (const name of names) model.on(name, draw);
  model.on("change:errors", drawText);
  model.on("change:counter", drawText);
  model.on("msg:custom", onMessage);
  draw();
  return () => {
    for (const name of names) model.off(name, draw);
    model.off("change:errors", drawText);
    model.off("change:counter", drawText);
    model.off("msg:custom", onMessage);
    for (const url of Object.values(urls)) if (url) URL.revokeObjectURL(url);
  };
}

export default { render };
