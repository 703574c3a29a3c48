// Progressive enhancement of the upload form: drag-and-drop, previews, one /predict call per image,
// a "Why?" button per result that asks /explain for the heatmap overlay, and (with the prediction log
// on) a "Wrong?" button that sends what the photo really shows to /feedback.
(function () {
  "use strict";
  const form = document.getElementById("upload");
  const input = document.getElementById("image");
  const zone = document.getElementById("dropzone");
  const list = document.getElementById("results");
  const status = document.getElementById("status");
  if (!form || !window.fetch) return;
  let display = {};
  try { display = JSON.parse(list.dataset.display || "{}"); } catch (e) { display = {}; }
  const shown = function (label) { return display[label] || label; };
  const article = function (name) { return ("aeiou".indexOf(name.charAt(0).toLowerCase()) >= 0 ? "an " : "a ") + name; };

  // One flow with JavaScript: choosing or dropping photos classifies them at once, so the form's own
  // button and "required" (which would complain about the input emptied after each run) are not needed.
  input.required = false;
  form.querySelectorAll("button[type=submit], .options").forEach(function (node) { node.hidden = true; });
  status.textContent = "Each photo is classified as soon as you choose or drop it.";

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // With API keys on, the key typed once is kept for this tab (sessionStorage) and sent as X-API-Key.
  const keyInput = document.getElementById("api-key");
  if (keyInput) {
    keyInput.required = false;
    try { keyInput.value = sessionStorage.getItem("api-key") || ""; } catch (e) { /* storage off */ }
    keyInput.addEventListener("change", function () {
      try { sessionStorage.setItem("api-key", keyInput.value); } catch (e) { /* storage off */ }
    });
  }
  function withKey(headers) {
    if (keyInput && keyInput.value) headers["X-API-Key"] = keyInput.value;
    return headers;
  }

  async function post(url, file) {
    const data = new FormData();
    data.append("image", file, file.name);
    const resp = await fetch(url, { method: "POST", body: data, headers: withKey({ Accept: "application/json" }) });
    let json = null;
    try { json = await resp.json(); } catch (e) { json = null; }
    if (!resp.ok) throw new Error((json && json.error) || ("HTTP " + resp.status));
    return json;
  }

  function card(file) {
    const li = el("li", "card");
    const pics = el("div", "pics");
    const img = el("img");
    img.alt = file.name;
    img.src = URL.createObjectURL(file);
    img.onload = function () { URL.revokeObjectURL(img.src); };
    img.onerror = function () { URL.revokeObjectURL(img.src); img.remove(); };
    pics.append(img);
    const body = el("div", "body");
    body.append(el("div", "name", file.name), el("div", "label", "…"));
    li.append(pics, body);
    list.prepend(li);
    return body;
  }

  function whyButton(body, file) {
    const button = el("button", "why-button", "Why?");
    button.type = "button";
    const note = el("p", "why");
    button.addEventListener("click", async function () {
      const pics = body.parentElement.querySelector(".pics");
      const existing = pics.querySelector(".overlay");
      if (existing) {  // toggle an overlay already fetched
        existing.hidden = !existing.hidden;
        note.hidden = existing.hidden;
        button.textContent = existing.hidden ? "Why?" : "Hide why";
        return;
      }
      button.disabled = true;
      button.textContent = "Explaining…";
      try {
        const json = await post("/explain", file);
        const overlay = el("img", "overlay");
        overlay.alt = "why: heatmap over " + file.name;
        overlay.src = "data:image/png;base64," + json.overlay_png;
        pics.append(overlay);
        note.textContent = "Highlighted areas moved the answer (" + shown(json.looks_like || json.label) + ") most (" +
          json.method + ").";
        note.hidden = false;
        button.textContent = "Hide why";
      } catch (e) {
        note.textContent = "No explanation: " + e.message;
        note.className = "why error";
        button.textContent = "Why?";
      }
      button.disabled = false;
    });
    body.append(button, note);
  }

  function wrongButton(body, data) {
    const button = el("button", "wrong-button", "Wrong?");
    button.type = "button";
    const box = el("div", "wrong");
    box.hidden = true;
    box.append(el("span", "", "It is: "));
    const answer = el("span", "answer");
    const choices = Object.keys(display).concat(["neither"]);
    choices.forEach(function (label) {
      const choice = el("button", "", label === "neither" ? "neither" : shown(label));
      choice.type = "button";
      choice.dataset.label = label;
      choice.addEventListener("click", async function () {
        box.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
        try {
          const resp = await fetch("/feedback", { method: "POST", headers: withKey({ "Content-Type": "application/json" }),
            body: JSON.stringify({ request_id: data.request_id, index: 0, label: label }) });
          let json = null;
          try { json = await resp.json(); } catch (e) { json = null; }
          if (!resp.ok) throw new Error((json && json.error) || ("HTTP " + resp.status));
          answer.textContent = "Thanks: recorded as " + (json.label === "neither" ? "neither" : shown(json.label)) +
            (json.agreed ? " (the model agreed)." : " (the model said " + shown(json.served) + ").");
        } catch (e) {
          answer.textContent = "Not recorded: " + e.message;
          answer.className = "answer error";
          box.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
        }
      });
      box.append(choice);
    });
    box.append(answer);
    button.addEventListener("click", function () { box.hidden = !box.hidden; });
    body.append(button, box);
  }

  function show(body, data, file) {
    const label = body.querySelector(".label");
    const pct = (data.confidence * 100).toFixed(0) + "%";
    if (data.abstained) {  // "neither": say so, and what it looked most like; the bars and "Why?" stay
      body.parentElement.classList.add("abstained");
      label.textContent = (list.dataset.neither || "This doesn't look like anything the model knows") + " ";
      label.append(el("span", "", "(looks most like " + article(shown(data.looks_like)) + ", " + pct + ")"));
    } else if (data.state === "not_sure") {  // an answer, but flagged: shown apart from a sure one
      body.parentElement.classList.add("unsure");
      label.textContent = "Not sure: looks most like " + article(shown(data.label)) + " ";
      label.append(el("span", "", "(" + pct + ")"));
    } else {
      label.textContent = shown(data.label) + " ";
      label.append(el("span", "", (data.confidence * 100).toFixed(1) + "%"));
    }
    Object.entries(data.probabilities).sort(function (a, b) { return b[1] - a[1]; }).forEach(function (kv) {
      const row = el("div", "bar");
      const bar = el("progress");
      bar.max = 1;
      bar.value = kv[1];
      row.append(el("span", "cls", shown(kv[0])), bar, el("span", "pct", (kv[1] * 100).toFixed(1) + "%"));
      body.append(row);
    });
    whyButton(body, file);
    if (list.dataset.feedback === "on" && data.request_id) wrongButton(body, data);
  }

  function fail(body, message) {
    body.parentElement.classList.add("failed");
    body.querySelector(".label").remove();
    body.append(el("p", "error", message));
  }

  async function classify(file) {
    const body = card(file);
    try {
      show(body, await post("/predict", file), file);
    } catch (e) {
      fail(body, e instanceof TypeError ? "network error: " + e.message : e.message);
    }
  }

  async function run(files) {
    const images = Array.from(files);
    if (!images.length) {
      status.textContent = "Choose or drop one or more photos first.";
      return;
    }
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
