// The rating page: asks the server for this rater's item, shows it, sends the answer.
// Every text from the server is written with textContent: model text is never markup.
"use strict";
(function () {
  const token = document.querySelector('meta[name="arena-token"]').content;
  const $ = (id) => document.getElementById(id);
  let current = null;      // the item shown now
  let shownAt = 0;         // when it was first shown (ms, this page's clock)
  let deadline = null;     // when its time runs out (ms, this page's clock)
  let ticking = null;
  let pollTimer = null;
  let sending = false;

  async function api(path, body) {
    const init = { method: body ? "POST" : "GET", cache: "no-store", credentials: "same-origin",
                   headers: { "X-Arena-Token": token } };
    if (body) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    const r = await fetch(path, init);
    const text = await r.text();
    if (!r.ok) { const e = new Error(text.trim() || r.statusText); e.status = r.status; throw e; }
    return JSON.parse(text);
  }

  function show(id, on) { $(id).hidden = !on; }

  function status(text) { $("status").textContent = text; show("status", !!text); }

  function schedule(ms) { clearTimeout(pollTimer); pollTimer = setTimeout(poll, ms); }

  async function poll() {
    let data;
    try {
      data = await api("/api/next" + (current ? "?showing=" + encodeURIComponent(current.id)
                                          + "&shown_for=" + (Date.now() - shownAt) / 1000 : ""));
    } catch (e) {
      status(e.status ? "Refused: " + e.message : "Connection lost — retrying…");
      schedule(1000);
      return;
    }
    $("who").textContent = "rater " + data.rater;
    $("count").textContent = data.answered + " answered";
    const notes = $("notes");
    notes.replaceChildren(...(data.notes || []).map((t) => { const li = document.createElement("li"); li.textContent = t; return li; }));
    show("notes", (data.notes || []).length > 0);
    if (data.state === "done") { finish(); return; }
    if (data.state === "wait") {
      current = null; stopTimer(); show("card", false); show("chat", false);
      status("Waiting for the next item…");
      schedule(1000);
      return;
    }
    if (!current || current.id !== data.item.id) render(data.item);
    else {
      status("");
      if (data.item.remaining !== null) startTimer(data.item.remaining);
    }
    schedule(current && current.kind === "text" ? 15000 : 5000);  // keeps the lease alive; time from the server
  }

  function render(item) {
    current = item;
    shownAt = Date.now() - (item.time_limit && item.remaining !== null ? (item.time_limit - item.remaining) * 1000 : 0);
    status("");
    $("title").textContent = item.title || "";
    show("title", !!item.title);
    $("instructions").textContent = item.instructions || "";
    show("instructions", !!item.instructions);
    $("prompt").textContent = item.prompt;
    $("card").dataset.item = item.id;  // an opaque id: it says nothing of where the item came from
    const chat = $("chat");
    chat.replaceChildren();
    for (const [who, text] of item.history || []) {
      const div = document.createElement("div");
      div.className = "bubble " + (who === "game" ? "game" : who === "note" ? "note" : "seat");
      const label = document.createElement("span");
      label.className = "who";
      label.textContent = who === "game" ? "the game" : who === "note" ? "" : who;
      div.append(label, document.createTextNode(text));
      chat.append(div);
    }
    show("chat", (item.history || []).length > 0);
    show("verdict", item.kind === "verdict" || item.kind === "score");
    show("score", item.kind === "score");
    show("text", item.kind === "text");
    $("reply").value = "";
    $("score-value").value = "";
    show("error", false);
    enable(true);
    show("card", true);
    if (item.remaining !== null && item.remaining !== undefined) startTimer(item.remaining); else stopTimer();
    if (item.kind === "text") $("reply").focus();
  }

  function startTimer(seconds) {
    deadline = Date.now() + seconds * 1000;
    show("timer", true);
    clearInterval(ticking);
    ticking = setInterval(tick, 200);
    tick();
  }

  function stopTimer() { clearInterval(ticking); ticking = null; deadline = null; show("timer", false); }

  function tick() {
    if (deadline === null) return;
    const left = Math.max(0, (deadline - Date.now()) / 1000);
    $("timer").textContent = Math.ceil(left) + " s left";
    $("timer").classList.toggle("low", left < 10);
    if (left <= 0 && current) { stopTimer(); send({ id: current.id, timeout: true }, "Time is up."); }
  }

  function enable(on) {
    for (const id of ["yes", "no", "score-send", "send"]) $(id).disabled = !on;
  }

  async function send(body, note) {
    if (sending) return;
    sending = true;
    body.shown_for = (Date.now() - shownAt) / 1000;  // used only if the server restarted meanwhile
    enable(false);
    try {
      await api("/api/answer", body);
      current = null;
      stopTimer();
      show("card", false);
      status(note || "Sent.");
    } catch (e) {
      if (e.status === 409) { current = null; stopTimer(); show("card", false); status(e.message); }
      else if (e.status) { $("error").textContent = e.message; show("error", true); enable(true); }
      else { $("error").textContent = "Connection lost — try again."; show("error", true); enable(true); }
    } finally {
      sending = false;
    }
    schedule(0);
  }

  $("yes").addEventListener("click", () => current && send({ id: current.id, value: 1 }));
  $("no").addEventListener("click", () => current && send({ id: current.id, value: -1 }));
  $("score-send").addEventListener("click", () => {
    const v = Number($("score-value").value);
    if (!current || $("score-value").value.trim() === "" || !Number.isFinite(v)) {
      $("error").textContent = "Type a number first."; show("error", true); return;
    }
    send({ id: current.id, value: v });
  });
  $("send").addEventListener("click", () => current && send({ id: current.id, value: $("reply").value }));

  function finish() {
    current = null; stopTimer(); clearTimeout(pollTimer);
    show("card", false); show("chat", false); status(""); show("done", true);
  }

  poll();
})();
