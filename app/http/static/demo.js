// The demo page: a plain client of latentserve's HTTP API, no server logic of its own.
// Every answer shown comes from /models, /classify, /reconstruct, /embed or /similar.

const $ = (id) => document.getElementById(id);
const BRUSH = 22; // px on the 280 px canvas: about a pen stroke once framed to 28x28
const TOP_K = 5;
const NEIGHBOURS = 8;
const KEY_STORAGE = "latentserve-api-key";

const state = {
  models: [],
  apiKey: sessionStorage.getItem(KEY_STORAGE) || "",
  source: null, // null (empty), "canvas" (drawn), or a File (chosen or dropped)
  dirty: false,
  running: false,
};

class ServiceError extends Error {
  constructor(message, status, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

// --- the HTTP API -------------------------------------------------------------------------

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (state.apiKey) headers.set("Authorization", `Bearer ${state.apiKey}`);
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (err) {
    throw new ServiceError(`The service did not answer (${err.message}).`, 0, null);
  }
  if (response.ok) return response;
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    const error = body.error;
    if (error && typeof error.message === "string") message = error.message;
    else if (typeof error === "string") message = error;
  } catch {
    // not JSON (a proxy's page, say): the status line is the message
  }
  throw new ServiceError(message, response.status, response.headers.get("Retry-After"));
}

function imageForm(blob) {
  const form = new FormData();
  form.append("file", blob, blob.name || "drawing.png");
  return { method: "POST", body: form };
}

// --- messages -------------------------------------------------------------------------------

function showError(err) {
  const box = $("error");
  let text = err.status ? `The service answered ${err.status}: ${err.message}` : err.message;
  if (err.retryAfter) text += ` Try again in ${err.retryAfter} s.`;
  if (err.status === 401) {
    $("key-form").hidden = false;
    text = `This service needs an API key: ${err.message}`;
    $("api-key").focus();
  }
  box.textContent = text;
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

// --- models ---------------------------------------------------------------------------------

function selectedModel() {
  return state.models.find((m) => m.name === $("model").value);
}

async function loadModels() {
  const body = await (await api("/models")).json();
  state.models = body.models;
  const select = $("model");
  const previous = select.value;
  select.replaceChildren(
    ...state.models.map((m) => new Option(`${m.name} (v${m.version})`, m.name)),
  );
  const wanted = state.models.find((m) => m.name === previous) || state.models.find((m) => m.default);
  if (wanted) select.value = wanted.name;
  describeModel();
}

function describeModel() {
  const model = selectedModel();
  if (!model) return;
  const item = model.dataset.item || "image";
  $("model-info").textContent = `${model.class_names.length} classes of ${item}s`;
  $("hint").textContent = `Draw a ${item} in light strokes, or drop a photo or scan of one.`;
}

// --- input ----------------------------------------------------------------------------------

const canvas = $("canvas");
const pen = canvas.getContext("2d");

function blank() {
  pen.fillStyle = "#000";
  pen.fillRect(0, 0, canvas.width, canvas.height);
}

function point(event) {
  const box = canvas.getBoundingClientRect();
  return [
    ((event.clientX - box.left) * canvas.width) / box.width,
    ((event.clientY - box.top) * canvas.height) / box.height,
  ];
}

let last = null;
canvas.addEventListener("pointerdown", (event) => {
  if (state.source !== "canvas") blank(); // drawing replaces a chosen file
  state.source = "canvas";
  canvas.setPointerCapture(event.pointerId);
  last = point(event);
  stroke(last, last);
});
canvas.addEventListener("pointermove", (event) => {
  if (!last) return;
  const next = point(event);
  stroke(last, next);
  last = next;
});
for (const type of ["pointerup", "pointercancel"]) {
  canvas.addEventListener(type, () => {
    last = null;
  });
}

function stroke(from, to) {
  pen.strokeStyle = "#fff";
  pen.lineWidth = BRUSH;
  pen.lineCap = "round";
  pen.lineJoin = "round";
  pen.beginPath();
  pen.moveTo(...from);
  pen.lineTo(...to);
  pen.stroke();
  schedule(); // live: at most one update in flight, the latest drawing next
}

async function useFile(file) {
  if (!file) return;
  state.source = file;
  blank();
  try {
    const bitmap = await createImageBitmap(file);
    const scale = Math.min(canvas.width / bitmap.width, canvas.height / bitmap.height);
    const [w, h] = [bitmap.width * scale, bitmap.height * scale];
    pen.drawImage(bitmap, (canvas.width - w) / 2, (canvas.height - h) / 2, w, h);
  } catch {
    // no preview for what the browser cannot decode: the service says what is wrong with it
  }
  schedule();
}

$("file").addEventListener("change", (event) => {
  useFile(event.target.files[0]);
  event.target.value = ""; // choosing the same file again is a new choice
});
canvas.addEventListener("dragover", (event) => {
  event.preventDefault();
  canvas.classList.add("drop-target");
});
canvas.addEventListener("dragleave", () => canvas.classList.remove("drop-target"));
canvas.addEventListener("drop", (event) => {
  event.preventDefault();
  canvas.classList.remove("drop-target");
  useFile(event.dataTransfer.files[0]);
});
canvas.addEventListener("keydown", (event) => {
  if (event.key === "Delete" || event.key === "Backspace") clear();
});
$("clear").addEventListener("click", clear);

function clear() {
  state.source = null;
  blank();
  showEmpty();
}

function currentImage() {
  if (state.source === null) return Promise.resolve(null);
  if (state.source !== "canvas") return Promise.resolve(state.source);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

// --- updates --------------------------------------------------------------------------------

function schedule() {
  state.dirty = true;
  if (!state.running) run();
}

async function run() {
  state.running = true;
  while (state.dirty) {
    state.dirty = false;
    try {
      await update();
      clearError();
    } catch (err) {
      showEmpty(); // no answers left on screen that belong to another image
      $("prompt").hidden = true;
      showError(err);
    }
  }
  state.running = false;
}

async function update() {
  const model = selectedModel();
  const image = await currentImage();
  if (!model || !image) return showEmpty();
  // Pin the version, so that all four answers come from the same one during a rollout.
  const query = `model=${encodeURIComponent(model.name)}&version=${model.version}`;
  const [classified, rebuilt, embedded] = await Promise.all([
    api(`/classify?${query}&top_k=${TOP_K}&debug=framed`, imageForm(image)).then((r) => r.json()),
    api(`/reconstruct?${query}`, imageForm(image)).then((r) => r.json()),
    api(`/embed?${query}`, imageForm(image)).then((r) => r.json()),
  ]);
  const prediction = classified.predictions[0];
  showPrediction(model, prediction);
  showFramed(classified.framed[0]);
  showReconstruction(rebuilt.reconstructions[0]);
  showLatent(model, embedded.embeddings[0]);
  if (model.index) {
    const body = JSON.stringify({ embedding: embedded.embeddings[0] });
    const found = await api(`/similar?${query}&k=${NEIGHBOURS}&images=true`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body,
    }).then((r) => r.json());
    showNeighbours(found.neighbours[0]);
  } else {
    showNeighbours(null);
  }
}

// --- rendering ------------------------------------------------------------------------------

function showEmpty() {
  $("prompt").hidden = false;
  $("ood").hidden = true;
  $("bars").replaceChildren();
  $("pictures").hidden = true;
  showNeighbours(null);
}

function showPrediction(model, prediction) {
  $("prompt").hidden = true;
  const ood = $("ood");
  if (prediction.in_distribution === false) {
    const item = model.dataset.item || `image like ${model.name}'s training images`;
    ood.textContent =
      `This does not look like a ${item} (out-of-distribution score ` +
      `${prediction.ood_score.toFixed(3)}): the classes below are a guess.`;
    ood.hidden = false;
  } else {
    ood.hidden = true;
  }
  $("bars").replaceChildren(
    ...prediction.top_k.map((entry) => {
      const item = document.createElement("li");
      const percent = (entry.confidence * 100).toFixed(1);
      item.innerHTML = '<span class="name"></span><span class="bar"><span></span></span><span class="value"></span>';
      item.querySelector(".name").textContent = entry.class_name;
      item.querySelector(".bar span").style.width = `${percent}%`;
      item.querySelector(".value").textContent = `${percent}%`;
      item.setAttribute("aria-label", `${entry.class_name}: ${percent}%`);
      return item;
    }),
  );
}

function showFramed(png) {
  // The upload after polarity, ground removal, cropping and fitting: a framing problem shows
  // here, a model problem does not.
  $("framed").src = `data:image/png;base64,${png}`;
}

function showReconstruction(reconstruction) {
  const img = $("reconstruction");
  img.src = `data:image/png;base64,${reconstruction.image_png}`;
  $("pictures").hidden = false;
  $("reconstruction-error").textContent = `error ${reconstruction.error.toFixed(4)}`;
}

function showLatent(model, latent) {
  // A spatial latent (h, w, channels) as the mean over channels; any other as a near-square.
  const shape = model.latent_shape;
  const side = Math.ceil(Math.sqrt(latent.length));
  const [h, w, channels] = shape.length === 3 ? shape : [Math.ceil(latent.length / side), side, 1];
  const means = new Float32Array(h * w);
  for (let i = 0; i < latent.length; i++) means[Math.floor(i / channels)] += latent[i] / channels;
  const [low, high] = [Math.min(...means), Math.max(...means)];
  const target = $("latent");
  target.width = w;
  target.height = h;
  const picture = target.getContext("2d").createImageData(w, h);
  means.forEach((value, i) => {
    const level = high > low ? Math.round((255 * (value - low)) / (high - low)) : 0;
    picture.data.set([level, level, level, 255], i * 4);
  });
  target.getContext("2d").putImageData(picture, 0, 0);
  $("latent-caption").textContent =
    shape.length === 3 ? `latent: mean of ${channels} channels, ${h}×${w}` : `latent (${latent.length} values)`;
}

function showNeighbours(neighbours) {
  const title = $("neighbours-title");
  title.hidden = !neighbours;
  const pictures = (neighbours || []).some((n) => n.image_png);
  const classes = (neighbours || []).some((n) => n.class_name);
  title.textContent = pictures
    ? "Nearest training images"
    : classes
      ? "Nearest training images (this version's index stores their classes, not the images)"
      : "Nearest training images, by id (this version's index stores neither images nor classes)";
  $("neighbours").replaceChildren(
    ...(neighbours || []).map((n) => {
      const item = document.createElement("li");
      if (n.image_png) {
        const picture = document.createElement("img");
        picture.src = `data:image/png;base64,${n.image_png}`;
        picture.alt = `training image ${n.id}${n.class_name ? `, ${n.class_name}` : ""}`;
        item.append(picture);
      }
      const caption = document.createElement("span");
      caption.textContent = `${n.class_name ?? n.id} · ${n.distance.toFixed(3)}`;
      item.append(caption);
      return item;
    }),
  );
}

// --- start ----------------------------------------------------------------------------------

$("model").addEventListener("change", () => {
  describeModel();
  schedule();
});

$("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  state.apiKey = $("api-key").value.trim();
  sessionStorage.setItem(KEY_STORAGE, state.apiKey);
  await start();
});

async function start() {
  try {
    await loadModels();
    clearError();
    $("key-form").hidden = !state.apiKey;
    schedule();
  } catch (err) {
    showError(err);
  }
}

blank();
start();
