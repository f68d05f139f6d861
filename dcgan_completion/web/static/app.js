// dcgan-serve's page: open a photo, paint the hole (or pick a preset mask), complete it
// on the server and follow the search through server-sent events. No libraries.
"use strict";

const $ = (id) => document.getElementById(id);
const DISPLAY = 480; // the photo to paint on is shown this wide or high, whatever its size
const THUMB = 240; // and the search and its results this wide or high
const HOLE = "rgb(255, 40, 80)";

const state = {
  config: null,
  photo: null, // {id, name, width, height, url, aligned}
  strokes: [], // {erase, width, points: [{x, y}]} in photo pixels, or {clear: true}
  stroke: null,
  tool: "brush",
  preset: "",
  presetImage: null,
  iterationsEdited: false, // by hand: then a preset no longer sets them
  job: null,
  events: null,
};

// ------------------------------------------------------------------ talking to the server

async function api(path, options) {
  const response = await fetch(path, options);
  let body;
  try {
    body = await response.json();
  } catch (e) {
    body = { error: `${response.status} ${response.statusText}` };
  }
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function say(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function start() {
  try {
    state.config = await api("/api/config");
  } catch (e) {
    say(`cannot reach the server: ${e.message}`, true);
    return;
  }
  const c = state.config;
  for (const name of c.examples) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "example";
    button.title = name;
    button.dataset.example = name;
    const img = document.createElement("img");
    img.src = `/api/examples/${encodeURIComponent(name)}`;
    img.alt = name;
    button.append(img);
    button.addEventListener("click", () => openPhoto({ example: name }));
    $("examples").append(button);
  }
  for (const preset of c.presets) {
    const option = document.createElement("option");
    option.value = option.textContent = preset;
    $("preset").append(option);
  }
  $("iterations").max = c.max_iterations;
  $("iterations").value = c.default_iterations;
  say(`photos up to ${c.max_upload_mb} MB and ${c.max_megapixels} megapixels; the model completes ${c.size}x${c.size} aligned faces`);
}

async function openPhoto(fields) {
  const form = new FormData();
  for (const [key, value] of Object.entries(fields)) form.append(key, value);
  say("opening the photo…");
  try {
    showPhoto(await api("/api/photos", { method: "POST", body: form }));
  } catch (e) {
    say(e.message, true);
  }
}

// ------------------------------------------------------------------ the photo and its hole

function displaySize(photo, side) {
  const scale = Math.min(side / photo.width, side / photo.height);
  return { width: Math.round(photo.width * scale), height: Math.round(photo.height * scale), scale };
}

function fitImage(img, photo, side = DISPLAY) {
  const d = displaySize(photo, side);
  img.style.width = `${d.width}px`;
  img.style.height = `${d.height}px`;
  img.classList.toggle("pixelated", d.scale > 1);
}

function showPhoto(photo) {
  stopFollowing();
  state.photo = photo;
  state.strokes = [];
  state.preset = "";
  $("preset").value = "";
  const canvas = $("mask");
  canvas.width = photo.width;
  canvas.height = photo.height;
  fitImage($("photo"), photo);
  fitImage(canvas, photo);
  $("photo").src = photo.url;
  $("stage").hidden = false;
  $("empty").hidden = true;
  $("live").hidden = true;
  $("result").hidden = true;
  $("complete").disabled = false;
  redraw();
  const kind = photo.aligned
    ? "an aligned face: completed directly"
    : "a photo: each face the hole touches is aligned, completed and pasted back";
  say(`${photo.name}, ${photo.width}x${photo.height}, ${kind}. Paint over what should go.`);
}

function point(event) {
  const canvas = $("mask");
  const box = canvas.getBoundingClientRect();
  return {
    x: ((event.clientX - box.left) * canvas.width) / box.width,
    y: ((event.clientY - box.top) * canvas.height) / box.height,
  };
}

function brushWidth() {
  // The slider is in screen pixels; the stroke is drawn in photo pixels.
  const canvas = $("mask");
  return (Number($("size").value) * canvas.width) / canvas.getBoundingClientRect().width;
}

function drawStroke(ctx, stroke) {
  ctx.globalCompositeOperation = stroke.erase ? "destination-out" : "source-over";
  ctx.strokeStyle = ctx.fillStyle = HOLE;
  ctx.lineWidth = stroke.width;
  ctx.lineCap = ctx.lineJoin = "round";
  const [first, ...rest] = stroke.points;
  ctx.beginPath();
  if (rest.length === 0) {
    ctx.arc(first.x, first.y, stroke.width / 2, 0, 2 * Math.PI);
    ctx.fill();
  } else {
    ctx.moveTo(first.x, first.y);
    for (const p of rest) ctx.lineTo(p.x, p.y);
    ctx.stroke();
  }
  ctx.globalCompositeOperation = "source-over";
}

function redraw() {
  const canvas = $("mask");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (state.preset) {
    drawPreset(ctx);
    return;
  }
  const lastClear = state.strokes.map((s) => !!s.clear).lastIndexOf(true);
  for (const stroke of state.strokes.slice(lastClear + 1)) drawStroke(ctx, stroke);
}

function drawPreset(ctx) {
  const hint = $("preset-hint");
  if (!state.photo.aligned) {
    hint.textContent = `"${state.preset}" is drawn on every aligned face the server finds in the photo.`;
    return;
  }
  hint.textContent = "";
  if (!state.presetImage) return;
  // The preset's mask is white where the face is kept: paint the rest.
  ctx.drawImage(state.presetImage, 0, 0, ctx.canvas.width, ctx.canvas.height);
  const pixels = ctx.getImageData(0, 0, ctx.canvas.width, ctx.canvas.height);
  for (let i = 0; i < pixels.data.length; i += 4) {
    const hole = pixels.data[i] < 128;
    pixels.data.set([255, 40, 80, hole ? 255 : 0], i);
  }
  ctx.putImageData(pixels, 0, 0);
}

function choosePreset(preset) {
  state.preset = preset;
  if (!state.iterationsEdited) {
    // The server's default for the mask (random80 needs more than the rest).
    $("iterations").value = state.config.preset_iterations[preset] ?? state.config.default_iterations;
  }
  state.presetImage = null;
  $("preset-hint").textContent = "";
  if (preset && state.photo && state.photo.aligned) {
    const img = new Image();
    img.onload = () => {
      state.presetImage = img;
      redraw();
    };
    img.src = `/api/masks/${encodeURIComponent(preset)}.png?seed=${Number($("seed").value) || 0}`;
  }
  if (state.photo) redraw();
}

function hasHole() {
  const canvas = $("mask");
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  for (let i = 3; i < data.length; i += 4) if (data[i] >= 128) return true;
  return false;
}

function maskBlob() {
  // White = keep, black = fill, the photo's size: what dcgan-complete --maskFile takes.
  const source = $("mask");
  const canvas = document.createElement("canvas");
  canvas.width = source.width;
  canvas.height = source.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(source, 0, 0);
  ctx.globalCompositeOperation = "source-in";
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.globalCompositeOperation = "destination-over";
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

function setTool(tool) {
  state.tool = tool;
  $("brush").setAttribute("aria-pressed", String(tool === "brush"));
  $("eraser").setAttribute("aria-pressed", String(tool === "eraser"));
}

function wirePainting() {
  const canvas = $("mask");
  canvas.addEventListener("pointerdown", (event) => {
    if (!state.photo || state.job) return;
    canvas.setPointerCapture(event.pointerId);
    if (state.preset) {
      // Painting replaces the preset mask.
      $("preset").value = "";
      choosePreset("");
    }
    state.stroke = { erase: state.tool === "eraser", width: brushWidth(), points: [point(event)] };
    state.strokes.push(state.stroke);
    drawStroke(canvas.getContext("2d"), state.stroke);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!state.stroke) return;
    const points = state.stroke.points;
    points.push(point(event));
    // Only the new segment: round caps join it to the stroke so far.
    drawStroke(canvas.getContext("2d"), { ...state.stroke, points: points.slice(-2) });
  });
  const end = () => {
    state.stroke = null;
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  $("brush").addEventListener("click", () => setTool("brush"));
  $("eraser").addEventListener("click", () => setTool("eraser"));
  $("size").addEventListener("input", () => ($("size-value").textContent = $("size").value));
  $("undo").addEventListener("click", () => {
    state.strokes.pop();
    redraw();
  });
  $("clear").addEventListener("click", () => {
    if (state.strokes.length) state.strokes.push({ clear: true });
    redraw();
  });
  $("preset").addEventListener("change", () => choosePreset($("preset").value));
  $("iterations").addEventListener("input", () => (state.iterationsEdited = true));
  $("seed").addEventListener("change", () => state.preset && choosePreset(state.preset));
}

// ------------------------------------------------------------------ completing

async function complete() {
  if (!state.photo) return;
  const form = new FormData();
  form.append("photo", state.photo.id);
  if (state.preset) {
    form.append("mask_type", state.preset);
  } else {
    if (!hasHole()) {
      say("paint over what should go first (or choose a preset mask)", true);
      return;
    }
    form.append("mask", await maskBlob(), "mask.png");
  }
  form.append("n_iter", $("iterations").value);
  form.append("blend", $("blend").checked ? "on" : "off");
  form.append("seed", $("seed").value || "0");
  try {
    follow(await api("/api/jobs", { method: "POST", body: form }));
  } catch (e) {
    say(e.message, true);
  }
}

function busy(on) {
  $("complete").disabled = on || !state.photo;
  $("cancel").disabled = !on;
  $("progress").hidden = !on;
}

function follow(job) {
  state.job = job;
  busy(true);
  $("progress").value = 0;
  $("result").hidden = true;
  fitImage($("preview"), state.photo, THUMB);
  say("queued…");
  const events = new EventSource(job.events);
  state.events = events;
  const on = (name, handle) => events.addEventListener(name, (e) => handle(JSON.parse(e.data)));
  on("queued", (d) =>
    say(d.position === 0 ? "starting…" : `waiting: position ${d.position} in the queue (${d.position} search${d.position > 1 ? "es" : ""} before yours)`)
  );
  on("started", () => say("searching…"));
  on("progress", (d) => {
    $("progress").value = d.iteration / d.n_iter;
    $("preview").src = d.preview;
    $("live").hidden = false;
    say(`iteration ${d.iteration} of ${d.n_iter} (loss ${d.loss.toFixed(1)})`);
  });
  on("done", (d) => {
    stopFollowing();
    showResult(d);
  });
  on("cancelled", () => {
    stopFollowing();
    say("cancelled");
  });
  on("failed", (d) => {
    stopFollowing();
    say(d.error, true);
  });
  events.onerror = () => {
    if (state.events === events) {
      stopFollowing();
      say("lost the connection to the server", true);
    }
  };
}

function stopFollowing() {
  if (state.events) state.events.close();
  state.events = null;
  state.job = null;
  busy(false);
}

function showResult(d) {
  for (const [id, url] of [["before", d.before], ["after", d.result], ["gif", d.gif]]) {
    fitImage($(id), state.photo, THUMB);
    $(id).src = url;
  }
  $("download").href = d.download;
  $("live").hidden = true;
  $("result").hidden = false;
  const faces = `${d.faces} face${d.faces === 1 ? "" : "s"} completed`;
  say([`done: ${faces}`, ...d.notes].join(". "));
}

async function cancel() {
  if (!state.job) return;
  try {
    await api(`/api/jobs/${state.job.id}/cancel`, { method: "POST" });
    say("cancelling…");
  } catch (e) {
    say(e.message, true);
  }
}

$("file").addEventListener("change", () => {
  const file = $("file").files[0];
  if (file) openPhoto({ photo: file });
  $("file").value = "";
});
$("complete").addEventListener("click", complete);
$("cancel").addEventListener("click", cancel);
wirePainting();
start();
