/* Stepwise reviewer keyboard and queue helpers. Loaded on every page (no inline script: the
   CSP allows only our own files). Shortcuts never fire while typing in a field, and a decision
   key is ignored while a decision is on its way or just landed, so a double keystroke never
   decides twice (the server refuses a second decision of the same review as well). */
(function () {
  "use strict";

  var SETTLE_MS = 300;     // after a decision brought the next review, decision keys wait this long
  var busy = false;        // a decision request is in flight
  var settledAt = 0;
  var lastChecked = null;  // the inbox checkbox clicked last (shift-click ranges)

  var HELP = [
    ["j", "next review in the list (inbox: next row)"],
    ["k", "previous review (inbox: previous row)"],
    ["Enter", "inbox: open the selected review"],
    ["x", "inbox: select the row for a bulk decision"],
    ["a", "approve (Agent Inbox: accept)"],
    ["r", "reject: puts the cursor in the reason (Agent Inbox: respond)"],
    ["e", "edit: puts the cursor in the first editable field"],
    ["Ctrl+Enter", "in the reason or an edited field: send that decision"],
    ["c", "claim the review"],
    ["Esc", "leave a field (shortcuts work again) or close this help"],
    ["?", "show or hide this help"]
  ];

  function typing(el) {
    if (!el || el === document.body) return false;
    if (el.isContentEditable) return true;
    var tag = el.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") return true;
    if (tag !== "INPUT") return false;
    var kind = (el.getAttribute("type") || "text").toLowerCase();
    return ["checkbox", "radio", "button", "submit", "reset"].indexOf(kind) === -1;
  }

  function helpDialog() {
    var dialog = document.getElementById("kbd-help");
    if (dialog) return dialog;
    dialog = document.createElement("dialog");
    dialog.id = "kbd-help";
    dialog.className = "kbd-help";
    dialog.setAttribute("aria-labelledby", "kbd-help-title");
    var h = document.createElement("h2");
    h.id = "kbd-help-title";
    h.textContent = "Keyboard shortcuts";
    dialog.appendChild(h);
    var dl = document.createElement("dl");
    HELP.forEach(function (pair) {
      var dt = document.createElement("dt");
      var kbd = document.createElement("kbd");
      kbd.textContent = pair[0];
      dt.appendChild(kbd);
      var dd = document.createElement("dd");
      dd.textContent = pair[1];
      dl.appendChild(dt);
      dl.appendChild(dd);
    });
    dialog.appendChild(dl);
    var close = document.createElement("button");
    close.type = "button";
    close.textContent = "Close";
    close.addEventListener("click", function () { dialog.close(); });
    dialog.appendChild(close);
    document.body.appendChild(dialog);
    return dialog;
  }

  function toggleHelp() {
    var dialog = helpDialog();
    if (dialog.open) dialog.close(); else dialog.showModal();
  }

  function decisionForm() {
    return document.querySelector("#review-page form.decide, #review-page form.agent-answer");
  }

  function locked() {
    return busy || (performance.now() - settledAt) < SETTLE_MS;
  }

  function press(selector) {
    var el = document.querySelector(selector);
    if (el && !el.disabled) { el.click(); return true; }
    return false;
  }

  function prepare(form, action, fieldSelector) {
    // r / e: the cursor goes where the reviewer must type; Ctrl+Enter then sends `action`.
    var field = form.querySelector(fieldSelector);
    if (!field) return false;
    form.dataset.pending = action;
    var hint = form.querySelector(".pending-hint");
    if (hint) {
      hint.textContent = "Ctrl+Enter sends: " + action + ". Esc leaves the field.";
      hint.hidden = false;
    }
    field.focus();
    return true;
  }

  function reviewKey(key) {
    var form = decisionForm();
    if (key === "j") return press("#queue-next");
    if (key === "k") return press("#queue-prev");
    if (key === "c") return press("[data-shortcut='c']");
    if (!form || locked()) return false;
    if (key === "a") return press("#review-page [data-shortcut='a']");
    if (key === "r") {
      if (form.classList.contains("agent-answer")) {
        return prepare(form, "response", "[data-response-field]");
      }
      return prepare(form, "reject", "textarea[name=comment]");
    }
    if (key === "e") {
      return prepare(form, "edit", "[data-edit-field] input, [data-edit-field] textarea, " +
                     "[data-edit-field] select");
    }
    return false;
  }

  function inboxRows() {
    return Array.prototype.slice.call(document.querySelectorAll("#inbox-list tbody tr"));
  }

  function inboxKey(key) {
    var rows = inboxRows();
    if (!rows.length) return false;
    var current = rows.findIndex(function (r) { return r.classList.contains("current"); });
    if (key === "j" || key === "k") {
      var next = current === -1 ? 0 : current + (key === "j" ? 1 : -1);
      next = Math.max(0, Math.min(rows.length - 1, next));
      rows.forEach(function (r) { r.classList.remove("current"); });
      rows[next].classList.add("current");
      var link = rows[next].querySelector("a[data-review-link]");
      if (link) link.focus();
      return true;
    }
    if (key === "x" && current !== -1) {
      var box = rows[current].querySelector("input[data-bulk-row]");
      if (box) { box.click(); return true; }
    }
    return false;
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.isComposing) return;
    var target = event.target;
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && target.form) {
      var form = target.form;
      var pending = form.dataset.pending;
      if (pending && !locked()) {
        var button = form.querySelector("button[value='" + pending + "']");
        if (button) { event.preventDefault(); button.click(); }
      }
      return;
    }
    if (event.key === "Escape" && typing(target)) { target.blur(); return; }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(target)) return;
    if (event.repeat) return;  // a held key is one keystroke, not a burst of decisions
    var help = document.getElementById("kbd-help");
    if (event.key === "?") { event.preventDefault(); toggleHelp(); return; }
    if (help && help.open) return;
    var handled = false;
    if (document.getElementById("review-page")) handled = reviewKey(event.key);
    else if (document.getElementById("inbox-list")) handled = inboxKey(event.key);
    if (handled) event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    var opener = event.target.closest && event.target.closest("[data-help-open]");
    if (opener) { toggleHelp(); return; }
    var box = event.target.closest && event.target.closest("input[data-bulk-row]");
    if (box) {
      if (event.shiftKey && lastChecked && lastChecked !== box && document.contains(lastChecked)) {
        var boxes = Array.prototype.slice.call(document.querySelectorAll("input[data-bulk-row]"));
        var a = boxes.indexOf(lastChecked), b = boxes.indexOf(box);
        boxes.slice(Math.min(a, b), Math.max(a, b) + 1).forEach(function (other) {
          other.checked = box.checked;
        });
      }
      lastChecked = box;
      var all = document.querySelector("input[data-bulk-all]");
      if (all && !box.checked) all.checked = false;
      updateBulkCount();
      return;
    }
    var allBox = event.target.closest && event.target.closest("input[data-bulk-all]");
    if (allBox) {
      document.querySelectorAll("input[data-bulk-row]").forEach(function (other) {
        other.checked = allBox.checked;
      });
      updateBulkCount();
    }
  });

  function updateBulkCount() {
    var out = document.getElementById("bulk-count");
    if (!out) return;
    var all = document.querySelector("input[data-bulk-all]");
    if (all && all.checked) { out.textContent = "all matching this filter"; return; }
    var n = document.querySelectorAll("input[data-bulk-row]:checked").length;
    out.textContent = n + " selected";
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    if (event.target.matches && event.target.matches("form[data-queue-form]")) busy = true;
  });
  function requestOver() {
    // fired on the form, or on <body> once the swap removed the form: either way it is over
    if (busy) { busy = false; settledAt = performance.now(); }
  }
  document.addEventListener("htmx:afterRequest", requestOver);
  document.addEventListener("htmx:sendError", requestOver);
  document.addEventListener("htmx:beforeSwap", function (event) {
    // a refused or invalid decision comes back as 400/409 with the page saying why: show it
    var status = event.detail.xhr.status;
    // the element that asked (detail.elt and event.target are the swap target, <body>)
    var elt = event.detail.requestConfig && event.detail.requestConfig.elt;
    if ((status === 400 || status === 409) && elt && elt.matches &&
        elt.matches("form[data-queue-form]")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.target !== document.body) return;
    // focus the new review's heading so the keyboard (and a screen reader) starts there
    var heading = document.querySelector("#review-page h1");
    if (heading) {
      heading.setAttribute("tabindex", "-1");
      heading.focus({ preventScroll: true });
    }
  });
})();
