// Progressive enhancement of the upload form: drag-and-drop, previews, one /predict call per image.
(function () {
  "use strict";
  const form = document.getElementById("upload");
  const input = document.getElementById("image");
  const zone = document.getElementById("dropzone");
  const list = document.getElementById("results");
  const status = document.getElementById("status");
  if (!form || !window.fetch) return;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function card(file) {
    const li = el("li", "card");
    const img = el("img");
    img.alt = file.name;
    img.src = URL.createObjectURL(file);
    img.onload = function () { URL.revokeObjectURL(img.src); };
    img.onerror = function () { URL.revokeObjectURL(img.src); img.remove(); };
    const body = el("div", "body");
    body.append(el("div", "name", file.name), el("div", "label", "…"));
    li.append(img, body);
    list.prepend(li);
    return body;
  }

  function show(body, data) {
    body.querySelector(".label").textContent = data.label + " ";
    body.querySelector(".label").append(el("span", "", (data.confidence * 100).toFixed(1) + "%"));
    Object.entries(data.probabilities).sort(function (a, b) { return b[1] - a[1]; }).forEach(function (kv) {
      const row = el("div", "bar");
      const bar = el("progress");
      bar.max = 1;
      bar.value = kv[1];
      row.append(el("span", "cls", kv[0]), bar, el("span", "pct", (kv[1] * 100).toFixed(1) + "%"));
      body.append(row);
    });
  }

  function fail(body, message) {
    body.parentElement.classList.add("failed");
    body.querySelector(".label").remove();
    body.append(el("p", "error", message));
  }

  async function classify(file) {
    const body = card(file);
    const data = new FormData();
    data.append("image", file, file.name);
    try {
      const resp = await fetch("/predict", { method: "POST", body: data, headers: { Accept: "application/json" } });
      let json = null;
      try { json = await resp.json(); } catch (e) { json = null; }
      if (!resp.ok) {
        fail(body, (json && json.error) || ("HTTP " + resp.status));
      } else {
        show(body, json);
      }
    } catch (e) {
      fail(body, "network error: " + e.message);
    }
  }

  async function run(files) {
    const images = Array.from(files);
    if (!images.length) return;
    status.textContent = "Classifying " + images.length + " image(s)…";
    await Promise.all(images.map(classify));
    status.textContent = "Done: " + images.length + " image(s).";
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    run(input.files);
    form.reset();
  });
  input.addEventListener("change", function () { run(input.files); form.reset(); });
  ["dragenter", "dragover"].forEach(function (name) {
    zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (name) {
    zone.addEventListener(name, function (event) { event.preventDefault(); zone.classList.remove("over"); });
  });
  zone.addEventListener("drop", function (event) { run(event.dataTransfer.files); });
})();
