// The web chat: sends a message and shows the reply as it streams in.
// The server answers POST /chat/send with Server-Sent Events ("delta" events, then one
// "done") in the body of that response, read here with fetch. All text goes into the
// page through textContent: nothing a persona or a user wrote is ever parsed as HTML.
// What is typed is kept (sessionStorage) until it is sent: a message the rate limit
// held back goes back into the composer, and survives a reload.
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
  const sendButton = document.getElementById("send");
  const DRAFT = "personabridge-chat-draft";
  let busy = false;
  let holdTimer = null;

  function scrollToEnd() {
    log.scrollTop = log.scrollHeight;
  }

  function saveDraft() {
    try {
      if (message.value) sessionStorage.setItem(DRAFT, message.value);
      else sessionStorage.removeItem(DRAFT);
    } catch (_) { /* storage off: the composer still holds the text */ }
  }

  function restoreDraft() {
    try {
      const draft = sessionStorage.getItem(DRAFT);
      if (draft && !message.value) message.value = draft;
    } catch (_) { /* storage off */ }
  }

  // A line from PersonaBridge itself (not the persona): the rate limit, mostly.
  function systemNotice(text) {
    const item = document.createElement("li");
    item.className = "turn system";
    item.setAttribute("role", "status");
    const body = document.createElement("p");
    body.className = "text";
    body.textContent = text;
    item.append(body);
    log.append(item);
    scrollToEnd();
    return body;
  }

  // Sending waits until the rate limit allows it again; the notice counts down.
  function holdSending(seconds, notice) {
    let left = Math.max(1, Math.ceil(seconds));
    clearInterval(holdTimer);
    sendButton.disabled = true;
    const say = () => {
      notice.textContent = "You are sending faster than the chat allows. Your message is " +
        "back in the box below: you can send it in " + left + " s.";
    };
    say();
    holdTimer = setInterval(() => {
      left -= 1;
      if (left > 0) { say(); return; }
      clearInterval(holdTimer);
      holdTimer = null;
      notice.textContent = "You can send again now.";
      if (!busy) sendButton.disabled = false;
    }, 1000);
  }

  // The persona's reply to the last message that was not a command, if it has one.
  function lastChatReply() {
    const turns = [...log.querySelectorAll(".turn")];
    for (let i = turns.length - 1; i >= 0; i -= 1) {
      const turn = turns[i];
      const said = turn.querySelector(".text").textContent;
      if (turn.classList.contains("user") && !said.startsWith("/")) return null;
      if (turn.matches(".assistant:not(.command):not(.notice):not(.pending)")) return turn;
    }
    return null;
  }

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
    scrollToEnd();
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
    for (const button of document.querySelectorAll(".chat-send button")) {
      button.disabled = value || (button === sendButton && holdTimer !== null);
    }
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

  // A voice note: recorded with MediaRecorder (🎤 starts, ⏹ stops, two minutes at most)
  // and attached like a chosen file, to go with the next Send.
  const record = document.getElementById("record");
  const MAX_RECORDING_MS = 120000;
  let recorder = null;
  if (record && attachment && navigator.mediaDevices && window.MediaRecorder) {
    record.hidden = false;
    record.addEventListener("click", async () => {
      if (recorder) {
        recorder.stop();
        return;
      }
      let stream;
      try {
        stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      } catch (_) {
        attached.hidden = false;
        attached.textContent = "🎤 The microphone is not available.";
        return;
      }
      const chunks = [];
      recorder = new MediaRecorder(stream);
      recorder.addEventListener("dataavailable", (event) => chunks.push(event.data));
      recorder.addEventListener("stop", () => {
        stream.getTracks().forEach((track) => track.stop());
        const type = recorder.mimeType || "audio/webm";
        const name = type.includes("ogg") ? "voice-note.ogg" : "voice-note.webm";
        recorder = null;
        record.textContent = "🎤";
        record.classList.remove("recording");
        const files = new DataTransfer();
        files.items.add(new File(chunks, name, { type }));
        attachment.files = files.files;
        attachment.dispatchEvent(new Event("change"));
      });
      recorder.start();
      record.textContent = "⏹";
      record.classList.add("recording");
      attached.hidden = false;
      attached.textContent = "🎤 Recording… press ⏹ to stop.";
      setTimeout(() => { if (recorder) recorder.stop(); }, MAX_RECORDING_MS);
    });
  }

  // A message held back (the rate limit, a failure) keeps its file too.
  function restoreAttachment(file) {
    if (!attachment || !file || attachment.files.length) return;
    const files = new DataTransfer();
    files.items.add(file);
    attachment.files = files.files;
    attachment.dispatchEvent(new Event("change"));
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
    const shown = file ? (text ? text + "\n" : "") + "📎 " + file.name : text;
    const mine = kind === "send" ? bubble("user", userName, shown) : null;
    // Retry writes the reply to the last chat message again: the new one takes the
    // old one's place (commands in between are not part of the conversation).
    const replaced = kind === "retry" ? lastChatReply() : null;
    const reply = bubble("assistant pending", persona.name, "");
    if (replaced) replaced.replaceWith(reply);
    const dropReply = () => {
      if (replaced) reply.replaceWith(replaced);
      else reply.remove();
    };
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
        dropReply();
        if (mine) {
          mine.remove();
          message.value = message.value || text;
          saveDraft();
          restoreAttachment(file);
        }
        setBusy(false, problem);
        return;
      }
      let finished = false;
      await readEvents(response, ({ event, data }) => {
        if (event === "delta") {
          replyText.textContent += data.text;
          scrollToEnd();
        } else if (event === "voice" && typeof data.url === "string") {
          addPlayer(reply, data.url);
        } else if (event === "done" && data.kind === "rate_limited") {
          // Not the persona speaking, and nothing was kept: give the text back.
          finished = true;
          dropReply();
          if (mine) mine.remove();
          if (kind === "send") {
            message.value = text + (message.value ? "\n" + message.value : "");
            saveDraft();
            restoreAttachment(file);
          }
          holdSending(data.retry_after || 1, systemNotice(""));
        } else if (event === "done" || event === "error") {
          finished = true;
          replyText.textContent = data.text;
          reply.classList.remove("pending");
          if (event === "error" || (data.kind && data.kind !== "chat")) {
            reply.classList.add(data.kind === "command" ? "command" : "notice");
          }
          if (replaced && data.kind !== "chat") {
            // nothing was written again ("nothing to retry", a failure): keep the old reply
            reply.replaceWith(replaced);
            log.append(reply);
          }
          if (kind === "retry" && data.kind === "chat") {
            const mark = document.createElement("span");
            mark.className = "mark";
            mark.textContent = "regenerated";
            mark.title = "Written again by Retry";
            reply.querySelector(".author").after(mark);
          }
          if (kind === "reset" && data.kind === "command") {
            log.replaceChildren(reply);
          }

          scrollToEnd();
        }
      });
      setBusy(false, finished ? "" : "The reply was cut off. Try Retry.");
      if (finished && text.startsWith("/")) await followPersona();
    } catch (error) {
      dropReply();
      if (mine) {
        mine.remove();
        message.value = message.value || text;
        saveDraft();
        restoreAttachment(file);
      }
      setBusy(false, "Could not reach the server. Check your connection and try again.");
    }
  }

  // A reply read aloud (/voice on): a player under its text. The audio is made when the
  // player asks for it; if that fails, a short line says so and the text stays.
  function addPlayer(replyBubble, url) {
    const audio = document.createElement("audio");
    audio.className = "voice";
    audio.controls = true;
    audio.preload = "auto";
    audio.addEventListener("error", () => {
      const note = document.createElement("p");
      note.className = "voice-note";
      note.textContent = "🔇 This reply could not be read aloud just now.";
      audio.replaceWith(note);
    });
    audio.src = url;
    replyBubble.append(audio);
    scrollToEnd();
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
    document.getElementById("persona-about-name").textContent = now.name;
    document.getElementById("persona-about").hidden = !now.description;
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
      if (kind === "send") {
        if (holdTimer !== null) return;  // held back by the rate limit: the text stays
        message.value = "";
        saveDraft();
        clearAttachment();
      }
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

  message.addEventListener("input", saveDraft);
  restoreDraft();
  scrollToEnd();

  if (personaSelect) {
    personaSelect.addEventListener("change", () => personaSelect.form.requestSubmit());
  }
})();
