// wavenb VideoView: one finished video, bounded to 60 % of the window's height. The MP4's bytes
// come from the kernel as a binary buffer when the player is drawn; they are not widget state.

function render({ model, el }) {
  const video = document.createElement("video");
  Object.assign(video, { controls: true, loop: true, muted: true, autoplay: true, playsInline: true });
  video.className = "wnb-video-player";
  video.setAttribute("aria-label", model.get("label"));
  const badge = document.createElement("span");
  badge.className = "wnb-video-badge";
  badge.textContent = "SANDBOX";
  const label = document.createElement("span");
  const download = document.createElement("button");
  download.type = "button";
  download.className = "wnb-video-download";
  download.textContent = "Download";
  download.disabled = true;
  const problem = document.createElement("div");
  problem.className = "wnb-video-problem";
  const caption = document.createElement("div");
  caption.className = "wnb-video-caption";
  caption.append(badge, label, download);
  const root = document.createElement("div");
  root.className = "wnb-video-view";
  root.append(video, caption, problem);
  el.append(root);

  let url = null;
  const draw = () => {
    badge.hidden = !model.get("sandbox");
    label.textContent = model.get("label");
    problem.textContent = model.get("problem");
  };
  const onMessage = (message, buffers) => {
    if (message.kind !== "video" || !buffers?.length) return;
    url = URL.createObjectURL(new Blob([buffers[0]], { type: "video/mp4" }));
    video.src = url;
    video.play().catch(() => {}); // autoplay refused: the controls are there
    download.disabled = false;
  };
  download.addEventListener("click", () => {
    if (!url) return;
    const link = document.createElement("a");
    Object.assign(link, { href: url, download: model.get("name") });
    document.body.append(link);
    link.click();
    link.remove();
  });
  model.on("msg:custom", onMessage);
  const names = ["change:label", "change:sandbox", "change:problem"];
  for (const name of names) model.on(name, draw);
  draw();
  model.send({ do: "video" });
  return () => {
    model.off("msg:custom", onMessage);
    for (const name of names) model.off(name, draw);
    if (url) URL.revokeObjectURL(url);
  };
}

export default { render };
