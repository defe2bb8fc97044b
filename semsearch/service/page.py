"""The search page served at `/`: one self-contained HTML document.

No build step and no external assets (it works offline): inline CSS and a little
plain JavaScript that calls POST /search (with the filter box's text as `where`, and
its error, such as an unknown field, shown as the status). Everything from the server is inserted as
text, never as HTML. Keyboard-only use: the question box has focus, Enter asks,
ArrowDown walks the answers, Escape returns to the box, "/" focuses it from anywhere.
When the server answers 401, a key field appears; the key stays in sessionStorage
(this tab only) and is sent as `Authorization: Bearer KEY`.
"""

from __future__ import annotations

import html

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>semsearch · __INDEX__</title>
<style>
  :root { color-scheme: light dark; --fg: #1b1f24; --muted: #5b636e; --bg: #fff;
          --card: #f6f8fa; --line: #d0d7de; --accent: #0a66c2; --warn-bg: #fff4e5;
          --warn: #8a4b00; --bar: #2da44e; }
  @media (prefers-color-scheme: dark) {
    :root { --fg: #e6edf3; --muted: #9aa4af; --bg: #0d1117; --card: #161b22;
            --line: #30363d; --accent: #58a6ff; --warn-bg: #3b2a12; --warn: #f0b35a;
            --bar: #3fb950; }
  }
  * { box-sizing: border-box; }
  body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif;
         color: var(--fg); background: var(--bg); }
  main { max-width: 52rem; margin: 0 auto; padding: 1.5rem 1rem 4rem; }
  h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
  .sub { color: var(--muted); margin: 0 0 1.25rem; font-size: .95rem; }
  form { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; }
  .grow { flex: 1 1 20rem; }
  .filter { flex: 1 1 12rem; }
  label { display: block; font-size: .85rem; color: var(--muted); margin-bottom: .15rem; }
  input, button { font: inherit; color: inherit; }
  input { width: 100%; padding: .55rem .7rem; border: 1px solid var(--line);
          border-radius: .4rem; background: var(--bg); }
  input[type=number] { width: 7rem; }
  button { padding: .55rem 1rem; border-radius: .4rem; border: 1px solid var(--accent);
           background: var(--accent); color: #fff; cursor: pointer; }
  button.plain { background: transparent; color: var(--accent); }
  :focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
  #keyform { margin-top: 1rem; padding: .75rem; border: 1px solid var(--line);
             border-radius: .5rem; background: var(--card); }
  #status { min-height: 1.5rem; margin: 1rem 0 .5rem; color: var(--muted); }
  #status.error { color: #cf222e; }
  #no-answer { padding: .75rem 1rem; border-radius: .5rem; background: var(--warn-bg);
               color: var(--warn); border: 1px solid var(--warn); margin-bottom: 1rem; }
  #no-answer strong { display: block; font-size: 1.05rem; }
  ol { list-style: none; padding: 0; margin: 0; }
  .hit { border: 1px solid var(--line); border-radius: .5rem; padding: .75rem 1rem;
         margin-bottom: .75rem; background: var(--card); }
  .hit.weak { opacity: .75; border-style: dashed; }
  .hit header { display: flex; gap: .75rem; align-items: center; flex-wrap: wrap; }
  .rank { font-weight: 700; }
  .score { font-variant-numeric: tabular-nums; font-weight: 600; }
  .bar { width: 6rem; height: .45rem; background: var(--line); border-radius: 1rem;
         overflow: hidden; }
  .bar span { display: block; height: 100%; background: var(--bar); }
  .id { color: var(--muted); font-size: .85rem; font-family: ui-monospace, monospace; }
  .matched { margin: .4rem 0 .2rem; color: var(--muted); }
  .matched q { color: var(--fg); }
  .answer { margin: .2rem 0 0; white-space: pre-wrap; }
  .meta, .parts { margin-top: .4rem; font-size: .8rem; color: var(--muted); }
  .weak-title { font-size: .95rem; color: var(--muted); margin: .5rem 0; }
  kbd { font: .8rem ui-monospace, monospace; border: 1px solid var(--line);
        border-radius: .25rem; padding: 0 .3rem; }
  .help { color: var(--muted); font-size: .85rem; margin-top: .5rem; }
  [hidden] { display: none !important; }
</style>
</head>
<body>
<main>
  <h1>semsearch</h1>
  <p class="sub">Ask a question; known answers from <strong id="index-name">__INDEX__</strong>
     are ranked by cosine similarity. <span id="count"></span></p>

  <form id="ask" role="search" autocomplete="off">
    <div class="grow">
      <label for="question">Question</label>
      <input id="question" name="question" type="search" autofocus
             placeholder="e.g. how do I export my notes as PDF?" aria-describedby="keys">
    </div>
    <div>
      <label for="k">Answers</label>
      <input id="k" name="k" type="number" min="1" max="100" value="5">
    </div>
    <div>
      <label for="threshold">Threshold</label>
      <input id="threshold" name="threshold" type="number" min="-1" max="1" step="any"
             placeholder="default">
    </div>
    <div>
      <label for="mode">Ranking</label>
      <select id="mode" name="mode">
        <option value="">default</option>
        <option value="hybrid">hybrid</option>
        <option value="dense">dense</option>
        <option value="lexical">lexical</option>
      </select>
    </div>
    <div class="filter">
      <label for="where">Only entries where</label>
      <input id="where" name="where" type="text" spellcheck="false"
             placeholder="e.g. category = billing">
    </div>
    <button type="submit" id="submit">Ask</button>
  </form>
  <p class="help" id="keys"><kbd>Enter</kbd> asks, <kbd>↓</kbd> / <kbd>↑</kbd> move through the
     answers, <kbd>Esc</kbd> returns to the question, <kbd>/</kbd> focuses it.</p>

  <form id="keyform" hidden autocomplete="off">
    <p id="key-reason">This server needs an API key.</p>
    <div class="grow">
      <label for="apikey">API key (kept in this browser tab only)</label>
      <input id="apikey" name="apikey" type="password">
    </div>
    <p><button type="submit">Use key</button>
       <button type="button" class="plain" id="forget">Forget key</button></p>
  </form>

  <div id="status" role="status" aria-live="polite"></div>
  <section id="no-answer" hidden aria-live="assertive">
    <strong>No confident answer</strong>
    <span id="no-answer-detail"></span>
  </section>
  <ol id="results" aria-label="Answers"></ol>
  <p class="weak-title" id="weak-title" hidden>Closest known entries (below the threshold):</p>
  <ol id="weak" aria-label="Closest entries below the threshold"></ol>
</main>
<script>
"use strict";
const KEY = "semsearch-api-key";
const $ = (id) => document.getElementById(id);
const question = $("question"), statusBox = $("status"), keyform = $("keyform");
let pending = null, shown = null;

function storedKey() {
  try { return sessionStorage.getItem(KEY) || ""; } catch (e) { return ""; }
}
function setKey(value) {
  try { value ? sessionStorage.setItem(KEY, value) : sessionStorage.removeItem(KEY); }
  catch (e) { /* storage disabled: the key lives until reload */ }
}
function say(text, isError) {
  statusBox.textContent = text;
  statusBox.classList.toggle("error", Boolean(isError));
}
function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}
function clearResults() {
  $("results").replaceChildren();
  $("weak").replaceChildren();
  $("weak-title").hidden = true;
  $("no-answer").hidden = true;
}

// The cosine with the entry's text: what the threshold judges, whatever ranked the hit.
function cosine(hit) { return hit.scores ? hit.scores.dense : hit.score; }

const PART_NAMES = { dense: "cosine", joint: "question + answer", question: "title",
                     lexical: "BM25", rerank: "cross-encoder" };

function hitItem(hit, weak, mode) {
  const li = el("li", "hit" + (weak ? " weak" : ""));
  li.tabIndex = -1;
  li.dataset.id = hit.id;
  const head = el("header");
  head.append(el("span", "rank", hit.rank + "."));
  head.append(el("span", "score", cosine(hit).toFixed(3)));
  const bar = el("span", "bar"), fill = el("span");
  fill.style.width = Math.max(0, Math.min(1, cosine(hit))) * 100 + "%";
  bar.append(fill);
  bar.setAttribute("aria-hidden", "true");
  head.append(bar, el("span", "id", hit.id));
  li.append(head);
  const matched = el("p", "matched", "Matched: ");
  matched.append(el("q", "", hit.text));
  li.append(matched);
  if (hit.answer && hit.answer !== hit.text) li.append(el("p", "answer", hit.answer));
  const meta = Object.entries(hit.metadata || {});
  if (meta.length) li.append(el("div", "meta", meta.map(([k, v]) => k + ": " + v).join(" · ")));
  if (hit.scores) {
    const parts = Object.entries(hit.scores)
      .map(([k, v]) => (PART_NAMES[k] || k) + " " + v.toFixed(3)).join(" · ");
    li.append(el("div", "parts", "ranked " + (mode || "") + " " + hit.score.toFixed(3) +
                  " · " + parts));
  }
  li.setAttribute("aria-label",
    "Answer " + hit.rank + ", cosine " + cosine(hit).toFixed(3) + ": " + hit.text);
  return li;
}

function show(data, body) {
  shown = body;
  clearResults();
  const hits = data.results || [];
  if (data.answered) {
    const threshold = data.threshold;
    const strong = threshold === null ? hits : hits.filter((h) => cosine(h) >= threshold);
    for (const hit of strong) $("results").append(hitItem(hit, false, data.mode));
    say(strong.length + (strong.length === 1 ? " answer" : " answers") +
        (threshold === null ? "" : " at or above " + threshold) + ".");
  } else {
    const best = data.best_score;
    const detail = best !== null && best !== undefined
      ? "The top match's cosine is " + best.toFixed(3) + ", below the threshold " +
        data.threshold + ". Try rephrasing, or lower the threshold."
      : "No entry matches.";
    $("no-answer-detail").textContent = detail;
    $("no-answer").hidden = false;
    say("No confident answer.");
    if (best !== null && best !== undefined && body) showWeak(body);
  }
}

// Below the threshold the server lists nothing: ask again without one for the closest.
async function showWeak(body) {
  const headers = { "Content-Type": "application/json" };
  const key = storedKey();
  if (key) headers["Authorization"] = "Bearer " + key;
  const again = Object.assign({}, body, { threshold: "none" });
  try {
    const response = await fetch("search",
                                 { method: "POST", headers, body: JSON.stringify(again) });
    if (!response.ok) return;
    const data = await response.json();
    if (shown !== body) return;  // a newer question was answered meanwhile
    $("weak-title").hidden = false;
    for (const hit of data.results || []) $("weak").append(hitItem(hit, true, data.mode));
  } catch (e) { /* the closest entries are a courtesy: the notice stands without them */ }
}

function askForKey(reason) {
  $("key-reason").textContent = reason;
  keyform.hidden = false;
  $("apikey").value = "";
  $("apikey").focus();
}

async function ask(text) {
  pending = text;
  const body = { query: text, k: Number($("k").value) || 5 };
  const t = $("threshold").value.trim();
  if (t !== "") body.threshold = Number(t);
  if ($("mode").value) body.mode = $("mode").value;
  const where = $("where").value.trim();
  if (where !== "") body.where = where;
  const headers = { "Content-Type": "application/json" };
  const key = storedKey();
  if (key) headers["Authorization"] = "Bearer " + key;
  say("Searching…");
  let response, data;
  try {
    response = await fetch("search", { method: "POST", headers, body: JSON.stringify(body) });
    data = await response.json().catch(() => ({}));
  } catch (e) {
    say("The server cannot be reached: " + e.message, true);
    return;
  }
  if (response.status === 401) {
    clearResults();
    if (key) setKey("");
    say("This server needs an API key.", true);
    askForKey(key ? "The key was refused; enter the right one." : "This server needs an API key.");
    return;
  }
  if (!response.ok) {
    clearResults();
    say((data && data.detail) || "Error " + response.status, true);
    return;
  }
  pending = null;
  show(data, body);
}

$("ask").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = question.value.trim();
  if (!text) { say("Type a question first.", true); question.focus(); return; }
  ask(text);
});
keyform.addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("apikey").value.trim();
  if (!value) { $("apikey").focus(); return; }
  setKey(value);
  keyform.hidden = true;
  question.focus();
  if (pending) ask(pending);
});
$("forget").addEventListener("click", () => {
  setKey("");
  $("apikey").value = "";
  say("Key forgotten.");
  $("apikey").focus();
});

function hits() { return Array.from(document.querySelectorAll(".hit")); }
document.addEventListener("keydown", (event) => {
  const active = document.activeElement;
  const list = hits(), at = list.indexOf(active);
  if (event.key === "/" && !(active instanceof HTMLInputElement)) {
    event.preventDefault(); question.focus(); question.select();
  } else if (event.key === "ArrowDown" && (active === question || at >= 0) && list.length) {
    event.preventDefault(); list[Math.min(at + 1, list.length - 1)].focus();
  } else if (event.key === "ArrowUp" && at >= 0) {
    event.preventDefault(); (at === 0 ? question : list[at - 1]).focus();
  } else if (event.key === "Escape" && at >= 0) {
    event.preventDefault(); question.focus();
  }
});

fetch("health").then((r) => r.json()).then((h) => {
  $("count").textContent = h.count + " known entries.";
}).catch(() => {});
question.focus();
</script>
</body>
</html>
"""


def page_html(index_name: str) -> str:
    """The page with the index's name filled in (escaped)."""
    return PAGE.replace("__INDEX__", html.escape(index_name))
