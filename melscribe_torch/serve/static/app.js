// The page's only script: POST /recommend, then draw the list. No framework, no build step.
"use strict";

const form = document.getElementById("search");
const input = document.getElementById("request");
const retriever = document.getElementById("retriever");
const statusLine = document.getElementById("status");
const results = document.getElementById("results");

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text; // textContent: catalog text is never HTML
  return node;
}

function drawResult(r) {
  const item = el("li", "result");
  item.dataset.id = r.id;
  const head = el("div", "head");
  const name = [r.title, r.artist].filter(Boolean).join(" — ");
  head.append(el("span", "song-id", r.id));
  if (name) head.append(el("span", "name", name));
  const score = el("span", "score", r.score.toFixed(3));
  score.title = r.score_type;
  head.append(score, el("span", "score-type", r.score_type));
  if (r.link) {
    const a = el("a", "link", "listen");
    a.href = r.link;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    head.append(a);
  }
  const matching = new Map(r.matching.map((m) => [m.descriptor, m.score]));
  const tags = el("ul", "descriptors");
  for (const d of r.descriptors) {
    const tag = el("li", matching.has(d) ? "descriptor match" : "descriptor", d);
    if (matching.has(d)) tag.title = "similarity to the request: " + matching.get(d).toFixed(2);
    tags.append(tag);
  }
  item.append(head, tags);
  return item;
}

async function search(text) {
  statusLine.textContent = "Searching…";
  results.replaceChildren();
  const body = { request: text, k: 10 };
  if (retriever.value) body.retriever = retriever.value;
  try {
    const response = await fetch("/recommend", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const payload = await response.json();
    if (!response.ok) {
      statusLine.textContent = "Error: " + payload.error;
      return;
    }
    results.replaceChildren(...payload.results.map(drawResult));
    statusLine.textContent = payload.results.length + " songs, " + payload.retriever + " retriever";
  } catch (err) {
    statusLine.textContent = "Error: " + err;
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  search(input.value);
});
for (const button of document.querySelectorAll(".example")) {
  button.addEventListener("click", () => {
    input.value = button.textContent;
    search(input.value);
  });
}
fetch("/version")
  .then((r) => r.json())
  .then((v) => {
    const m = v.index;
    document.getElementById("about").textContent =
      m.num_songs + " songs · model " + v.model.name_or_path + " · melscribe-torch " + v.package_version;
  })
  .catch(() => {});
