// srkit's web page: upload an image, upscale it on the server (see srkit/web/app.py), compare, download.
"use strict";

const $ = (id) => document.getElementById(id);
const CROP = 256; // crop canvas size in screen pixels
const page = { config: null, files: { image: null, hr: null }, results: [], truth: null, centre: [0, 0] };

async function init() {
  page.config = await (await fetch("/api/config")).json();
  const { max_bytes, max_pixels, max_waiting } = page.config.limits;
  $("limits").textContent =
    `Limits: uploads up to ${byteSize(max_bytes)} (image and ground truth together); images up to ` +
    `${max_pixels.toLocaleString("en")} pixels (each result has scale² times as many); one job at a time, ` +
    `up to ${max_waiting} waiting.`;
  buildScales();
  for (const kind of ["image", "hr"]) acceptFiles(kind);
  $("run").addEventListener("click", run);
  $("split").addEventListener("input", drawSplit);
  $("against").addEventListener("change", drawAgainst);
  $("zoom").addEventListener("change", drawCrops);
  window.addEventListener("resize", drawCrops);
  $("compare").addEventListener("click", (event) => {
    const rect = $("before").getBoundingClientRect();
    const factor = $("before").naturalWidth / rect.width;
    page.centre = [(event.clientX - rect.left) * factor, (event.clientY - rect.top) * factor];
    drawCrops();
  });
  $("run").disabled = false; // the button is disabled in the HTML until the page can run a job
}

function buildScales() {
  const scales = page.config.scales;
  const first = scales.find((s) => s.models.length) || scales[0];
  for (const { scale } of scales) {
    const label = document.createElement("label");
    label.innerHTML = `<input type="radio" name="scale" value="${scale}"> x${scale}`;
    label.firstChild.checked = scale === first.scale;
    label.firstChild.addEventListener("change", buildModels);
    $("scales").append(label);
  }
  buildModels();
}

function buildModels() {
  const entry = page.config.scales.find((s) => s.scale === scale());
  const legend = $("models").querySelector("legend");
  $("models").replaceChildren(legend);
  $("models").insertAdjacentHTML(
    "beforeend",
    '<label><input type="checkbox" checked disabled> bicubic <small>(baseline, always)</small></label>',
  );
  entry.models.forEach((m, i) => {
    const label = document.createElement("label");
    const set5 = m.set5 === null ? "" : `, Set5 ${m.set5.toFixed(2)} dB`;
    label.innerHTML = `<input type="checkbox" name="model" value="${m.id}"> ${m.id} ` +
      `<small>(${m.model}, ${m.params.toLocaleString("en")} parameters${set5})</small>`;
    label.firstChild.checked = i === 0;
    $("models").append(label);
  });
  if (!entry.models.length) $("models").insertAdjacentHTML("beforeend", "<small>no pretrained model at this scale yet</small>");
}

const scale = () => Number(document.querySelector('input[name="scale"]:checked').value);
const byteSize = (bytes) => (bytes < 1e6 ? `${Math.ceil(bytes / 1e3)} KB` : `${+(bytes / 1e6).toPrecision(3)} MB`);

// A drop zone and its file picker both set page.files[kind].
function acceptFiles(kind) {
  const zone = $(`${kind}-drop`);
  const choose = (file) => {
    page.files[kind] = file;
    $(`${kind}-name`).textContent = file ? `${file.name} (${byteSize(file.size)})` : "";
  };
  $(kind).addEventListener("change", () => choose($(kind).files[0] || null));
  if ($(kind).files.length) choose($(kind).files[0]); // chosen before this script was ready
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer.files.length) choose(event.dataTransfer.files[0]);
  });
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
  if (message) $("status").textContent = "";
}

async function run() {
  showError("");
  const { image, hr } = page.files;
  if (!image) return showError("choose an image to upscale");
  const bytes = image.size + (hr ? hr.size : 0);
  const limit = page.config.limits.max_bytes;
  if (bytes > limit) return showError(`the upload is ${byteSize(bytes)}; this server takes at most ${byteSize(limit)}`);
  const form = new FormData();
  form.append("image", image);
  if (hr) form.append("hr", hr);
  form.append("scale", scale());
  for (const box of document.querySelectorAll('input[name="model"]:checked')) form.append("model", box.value);
  $("run").disabled = true;
  $("status").textContent = "Uploading…";
  try {
    const response = await fetch("/api/upscale", { method: "POST", body: form });
    if (!response.ok) return showError((await response.json()).error);
    for await (const message of lines(response)) {
      if (message.state === "queued") {
        const jobs = message.ahead === 1 ? "1 job" : `${message.ahead} jobs`;
        $("status").textContent = `Waiting in line: ${jobs} ahead of yours…`;
      } else if (message.state === "running") {
        $("status").textContent = "Upscaling…";
      } else if (message.state === "done") {
        await showResults(message, image, hr);
        const waited = message.waited >= 0.5 ? ` after ${message.waited.toFixed(1)} s in line` : "";
        $("status").textContent = `Done${waited}.`;
      } else if (message.state === "error") {
        showError(message.error);
      }
    }
  } catch (error) {
    showError(`no answer from the server (${error.message})`);
  } finally {
    $("run").disabled = false;
  }
}

// The response's lines of JSON as they arrive (a result line holds megabytes of base64: no rescanning).
async function* lines(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let parts = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    let start = 0;
    for (let end; (end = value.indexOf("\n", start)) >= 0; start = end + 1) {
      parts.push(value.slice(start, end));
      yield JSON.parse(parts.join(""));
      parts = [];
    }
    parts.push(value.slice(start));
  }
}

async function showResults(message, image, hr) {
  for (const r of page.results) URL.revokeObjectURL(r.url);
  if (page.truth) URL.revokeObjectURL(page.truth.src);
  page.truth = hr ? await decoded(URL.createObjectURL(hr)) : null;
  const stem = image.name.replace(/\.[^.]*$/, "");
  page.results = await Promise.all(message.results.map(async (r) => {
    const blob = await (await fetch(`data:image/png;base64,${r.png}`)).blob();
    const url = URL.createObjectURL(blob);
    return { ...r, png: undefined, url, image: await decoded(url), file: `${stem}_${r.name}_x${message.scale}.png` };
  }));
  $("rows").replaceChildren(...page.results.map(row));
  const models = page.results.slice(1);
  $("against").replaceChildren(...models.map((r) => new Option(r.name, r.name)));
  $("against").disabled = !models.length;
  const { url, width, height } = page.results[0];
  $("before").src = url;
  await $("before").decode();
  $("results").hidden = false;
  // Small results are shown twice as large (pixels doubled, not smoothed) when the page has the room.
  const factor = Math.max(1, Math.min(2, Math.floor($("results").clientWidth / width)));
  $("before").style.width = `${width * factor}px`;
  $("shown").textContent = factor > 1 ? `Shown at ${factor}× (pixels doubled).` : "";
  page.centre = [width / 2, height / 2];
  drawAgainst();
}

async function decoded(url) {
  const image = new Image();
  image.src = url;
  await image.decode();
  return image;
}

function row(result) {
  const tr = document.createElement("tr");
  tr.dataset.name = result.name;
  const metric = (value, digits) => value === undefined ? "–" : value === "inf" ? "∞" : value.toFixed(digits);
  const cells = [result.name, `${result.width}×${result.height}`, `${(result.seconds * 1000).toFixed(0)} ms`,
    metric(result.psnr, 2), metric(result.ssim, 4)];
  for (const text of cells) tr.insertCell().textContent = text;
  const link = Object.assign(document.createElement("a"), { href: result.url, download: result.file, textContent: "download PNG" });
  link.className = "download";
  link.dataset.name = result.name;
  tr.insertCell().append(link);
  return tr;
}

function drawAgainst() {
  const other = page.results.find((r) => r.name === $("against").value);
  $("after").hidden = $("divider").hidden = !other;
  if (other) $("after").src = other.url;
  $("after-tag").textContent = other ? other.name : "no model chosen";
  drawSplit();
  drawCrops();
}

function drawSplit() {
  const split = $("split").value;
  $("after").style.clipPath = `inset(0 0 0 ${split}%)`;
  $("divider").style.left = `${split}%`;
}

// The same region of every result (and of the ground truth), nearest-neighbour zoomed, around page.centre.
function drawCrops() {
  if (!page.results.length) return;
  const zoom = Number($("zoom").value);
  const { width, height } = page.results[0];
  const size = Math.min(CROP / zoom, width, height);
  const left = Math.round(Math.min(Math.max(page.centre[0] - size / 2, 0), width - size));
  const top = Math.round(Math.min(Math.max(page.centre[1] - size / 2, 0), height - size));
  const shown = $("before").getBoundingClientRect().width / width;
  Object.assign($("box").style, {
    left: `${left * shown}px`, top: `${top * shown}px`, width: `${size * shown}px`, height: `${size * shown}px`,
  });
  const sources = page.results.map((r) => [r.name, r.image]);
  if (page.truth) sources.push(["ground truth", page.truth]);
  $("crops").replaceChildren(...sources.map(([name, image]) => {
    const canvas = Object.assign(document.createElement("canvas"), { width: CROP, height: CROP });
    const context = canvas.getContext("2d");
    context.imageSmoothingEnabled = false;
    context.drawImage(image, left, top, size, size, 0, 0, CROP, CROP);
    const figure = document.createElement("figure");
    figure.dataset.name = name;
    const caption = document.createElement("figcaption");
    caption.textContent = name;
    figure.append(canvas, caption);
    return figure;
  }));
}

init();
