/* Bulletin Q&A: a chat widget any page can embed with one tag.
 *
 *   <script src="{service}/widget.js" data-api="{service}"></script>
 *
 * where {service} is the service's origin, e.g. the address `rag serve` listens on. data-api is
 * where the search API lives; without it, the origin this script came from.
 * When the service has an API key (RAG_API_KEY), every request that carries bulletin text needs
 * it: data-key="{key}" makes the widget send it, on searches and on the source viewer's fetches.
 * Anyone who can open the page can read the key there, so put it only on pages whose readers
 * may all hold it (an intranet page behind its own login); without it a keyed service answers
 * 401 and the widget says it needs a key.
 * The whole widget lives in one open shadow root, so the host page's CSS cannot reach it and it
 * adds no global styles; its only global is window.BulletinWidget. Bulletin text is always
 * inserted as text nodes, never parsed as HTML: a bulletin is data, not markup.
 */
(() => {
  "use strict";

  if (window.BulletinWidget) return; // the tag was included twice

  const script = document.currentScript || document.querySelector('script[src*="widget.js"]');
  const scriptOrigin = script ? new URL(script.src, location.href).origin : location.origin;
  const API = ((script && script.getAttribute("data-api")) || scriptOrigin).replace(/\/+$/, "");
  const KEY = (script && script.getAttribute("data-key")) || "";
  const TOP_K = 5;
  const TIMEOUT_MS = 30000;

  const TEXT = {
    zh: {
      lang: "zh-CN",
      title: "公报问答",
      launcher: "问公报",
      open: "打开公报问答",
      close: "关闭公报问答",
      intro: "请输入问题。回答全部摘自公报原文，并注明出处。",
      input: "你的问题",
      placeholder: "输入问题，Shift+Enter 换行",
      send: "发送",
      loading: "正在检索…",
      found: (n) => `找到 ${n} 段相关原文`,
      noAnswer: "公报中没有找到能回答这个问题的内容。",
      nearest: "最接近的段落（可能不相关）",
      source: "查看原文",
      sourceTitle: "原文",
      page: (n) => `PDF 第 ${n} 页`,
      published: "原网页",
      sourceOf: (where) => `查看原文：${where}`,
      also: (where) => `同样的文字另见：${where}`,
      back: "返回",
      loadingSource: "正在载入原文…",
      rank: "排名与相关度",
      retry: "重试",
      offline: "无法连接到检索服务，请检查网络后重试。",
      timeout: "检索服务长时间没有响应，请稍后重试。",
      server: (status) => `检索服务出错了（HTTP ${status}），请稍后重试。`,
      notReady: "检索服务正在启动，请稍后重试。",
      needsKey: "检索服务要求 API 密钥，本挂件无法直接使用。",
      tooLong: "问题太长了，请缩短后再试。",
      refused: (status) => `检索服务拒绝了这个请求（HTTP ${status}）。`,
      garbled: "检索服务返回了无法识别的内容，请稍后重试。",
    },
    en: {
      lang: "en",
      title: "Bulletin Q&A",
      launcher: "Ask",
      open: "Open Bulletin Q&A",
      close: "Close Bulletin Q&A",
      intro: "Ask a question. Every answer is quoted from the bulletins, with its source.",
      input: "Your question",
      placeholder: "Ask a question (Shift+Enter: new line)",
      send: "Send",
      loading: "Searching…",
      found: (n) => `Found ${n} passage${n === 1 ? "" : "s"}`,
      noAnswer: "The bulletins do not answer this question.",
      nearest: "Closest passages (may be unrelated)",
      source: "View source",
      sourceTitle: "Source",
      page: (n) => `PDF page ${n}`,
      published: "Original page",
      sourceOf: (where) => `View source: ${where}`,
      also: (where) => `The same text also appears in: ${where}`,
      back: "Back",
      loadingSource: "Loading the bulletin…",
      rank: "rank and relevance",
      retry: "Retry",
      offline: "Could not reach the search service. Check the connection and retry.",
      timeout: "The search service did not answer in time. Please retry.",
      server: (status) => `The search service failed (HTTP ${status}). Please retry.`,
      notReady: "The search service is still starting. Please retry shortly.",
      needsKey: "The search service requires an API key, so this widget cannot use it.",
      tooLong: "The question is too long; please shorten it.",
      refused: (status) => `The search service refused the request (HTTP ${status}).`,
      garbled: "The search service sent a reply the widget cannot read. Please retry.",
    },
  };
  const t = (document.documentElement.lang || "").toLowerCase().startsWith("en")
    ? TEXT.en
    : TEXT.zh;

  const STYLE = `
    :host {
      all: initial !important;
      display: block !important;
      width: 0 !important;
      height: 0 !important;
      font: 15px/1.6 system-ui, -apple-system, "Segoe UI", "PingFang SC", "Hiragino Sans GB",
        "Microsoft YaHei", "Noto Sans CJK SC", "Noto Sans SC", "WenQuanYi Micro Hei",
        sans-serif !important;
      color: #1f2328 !important;
    }
    .widget {
      --accent: #2456a4; --accent-dark: #1b4282; --ink: #1f2328; --muted: #667085;
      --line: #e4e7ec; --paper: #f6f7f9; --mark: #fff0a3;
    }
    * { box-sizing: border-box; }
    [hidden] { display: none !important; }
    button, textarea { font: inherit; color: inherit; margin: 0; }
    button { cursor: pointer; }
    :focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
    svg { display: block; fill: none; stroke: currentColor; stroke-width: 2;
      stroke-linecap: round; stroke-linejoin: round; }

    .launcher {
      position: fixed; right: 20px; bottom: 20px; z-index: 2147483000;
      display: inline-flex; align-items: center; gap: 8px; height: 48px; padding: 0 18px 0 14px;
      border: 0; border-radius: 24px; background: var(--accent); color: #fff;
      font-size: 15px; font-weight: 600; box-shadow: 0 6px 20px rgba(16, 24, 40, .25);
    }
    .launcher:hover { background: var(--accent-dark); }
    .launcher:focus-visible { outline-offset: 3px; }
    .launcher svg { width: 22px; height: 22px; }

    .panel {
      position: fixed; right: 20px; bottom: 80px; z-index: 2147483000;
      width: 400px; max-width: calc(100vw - 40px); height: 640px; max-height: calc(100vh - 100px);
      display: flex; flex-direction: column; overflow: hidden;
      background: #fff; border: 1px solid var(--line); border-radius: 14px;
      box-shadow: 0 16px 48px rgba(16, 24, 40, .22); animation: rise .16s ease-out;
    }
    @keyframes rise { from { opacity: 0; transform: translateY(8px); } }
    .main { flex: 1; min-height: 0; display: flex; flex-direction: column; }
    .bar { display: flex; align-items: center; gap: 8px; padding: 10px 10px 10px 18px;
      border-bottom: 1px solid var(--line); }
    .bar h2, .bar h3 { flex: 1; min-width: 0; margin: 0; font-size: 16px; font-weight: 600;
      overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
    .icon-button { flex: none; width: 34px; height: 34px; display: grid; place-items: center;
      border: 0; border-radius: 8px; background: transparent; color: var(--muted); }
    .icon-button:hover { background: var(--paper); color: var(--ink); }
    .icon-button svg { width: 20px; height: 20px; }

    .log { flex: 1; min-height: 0; overflow-y: auto; overscroll-behavior: contain;
      position: relative; padding: 16px; background: var(--paper); }
    .intro { margin: 0 0 16px; color: var(--muted); font-size: 14px; }
    .turn { margin: 0 0 22px; }
    .question { width: fit-content; max-width: 85%; margin: 0 0 10px auto; padding: 8px 12px;
      background: var(--accent); color: #fff; border-radius: 14px 14px 4px 14px;
      white-space: pre-wrap; overflow-wrap: anywhere; }
    .summary { margin: 0 0 8px; color: var(--muted); font-size: 13px; }
    .cards { display: grid; gap: 10px; margin: 0; padding: 0; list-style: none; }
    .card { padding: 12px 14px; background: #fff; border: 1px solid var(--line);
      border-radius: 10px; }
    .passage { margin: 0 0 8px; overflow-wrap: anywhere; }
    mark { background: var(--mark); color: inherit; padding: 1px 0; border-radius: 2px; }
    .cite, .also { margin: 0 0 10px; color: var(--muted); font-size: 12.5px; overflow-wrap: anywhere; }
    .card-foot { display: flex; align-items: center; justify-content: space-between; gap: 8px; }
    .pill { padding: 3px 12px; border: 1px solid #c7d3ea; border-radius: 999px;
      background: #f2f6fd; color: var(--accent); font-size: 13px; }
    .pill:hover { background: #e4ecfa; }
    .rank { color: #98a2b3; font-size: 11.5px; font-variant-numeric: tabular-nums; }
    .loading { display: flex; align-items: center; gap: 8px; margin: 0; color: var(--muted);
      font-size: 14px; }
    .spinner { width: 14px; height: 14px; border: 2px solid #c7d3ea;
      border-top-color: var(--accent); border-radius: 50%; animation: spin .8s linear infinite; }
    @keyframes spin { to { transform: rotate(360deg); } }
    .no-answer { margin: 0 0 6px; padding: 10px 12px; background: #fff;
      border: 1px solid var(--line); border-radius: 10px; }
    .detail { margin: 4px 0 8px; color: var(--muted); font-size: 13px; overflow-wrap: anywhere; }
    .nearest > summary { margin: 8px 0; color: var(--muted); font-size: 13px; cursor: pointer; }
    .nearest .card { background: #fbfbfc; }
    .error { padding: 10px 12px; background: #fef3f2; border: 1px solid #fecdca;
      border-radius: 10px; color: #912018; }
    .error p { margin: 0 0 8px; overflow-wrap: anywhere; }
    .error .detail { color: #b42318; }
    .error .pill { border-color: #fda29b; background: #fff; color: #b42318; }

    .composer { display: flex; align-items: flex-end; gap: 8px; padding: 10px 12px;
      border-top: 1px solid var(--line); background: #fff; }
    textarea { flex: 1; min-width: 0; height: 42px; max-height: 128px; resize: none;
      padding: 9px 12px; border: 1px solid #d0d5dd; border-radius: 10px; background: #fff;
      font-size: 15px; line-height: 1.45; }
    textarea:focus { outline: none; border-color: var(--accent);
      box-shadow: 0 0 0 3px rgba(36, 86, 164, .15); }
    .send { flex: none; height: 42px; padding: 0 16px; border: 0; border-radius: 10px;
      background: var(--accent); color: #fff; font-weight: 600; }
    .send:hover { background: var(--accent-dark); }
    .send[aria-disabled="true"] { opacity: .55; cursor: progress; }

    .viewer { position: absolute; inset: 0; display: flex; flex-direction: column;
      background: #fff; }
    .viewer .bar { padding-left: 8px; }
    .back { width: auto; display: inline-flex; align-items: center; gap: 2px;
      padding: 4px 10px 4px 4px; }
    .back svg { width: 18px; height: 18px; }
    .viewer-meta { margin: 0; padding: 8px 18px; border-bottom: 1px solid var(--line);
      color: var(--muted); font-size: 12.5px; overflow-wrap: anywhere; }
    .viewer-page { color: var(--ink); font-weight: 600; }
    .viewer-link { color: var(--accent); }
    .viewer-body { flex: 1; min-height: 0; overflow-y: auto; overscroll-behavior: contain;
      position: relative; padding: 14px 18px 28px; }
    .viewer-body h4 { margin: 0 0 4px; font-size: 17px; }
    .viewer-body h5 { margin: 18px 0 6px; font-size: 15px; }
    .viewer-body p { margin: 0 0 10px; overflow-wrap: anywhere; }
    .viewer-body .byline { color: var(--muted); font-size: 13px; }
    .viewer-body .whole { white-space: pre-wrap; }

    @media (max-width: 480px) {
      .panel { inset: 0; width: 100%; max-width: none; height: 100%; max-height: none;
        border: 0; border-radius: 0; }
      .open .launcher { display: none; }
      textarea { font-size: 16px; } /* below 16px, iOS zooms the page on focus */
    }
    @media (prefers-reduced-motion: reduce) {
      .panel { animation: none; }
      .spinner { animation-duration: 2.4s; }
    }
  `;

  // --- DOM helpers: strings always become text nodes -------------------------------------------

  function h(tag, attrs = {}, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") el.className = value;
      else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
      else el.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return el;
  }

  const ICONS = {
    chat: ["M21 12a8 8 0 0 1-11.6 7.1L4 20.5l1.4-4.6A8 8 0 1 1 21 12Z"],
    close: ["M6 6l12 12", "M18 6L6 18"],
    back: ["M15 18l-6-6 6-6"],
  };

  function icon(name) {
    // The namespace is an identifier the DOM requires for SVG; nothing is fetched from it.
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    for (const d of ICONS[name]) {
      const path = document.createElementNS(ns, "path");
      path.setAttribute("d", d);
      svg.append(path);
    }
    return svg;
  }

  const spinner = () => h("span", { class: "spinner", "aria-hidden": "true" });

  // The API counts offsets in code points (Python str indices); JS strings index UTF-16 units,
  // so a character outside the BMP (𠀀, 🚀) would shift every later offset by one.
  // units[i] is the UTF-16 index of code point i; units[units.length - 1] is text.length.
  function unitOffsets(text) {
    const units = [0];
    let at = 0;
    for (const ch of text) {
      at += ch.length;
      units.push(at);
    }
    return units;
  }

  // Appends text[from:to] (code points) to parent, with the parts inside `spans` in <mark>.
  function appendMarked(parent, text, units, from, to, spans) {
    const ranges = spans
      .map((s) => [Math.max(s.start, from), Math.min(s.end, to)])
      .filter(([a, b]) => a < b)
      .sort((x, y) => x[0] - y[0]);
    const marks = [];
    let cursor = from;
    for (const [start, end] of ranges) {
      const a = Math.max(start, cursor);
      if (a >= end) continue;
      if (a > cursor) parent.append(document.createTextNode(text.slice(units[cursor], units[a])));
      const mark = h("mark", {}, text.slice(units[a], units[end]));
      parent.append(mark);
      marks.push(mark);
      cursor = end;
    }
    if (cursor < to) parent.append(document.createTextNode(text.slice(units[cursor], units[to])));
    return marks;
  }

  // --- talking to the API ----------------------------------------------------------------------

  class Failure extends Error {
    constructor(kind, status = 0, code = "", detail = "") {
      super(`${kind} ${status} ${code}`);
      Object.assign(this, { kind, status, code, detail });
    }
  }

  async function request(path, init = {}) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
    try {
      let response;
      try {
        const headers = KEY ? { ...init.headers, Authorization: `Bearer ${KEY}` } : init.headers;
        response = await fetch(API + path, { ...init, headers, signal: controller.signal });
      } catch {
        throw new Failure(controller.signal.aborted ? "timeout" : "offline");
      }
      // A proxy's error page is not JSON; treat it like a body without details.
      const body = await response.json().catch(() => null);
      if (!response.ok) {
        const error = (body && body.error) || {};
        throw new Failure("http", response.status, error.code || "", error.message || "");
      }
      if (!body || typeof body !== "object") throw new Failure("garbled");
      return body;
    } finally {
      clearTimeout(timer);
    }
  }

  const search = (query) =>
    request("/v1/search", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ query, top_k: TOP_K }),
    });

  const documents = new Map(); // doc_id -> Promise of the document, fetched once

  function fetchDocument(docId) {
    if (!documents.has(docId)) {
      const pending = request(`/v1/documents/${encodeURIComponent(docId)}`, {
        headers: { Accept: "application/json" },
      });
      pending.catch(() => documents.delete(docId)); // a failure is not cached: 重试 asks again
      documents.set(docId, pending);
    }
    return documents.get(docId);
  }

  // A sentence for the reader, the server's own words (if any) as detail, and whether retrying
  // can help (it cannot for a missing key or a question that is too long).
  function describe(failure) {
    const { kind, status, code, detail } = failure instanceof Failure ? failure : {};
    if (kind === "offline") return { text: t.offline, retry: true };
    if (kind === "timeout") return { text: t.timeout, retry: true };
    if (kind !== "http") return { text: t.garbled, retry: true };
    if (code === "not_ready") return { text: t.notReady, detail, retry: true };
    if (code === "missing_api_key" || code === "wrong_api_key") {
      return { text: t.needsKey, detail, retry: false };
    }
    if (code === "query_too_long" || code === "body_too_large") {
      return { text: t.tooLong, detail, retry: false };
    }
    if (status >= 500 || status === 408 || status === 429) {
      return { text: t.server(status), detail, retry: true };
    }
    return { text: t.refused(status), detail, retry: false };
  }

  function errorBlock(failure, retry) {
    const { text, detail, retry: canRetry } = describe(failure);
    return h(
      "div",
      { class: "error", role: "alert" },
      h("p", {}, text),
      detail ? h("p", { class: "detail" }, detail) : null,
      canRetry
        ? h("button", { type: "button", class: "pill retry", onclick: retry }, t.retry)
        : null,
    );
  }

  // --- the widget ------------------------------------------------------------------------------

  const host = h("div", { "data-bulletin-widget": "" });
  const root = host.attachShadow({ mode: "open" });

  const launcher = h(
    "button",
    {
      type: "button",
      class: "launcher",
      "aria-label": t.open,
      "aria-expanded": "false",
      "aria-controls": "panel",
    },
    icon("chat"),
    h("span", { "aria-hidden": "true" }, t.launcher),
  );
  const closeButton = h("button", { type: "button", class: "icon-button", "aria-label": t.close });
  closeButton.append(icon("close"));
  const log = h("div", { class: "log", role: "log" }, h("p", { class: "intro" }, t.intro));
  const input = h("textarea", { rows: 1, "aria-label": t.input, placeholder: t.placeholder });
  const sendButton = h("button", { type: "submit", class: "send" }, t.send);
  const composer = h("form", { class: "composer" }, input, sendButton);
  const main = h(
    "div",
    { class: "main" },
    h("div", { class: "bar" }, h("h2", { id: "title" }, t.title), closeButton),
    log,
    composer,
  );

  const backButton = h("button", { type: "button", class: "icon-button back" });
  backButton.append(icon("back"), document.createTextNode(t.back));
  const viewerMeta = h("p", { class: "viewer-meta" });
  const viewerBody = h("div", { class: "viewer-body", tabindex: "-1" });
  const viewer = h(
    "div",
    { class: "viewer", role: "region", "aria-label": t.source, hidden: true },
    h("div", { class: "bar" }, backButton, h("h3", {}, t.sourceTitle)),
    viewerMeta,
    viewerBody,
  );
  const panel = h(
    "div",
    { class: "panel", id: "panel", role: "dialog", "aria-labelledby": "title", hidden: true },
    main,
    viewer,
  );
  const widget = h("div", { class: "widget", lang: t.lang }, launcher, panel);
  root.append(h("style", {}, STYLE), widget);

  function open() {
    if (!panel.hidden) return;
    panel.hidden = false;
    widget.classList.add("open");
    launcher.setAttribute("aria-expanded", "true");
    input.focus();
  }

  function close() {
    if (panel.hidden) return;
    closeViewer(false);
    panel.hidden = true;
    widget.classList.remove("open");
    launcher.setAttribute("aria-expanded", "false");
    launcher.focus();
  }

  launcher.addEventListener("click", () => (panel.hidden ? open() : close()));
  closeButton.addEventListener("click", close);
  backButton.addEventListener("click", () => closeViewer(true));
  // Esc unwinds one layer at a time: the source viewer first, then the panel.
  root.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || panel.hidden) return;
    event.preventDefault();
    if (!viewer.hidden) closeViewer(true);
    else close();
  });

  // --- the conversation ------------------------------------------------------------------------

  let busy = false; // one question in flight at a time; a second Enter meanwhile is ignored

  // Grows with what is typed, up to five lines; the placeholder alone never grows it.
  function autosize() {
    input.style.height = "";
    if (input.value && input.scrollHeight > input.clientHeight) {
      input.style.height = `${Math.min(input.scrollHeight + 2, 128)}px`;
    }
  }

  input.addEventListener("input", autosize);
  input.addEventListener("keydown", (event) => {
    // isComposing: Enter that confirms a pinyin candidate must not send the question.
    if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) {
      return;
    }
    event.preventDefault();
    submit();
  });
  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });

  function submit() {
    const question = input.value.trim();
    if (!question || busy) return;
    input.value = "";
    autosize();
    const answer = h("div", { class: "answer" });
    const turn = h("div", { class: "turn" }, h("p", { class: "question" }, question), answer);
    log.append(turn);
    ask(question, turn, answer);
  }

  async function ask(question, turn, answer) {
    if (busy) return;
    busy = true;
    sendButton.setAttribute("aria-disabled", "true");
    turn.dataset.state = "loading";
    answer.replaceChildren(h("p", { class: "loading", role: "status" }, spinner(), t.loading));
    reveal(turn);
    try {
      const reply = await search(question);
      turn.dataset.state = showReply(answer, reply);
    } catch (failure) {
      turn.dataset.state = "error";
      answer.replaceChildren(errorBlock(failure, () => ask(question, turn, answer)));
    } finally {
      busy = false;
      sendButton.removeAttribute("aria-disabled");
    }
    reveal(turn);
  }

  // Scrolls the log so the question sits at the top and its answer below it.
  function reveal(turn) {
    log.scrollTop = Math.max(0, turn.offsetTop - 12);
  }

  function showReply(answer, reply) {
    const results = Array.isArray(reply.results) ? reply.results : [];
    // `answerable` is newer than the rest of the API: a reply without it is an answer.
    if (reply.answerable !== false && results.length > 0) {
      answer.replaceChildren(h("p", { class: "summary" }, t.found(results.length)), cards(results));
      return "answered";
    }
    // Passages that do not answer are never shown as answers: only folded, and labelled so.
    answer.replaceChildren(
      h("p", { class: "no-answer" }, t.noAnswer),
      reply.message ? h("p", { class: "detail" }, String(reply.message)) : null,
      results.length
        ? h("details", { class: "nearest" }, h("summary", {}, t.nearest), cards(results))
        : null,
    );
    return "unanswered";
  }

  // headline · section · ¶n, as the CLI prints it; a PDF's page after it.
  function citationLine(citation) {
    return [
      citation.headline || citation.doc_id,
      citation.section,
      `¶${citation.paragraph}`,
      pageOf(citation),
    ]
      .filter(Boolean)
      .join(" · ");
  }

  // "PDF 第 3 页" for a citation into a PDF (its page is 1-based); "" for any other.
  function pageOf(citation) {
    const page = Number(citation.page);
    return Number.isInteger(page) && page > 0 ? t.page(page) : "";
  }

  // A web page's address, as a link that opens apart from the host page; none for any other
  // document, or for an address that is not http(s) (the index refuses those already).
  function publishedLink(doc) {
    const url = typeof doc.url === "string" ? doc.url : "";
    if (!/^https?:\/\/[^\s/]+/i.test(url)) return null;
    const label = doc.site ? `${t.published}（${doc.site}）` : t.published;
    const attrs = { class: "viewer-link", href: url, target: "_blank" };
    return h("a", { ...attrs, rel: "noopener noreferrer nofollow" }, label);
  }

  function cards(results) {
    return h("ol", { class: "cards" }, results.map(card));
  }

  function card(result) {
    const citation = result.citation || {};
    const text = String(result.text ?? "");
    const units = unitOffsets(text);
    const passage = h("p", { class: "passage" });
    appendMarked(passage, text, units, 0, units.length - 1, result.highlights || []);
    const where = citationLine(citation);
    // Reprints of this passage (the API folds them into one result) are named, not repeated.
    const twins = Array.isArray(result.duplicates) ? result.duplicates : [];
    const view = h(
      "button",
      { type: "button", class: "pill view", "aria-label": t.sourceOf(where) },
      t.source,
    );
    view.addEventListener("click", () => openSource(citation, view));
    const score = Number(result.score);
    return h(
      "li",
      { class: "card" },
      passage,
      h("p", { class: "cite" }, where),
      twins.length
        ? h("p", { class: "also" }, t.also(twins.map((c) => citationLine(c || {})).join("；")))
        : null,
      h(
        "div",
        { class: "card-foot" },
        view,
        h(
          "span",
          { class: "rank", title: t.rank },
          `#${result.rank}` + (Number.isFinite(score) ? ` · ${score.toFixed(3)}` : ""),
        ),
      ),
    );
  }

  // --- the source viewer -----------------------------------------------------------------------

  let viewerOpener = null; // the 查看原文 button to give focus back to
  let viewerRequest = 0; // a slow document must not replace the one asked for after it

  async function openSource(citation, opener) {
    const spans = Array.isArray(citation.spans) ? citation.spans : [];
    const asked = ++viewerRequest;
    viewerOpener = opener;
    viewer.hidden = false;
    main.inert = true; // Tab stays inside the viewer while it covers the conversation
    viewerMeta.textContent = "";
    viewerBody.replaceChildren(
      h("p", { class: "loading", role: "status" }, spinner(), t.loadingSource),
    );
    backButton.focus();
    try {
      const doc = await fetchDocument(citation.doc_id);
      if (asked !== viewerRequest) return;
      viewerMeta.textContent = [doc.title, doc.date !== "unknown" && doc.date, doc.source]
        .filter(Boolean)
        .join(" · ");
      const page = pageOf(citation);
      if (page) viewerMeta.append(" · ", h("span", { class: "viewer-page" }, page));
      const published = publishedLink(doc);
      if (published) viewerMeta.append(" · ", published);
      const marks = showSource(doc, spans);
      if (marks.length) {
        // offsetTop is relative to viewerBody (position: relative); scrollIntoView could
        // scroll the host page as well.
        viewerBody.scrollTop = Math.max(0, marks[0].offsetTop - viewerBody.clientHeight / 3);
      }
    } catch (failure) {
      if (asked !== viewerRequest) return;
      viewerBody.replaceChildren(errorBlock(failure, () => openSource(citation, opener)));
    }
  }

  function closeViewer(refocus) {
    if (viewer.hidden) return;
    viewerRequest++;
    viewer.hidden = true;
    main.inert = false;
    if (refocus && viewerOpener) viewerOpener.focus();
  }

  // The cited article paragraph by paragraph, the cited spans marked. Falls back to the whole
  // bulletin when the article cannot hold every cited character, so a citation is never lost.
  function showSource(doc, spans) {
    const text = String(doc.text ?? "");
    const units = unitOffsets(text);
    const cited = spans.reduce((n, s) => n + Math.max(0, s.end - s.start), 0);
    const markedLength = (marks) =>
      marks.reduce((n, m) => n + Array.from(m.textContent).length, 0);

    const article = spans.length ? findArticle(doc, spans[0]) : null;
    if (article) {
      const body = h("div", {}, h("h4", {}, article.headline || ""));
      if (article.byline) body.append(h("p", { class: "byline" }, article.byline));
      const marks = [];
      let section = "";
      for (const paragraph of article.paragraphs || []) {
        if (paragraph.section && paragraph.section !== section) {
          body.append(h("h5", {}, paragraph.section));
        }
        section = paragraph.section;
        const p = h("p", {});
        for (const s of paragraph.spans || []) {
          marks.push(...appendMarked(p, text, units, s.start, s.end, spans));
        }
        body.append(p);
      }
      if (markedLength(marks) === cited) {
        viewerBody.replaceChildren(body);
        return marks;
      }
    }
    const whole = h("div", { class: "whole" });
    const marks = appendMarked(whole, text, units, 0, units.length - 1, spans);
    viewerBody.replaceChildren(whole);
    return marks;
  }

  function findArticle(doc, first) {
    const holds = (s) => s.start <= first.start && first.start < s.end;
    return (doc.articles || []).find((a) =>
      (a.paragraphs || []).some((p) => (p.spans || []).some(holds)),
    );
  }

  // --- mount -----------------------------------------------------------------------------------

  const mount = () => document.body.append(host);
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });

  // For host pages: open the panel, close it, or ask a question from a button of their own.
  window.BulletinWidget = Object.freeze({
    open,
    close,
    ask(question) {
      open();
      closeViewer(false);
      input.value = String(question);
      submit();
    },
  });
})();
