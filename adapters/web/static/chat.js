// The web chat: sends a message and shows the reply as it streams in.
// The server answers POST /chat/send with Server-Sent Events ("delta" events, then one
// "done") in the body of that response, read here with fetch. All text goes into the
// page through textContent: nothing a persona or a user wrote is ever parsed as HTML.
"use strict";

(() => {
  const log = document.getElementById("log");
  const status = document.getElementById("status");
  const composer = document.getElementById("composer");
  const message = document.getElementById("message");
  const personaSelect = document.getElementById("persona-select");
  const attachment = document.getElementById("attachment");
  const attached = document.getElementById("attached");
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  if (!log || !composer) return;
  const persona = {
    id: log.dataset.personaId,
    name: log.dataset.persona,
    avatar: log.dataset.avatar,
  };
  const userName = log.dataset.user;
  let busy = false;

  function label(who, role, author) {
    who.replaceChildren();
    if (role !== "user") {
      const picture = document.createElement("img");
      picture.className = "avatar";
      picture.src = persona.avatar;
      picture.alt = "";
      picture.width = picture.height = 24;
      who.append(picture);
    }
    who.append(document.createTextNode(author));
  }

  function bubble(role, author, text) {
    const item = document.createElement("li");
    item.className = "turn " + role;
    const who = document.createElement("span");
    who.className = "author";
    label(who, role.split(" ")[0], author);
    const body = document.createElement("p");
    body.className = "text";
    body.textContent = text;
    item.append(who, body);
    log.append(item);
    item.scrollIntoView({ block: "end" });
    return item;
  }

  function parseEvent(block) {
    let event = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    }
    return { event, data: data.length ? JSON.parse(data.join("\n")) : {} };
  }

  async function readEvents(response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (block.trim()) onEvent(parseEvent(block));
      }
    }
  }

  function setBusy(value, text) {
    busy = value;
    status.textContent = text || "";
    for (const button of document.querySelectorAll(".chat-send button")) button.disabled = value;
  }

  // A message with a file goes as multipart to /chat/attach; any other as JSON.
  function request(text, file) {
    if (!file) {
      return { url: "/chat/send", body: JSON.stringify({ text }), type: "application/json" };
    }
    const form = new FormData();
    form.append("text", text);
    form.append("file", file, file.name);
    return { url: "/chat/attach", body: form, type: null };
  }

  function clearAttachment() {
    if (!attachment) return;
    attachment.value = "";
    attached.hidden = true;
    message.required = true;
  }

  if (attachment) {
    attachment.addEventListener("change", () => {
      const file = attachment.files[0];
      attached.hidden = !file;
      attached.textContent = file ? "📎 " + file.name : "";
      message.required = !file;  // a file alone is a message
    });
  }

  async function send(text, kind, file) {
    if (busy) return;
    if (kind === "send") bubble("user", userName, file ? (text ? text + "\n" : "") + "📎 " + file.name : text);
    if (kind === "retry" && log.querySelector(".turn.user")) {
      // (before the first message, the last reply is the greeting: /retry never redoes it)
      const replies = log.querySelectorAll(".turn.assistant");
      const last = replies[replies.length - 1];
      if (last && last === log.lastElementChild) last.remove();
    }
    const reply = bubble("assistant pending", persona.name, "");
    const replyText = reply.querySelector(".text");
    setBusy(true, persona.name + " is writing…");
    try {
      const { url, body, type } = request(text, file);
      const headers = { "Accept": "text/event-stream", "X-CSRF-Token": csrf };
      if (type) headers["Content-Type"] = type;
      const response = await fetch(url, {
        method: "POST", headers, body, credentials: "same-origin",
      });
      if (response.status === 401) {
        const body = await response.json();
        window.location.assign(body.login || "/login?next=/chat");
        return;
      }
      if (!response.ok || !response.body) {
        let problem = "Sending failed (" + response.status + ").";
        try { problem = (await response.json()).error || problem; } catch (_) { /* not JSON */ }
        reply.remove();
        setBusy(false, problem);
        return;
      }
      let finished = false;
      await readEvents(response, ({ event, data }) => {
        if (event === "delta") {
          replyText.textContent += data.text;
          reply.scrollIntoView({ block: "end" });
        } else if (event === "done" || event === "error") {
          finished = true;
          replyText.textContent = data.text;
          reply.classList.remove("pending");
          if (event === "error" || (data.kind && data.kind !== "chat")) {
            reply.classList.add(data.kind === "command" ? "command" : "notice");
          }
          if (kind === "reset" && data.kind === "command") {
            log.replaceChildren(reply);
          }
        }
      });
      setBusy(false, finished ? "" : "The reply was cut off. Try Retry.");
      if (finished && text.startsWith("/")) await followPersona();
    } catch (error) {
      reply.remove();
      setBusy(false, "Could not reach the server. Check your connection and try again.");
    }
  }

  // After a command (/persona may have switched): show the persona the account talks to
  // now, and its conversation, as the page would after a reload.
  async function followPersona() {
    let now;
    try {
      const response = await fetch("/chat/persona", { credentials: "same-origin" });
      if (!response.ok) return;
      now = await response.json();
    } catch (_) {
      return;
    }
    if (now.id === persona.id) return;
    Object.assign(persona, { id: now.id, name: now.name, avatar: now.avatar });
    Object.assign(log.dataset, { personaId: now.id, persona: now.name, avatar: now.avatar });
    document.getElementById("persona-name").textContent = now.name;
    document.getElementById("persona-description").textContent = now.description;
    document.getElementById("persona-avatar").src = now.avatar;
    document.title = document.title.replace(/^Chat with .*?( ·|$)/, "Chat with " + now.name + "$1");
    message.placeholder = "Write to " + now.name + "…";
    if (personaSelect) personaSelect.value = now.id;
    log.replaceChildren();
    for (const turn of now.turns) bubble(turn.role, turn.author, turn.text);
    status.textContent = "You are now talking to " + now.name + ".";
  }

  for (const form of document.querySelectorAll("form.chat-send")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const kind = form.dataset.kind;
      const text = kind === "send" ? message.value.trim() : form.elements.text.value;
      const file = kind === "send" && attachment ? attachment.files[0] : undefined;
      if (!text && !file) return;
      if (kind === "send") { message.value = ""; clearAttachment(); }
      send(text, kind, file);
    });
  }

  // Enter sends, Shift+Enter starts a new line.
  message.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      composer.requestSubmit();
    }
  });

  if (personaSelect) {
    personaSelect.addEventListener("change", () => personaSelect.form.requestSubmit());
  }
})();
