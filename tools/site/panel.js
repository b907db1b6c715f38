// Kernel-free panels (tools/build_site.py): each control indexes a grid of pre-rendered frames.
// data-shape: values per control; data-reasons: {frame: why a control has no effect};
// data-disabled: {frame: [controls with no effect there]} (the view's own `inactive`).
document.querySelectorAll(".fm-panel").forEach((panel) => {
  const shape = JSON.parse(panel.dataset.shape), base = panel.dataset.base;
  const reasons = JSON.parse(panel.dataset.reasons);
  const disabled = JSON.parse(panel.dataset.disabled);
  const inputs = [...panel.querySelectorAll("[data-axis]")];
  const img = panel.querySelector("img"), why = panel.querySelector(".fm-why");
  const show = () => {
    let index = 0;
    inputs.forEach((el, k) => { index = index * shape[k] + Number(el.value);
      if (el.type === "range") el.nextElementSibling.textContent =
        JSON.parse(el.dataset.labels)[Number(el.value)]; });
    img.src = `${base}${index}.webp`;
    why.textContent = reasons[index] || "";
    inputs.forEach((el, k) => { el.disabled = (disabled[index] || []).includes(k); });
  };
  inputs.forEach((el) => el.addEventListener("input", show));
  const play = panel.querySelector(".fm-play");
  if (play) {
    const t = panel.querySelector("[data-name='t']");
    let timer = null;
    play.addEventListener("click", () => {
      if (timer) { clearInterval(timer); timer = null; play.textContent = "▶ play t"; return; }
      if (Number(t.value) === Number(t.max)) { t.value = 0; show(); }
      play.textContent = "⏸ pause";
      const stop = () => { clearInterval(timer); timer = null; play.textContent = "▶ play t"; };
      timer = setInterval(() => {
        t.value = Number(t.value) + 1;
        show();
        if (Number(t.value) >= Number(t.max)) stop();
      }, 100);  // 10 pictures a second (the course's bar: >= 8 while t plays)
    });
  }
  show();
  // Fetch every frame once the page is idle, so that later moves swap instantly.
  const total = shape.reduce((a, b) => a * b, 1);
  setTimeout(() => { for (let i = 0; i < total; i++) new Image().src = `${base}${i}.webp`; }, 500);
});
