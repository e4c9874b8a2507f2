// photobatch review: keyboard-first approval of captions and hashtags.
// Written for this page by the photobatch team; it talks to this server only, and every change
// goes through POST /api/... with the page's CSRF token, answered with the card re-rendered.
"use strict";

(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const status = document.getElementById("status");
  let current = 0;

  const cards = () => Array.from(document.querySelectorAll("article.card"));

  function say(message) {
    status.textContent = message;
  }

  function focusCard(index, scroll = true) {
    const all = cards();
    if (!all.length) return;
    current = Math.max(0, Math.min(index, all.length - 1));
    all.forEach((card, i) => card.classList.toggle("current", i === current));
    if (scroll) all[current].focus({ preventScroll: false });
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    if (!response.ok) throw new Error((await response.text()).trim() || response.statusText);
    return response.json();
  }

  async function change(card, body) {
    try {
      const answer = await post(`/api/review/${card.dataset.id}`, body);
      card.outerHTML = answer.card;
      focusCard(current, false);
      say(answer.problems.length ? answer.problems.join("; ") : "saved");
    } catch (error) {
      say(`not saved: ${error.message}`);
    }
  }

  function currentCard() {
    return cards()[current];
  }

  async function act(card, action, extra = {}) {
    if (action === "copy") return copy(card);
    if (action === "attention") return attention(card);
    await change(card, { action, ...extra });
  }

  async function copy(card) {
    const draft = card.querySelector(".post-edit").value.trim();
    const tags = card.querySelector('[data-act="copy"]').dataset.tags;
    const text = [draft, tags].filter(Boolean).join("\n\n");
    try {
      await navigator.clipboard.writeText(text);
      say("post copied");
    } catch (error) {
      say(`cannot copy: ${error.message}`);
    }
  }

  function attention(card) {
    const box = card.querySelector(".attention");
    if (!box.hidden) {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    if (!box.firstChild) {
      const img = document.createElement("img");
      img.alt = "where the captioner looked, word by word";
      say("drawing where the model looked...");
      img.addEventListener("load", () => say(""));
      img.addEventListener("error", () => say("cannot draw the attention map"));
      img.src = `/attention/${card.dataset.id}`;
      box.appendChild(img);
    }
  }

  // Clicks on any card's buttons.
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-act]");
    const card = event.target.closest("article.card");
    if (card) focusCard(cards().indexOf(card), false);
    if (!button || !card) return;
    event.preventDefault();
    const extra = button.dataset.tag ? { text: button.dataset.tag } : {};
    act(card, button.dataset.act, extra);
  });

  // Edits: the caption and the draft save when left changed (Enter saves a caption, Escape
  // undoes); the hashtag box adds on Enter.
  document.addEventListener("keydown", (event) => {
    const field = event.target;
    const card = field.closest && field.closest("article.card");
    if (!card || !field.matches("textarea, input")) return;
    if (event.key === "Escape") {
      field.value = field.defaultValue;
      field.blur();
      card.focus();
      event.preventDefault();
    } else if (event.key === "Enter" && !event.shiftKey) {
      if (field.matches(".post-edit") && !event.ctrlKey) return;
      event.preventDefault();
      if (field.matches(".tag-add")) {
        if (field.value.trim()) act(card, "add", { text: field.value });
      } else {
        field.blur();
      }
    }
  });
  document.addEventListener("focusout", (event) => {
    const field = event.target;
    const card = field.closest && field.closest("article.card");
    if (!card || !field.matches("textarea") || field.value === field.defaultValue) return;
    act(card, field.matches(".caption-edit") ? "caption" : "post", { text: field.value });
  });

  // The keyboard, outside the text fields.
  const keys = {
    j: () => focusCard(current + 1),
    ArrowRight: () => focusCard(current + 1),
    ArrowDown: () => focusCard(current + 1),
    k: () => focusCard(current - 1),
    ArrowLeft: () => focusCard(current - 1),
    ArrowUp: () => focusCard(current - 1),
    a: () => decide("approve"),
    r: () => decide("reject"),
    u: () => act(currentCard(), "clear"),
    e: () => edit(".caption-edit"),
    t: () => edit(".tag-add"),
    d: () => edit(".post-edit"),
    c: () => act(currentCard(), "copy"),
    m: () => act(currentCard(), "attention"),
    n: () => go("next"),
    p: () => go("prev"),
    "/": () => document.getElementById("search").focus(),
  };

  function decide(action) {
    const card = currentCard();
    if (!card) return;
    focusCard(current + 1);
    act(card, action);
  }

  function edit(selector) {
    const card = currentCard();
    if (!card) return;
    const field = card.querySelector(selector);
    field.focus();
    if (field.setSelectionRange) field.setSelectionRange(field.value.length, field.value.length);
  }

  function go(rel) {
    const link = document.getElementById(rel);
    if (link) window.location.assign(link.href);
  }

  document.addEventListener("keydown", (event) => {
    if (event.target.matches("textarea, input, select") || event.ctrlKey || event.metaKey) return;
    if (event.altKey) return;
    const handler = keys[event.key];
    if (handler && cards().length) {
      event.preventDefault();
      handler();
    } else if (handler && event.key === "/") {
      event.preventDefault();
      handler();
    }
  });

  // Approve every card on this page whose caption is at least this sure.
  document.getElementById("approve-all").addEventListener("submit", async (event) => {
    event.preventDefault();
    const minimum = parseFloat(event.target.elements.min.value);
    const ids = cards().map((card) => card.dataset.id);
    try {
      const answer = await post("/api/approve-all", { ids, min_confidence: minimum });
      say(`approved ${answer.approved}`);
      window.location.reload();
    } catch (error) {
      say(`not saved: ${error.message}`);
    }
  });

  focusCard(0, false);
})();
