// Click an image of a grid: its scores, prompt, seed and provenance in the side panel.
(function () {
  const panel = document.getElementById("details");
  if (!panel) return;
  const list = document.getElementById("details-list");
  let selected = null;
  document.addEventListener("click", (event) => {
    const img = event.target.closest ? event.target.closest("img.cell") : null;
    if (!img || !img.dataset.details) return;
    if (selected) selected.classList.remove("selected");
    selected = img;
    img.classList.add("selected");
    document.getElementById("details-image").src = img.dataset.full;
    list.replaceChildren();
    for (const [key, value] of Object.entries(JSON.parse(img.dataset.details))) {
      const dt = document.createElement("dt");
      dt.textContent = key;
      const dd = document.createElement("dd");
      dd.textContent = value;
      list.append(dt, dd);
    }
    panel.hidden = false;
  });
  document.getElementById("details-close").addEventListener("click", () => {
    panel.hidden = true;
    if (selected) selected.classList.remove("selected");
  });
})();
