/* Stepwise reviewer keyboard and queue helpers. Loaded on every page (no inline script: the
   CSP allows only our own files). Shortcuts never fire while typing in a field, and a decision
   key is ignored while a decision is on its way or just landed, so a double keystroke never
   decides twice (the server refuses a second decision of the same review as well). */
(function () {
  "use strict";

  var SETTLE_MS = 300;     // after a decision brought the next review, decision keys wait this long
  var busy = false;        // a decision request is in flight
  var settledAt = -Infinity;  // (0 would lock the keys for the page's first 300 ms)
  var lastChecked = null;  // the inbox checkbox clicked last (shift-click ranges)
  var inboxCursor = null;  // the inbox row `j`/`k` chose: {review: id, index: its row}
  var EDIT_FIELDS = "[data-edit-field] input, [data-edit-field] textarea, " +
                    "[data-edit-field] select";

  var HELP = [
    ["j", "next review in the list (inbox: next row)"],
    ["k", "previous review (inbox: previous row)"],
    ["Enter", "inbox: open the selected review"],
    ["x", "inbox: select the row for a bulk decision"],
    ["a", "approve (Agent Inbox: accept)"],
    ["r", "reject: puts the cursor in the reason (Agent Inbox: respond)"],
    ["e", "edit: puts the cursor in the first editable field"],
    ["Enter", "in an edited field: save the edits and approve (unchanged: nothing)"],
    ["Ctrl+Enter", "in the reason or an edited field: send that decision"],
    ["c", "claim the review"],
    ["Esc", "leave a field (shortcuts work again), then undo changed values, or close this help"],
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

  function say(form, text, aboutFocus) {
    // `aboutFocus`: the hint describes the field that has the focus, and goes when it leaves
    var hint = form.querySelector(".pending-hint");
    if (!hint) return;
    hint.textContent = text;
    hint.hidden = !text;
    if (aboutFocus) form.dataset.focusHint = "1"; else delete form.dataset.focusHint;
  }

  function prepare(form, action, fieldSelector) {
    // r / e: the cursor goes where the reviewer must type; Ctrl+Enter then sends `action`.
    var field = form.querySelector(fieldSelector);
    if (!field) return false;
    form.dataset.pending = action;
    field.focus();
    say(form, "Ctrl+Enter sends: " + action + ". Esc leaves the field.", true);
    return true;
  }

  // ---- edited values: approving must never send the values as asked once one was changed

  function editFields(form) {
    return Array.prototype.slice.call(form.querySelectorAll(EDIT_FIELDS));
  }

  function originals(form) {
    // The values as asked, from the server: after a refused post the fields show what was
    // sent, so their own default values are not the original ones.
    if (!form.stepwiseOriginals) {
      var kept = form.previousElementSibling;  // the templates put them just before the form
      var json = kept && kept.getAttribute("data-edit-originals");
      try { form.stepwiseOriginals = JSON.parse(json || "{}"); }
      catch (e) { form.stepwiseOriginals = {}; }
    }
    return form.stepwiseOriginals;
  }

  function original(form, field) {
    var known = originals(form);
    if (Object.prototype.hasOwnProperty.call(known, field.name)) return known[field.name];
    if (field.type === "checkbox") return field.defaultChecked;
    if (field.tagName === "SELECT") {
      var chosen = Array.prototype.find.call(field.options, function (o) { return o.defaultSelected; });
      return chosen ? chosen.value : (field.options.length ? field.options[0].value : "");
    }
    return field.defaultValue;
  }

  function isChanged(form, field) {
    var was = original(form, field);
    if (field.type === "checkbox") return field.checked !== Boolean(was);
    var before = String(was === null || was === undefined ? "" : was).replace(/\r\n/g, "\n");
    var now = field.value.replace(/\r\n/g, "\n");
    if (field.type === "number" && before !== "" && now !== "") {
      return Number(before) !== Number(now);  // 1250 is 1250.00, as the server compares them
    }
    return before !== now;
  }

  function changedFields(form) {
    return editFields(form).filter(function (field) { return isChanged(form, field); });
  }

  function fieldLabel(field) {
    var label = field.labels && field.labels[0];
    return label ? label.textContent.replace("*", "").trim() : field.name;
  }

  function syncUndo(form) {
    var changed = changedFields(form).length > 0;
    form.querySelectorAll("[data-undo-box]").forEach(function (box) { box.hidden = !changed; });
  }

  function undoEdits(form) {
    editFields(form).forEach(function (field) {
      var was = original(form, field);
      if (field.type === "checkbox") field.checked = Boolean(was);
      else field.value = was === null || was === undefined ? "" : String(was);
    });
    delete form.dataset.pending;
    say(form, "Changes undone: the values are as they were asked.");
    syncUndo(form);
  }

  function refuseOriginal(form, changed) {
    // `a` (or Approve) with changed values would approve the values as asked: say how to
    // send the edits instead, and let Ctrl+Enter do it from wherever the focus is
    var verb = form.classList.contains("agent-answer") ? "accept" : "approve";
    form.dataset.pending = "edit";
    say(form, "You changed " + changed.map(fieldLabel).join(", ") + ": press Ctrl+Enter to " +
        "save the edits and " + verb + ", or Esc to undo them.");
  }

  // ---- a typed response: only Respond sends it, so approving must not drop it silently

  function responseFields(form) {
    return Array.prototype.slice.call(
      form.querySelectorAll("textarea[name=text], [data-response-field]"));
  }

  function typedResponses(form) {
    return responseFields(form).filter(function (field) { return field.value.trim() !== ""; });
  }

  function refuseResponse(form) {
    // the server refuses it too; here it is said at once, with the way out (Esc clears)
    var agent = form.classList.contains("agent-answer");
    form.dataset.pending = agent ? "response" : "respond";
    form.dataset.refusedResponse = "1";
    form.querySelectorAll("[data-clear-response-box]").forEach(function (b) { b.hidden = false; });
    say(form, "You wrote a response, but " + (agent ? "Accept" : "Approve") + " does not send " +
        "it: press Ctrl+Enter to send it (" + (agent ? "Send response" : "Respond") + "), or " +
        "Esc to clear it.");
  }

  function clearResponses(form) {
    responseFields(form).forEach(function (field) { field.value = ""; });
    delete form.dataset.pending;
    delete form.dataset.refusedResponse;
    form.querySelectorAll("[data-clear-response-box]").forEach(function (b) { b.hidden = true; });
    say(form, "Response cleared: press a to " +
        (form.classList.contains("agent-answer") ? "accept" : "approve") + " without it.");
  }

  function refuseApprove(form) {
    // true when `a`/Approve must not go ahead: it would drop changed values or a response
    var changed = changedFields(form);
    if (changed.length) { refuseOriginal(form, changed); return true; }
    if (typedResponses(form).length) { refuseResponse(form); return true; }
    return false;
  }

  function send(form, action, field) {
    if (!action || locked()) return false;
    var button = form.querySelector("button[value='" + action + "']") ||
                 chooseInGroups(form, action, field);
    if (!button || button.disabled) return false;
    button.click();
    return true;
  }

  function chooseInGroups(form, action, field) {
    // an Agent Inbox form with several requests answers each by its radio, sent by one button
    var sections = [];
    if (action === "edit") {
      changedFields(form).forEach(function (f) { sections.push(f.closest(".agent-request")); });
    } else if (action === "response" && !(field && field.closest && field.closest("form"))) {
      typedResponses(form).forEach(function (f) { sections.push(f.closest(".agent-request")); });
    } else if (field && field.closest) {
      sections.push(field.closest(".agent-request"));
    }
    var chose = false;
    sections.forEach(function (section) {
      var radio = section && section.querySelector("input[type=radio][value='" + action + "']");
      if (radio) { radio.checked = true; chose = true; }
    });
    return chose ? form.querySelector(".buttons button[type=submit]") : null;
  }

  function fieldDecision(form, field) {
    // what Ctrl+Enter in this field sends: the edit from an edited field, else the decision
    // `r`/`e` prepared, else the field's own (the reason rejects, a response responds)
    if (field.closest("[data-edit-field]")) return "edit";
    if (form.dataset.pending) return form.dataset.pending;
    if (field.name === "comment") return "reject";
    if (field.name === "text") return "respond";
    if (field.hasAttribute("data-response-field")) return "response";
    return "";
  }

  function reviewKey(key) {
    var form = decisionForm();
    if (key === "j") return press("#queue-next");
    if (key === "k") return press("#queue-prev");
    if (key === "c") return press("[data-shortcut='c']");
    if (!form || locked()) return false;
    if (key === "a") {
      if (refuseApprove(form)) return true;
      return press("#review-page [data-shortcut='a']");
    }
    if (key === "r") {
      if (form.classList.contains("agent-answer")) {
        return prepare(form, "response", "[data-response-field]");
      }
      return prepare(form, "reject", "textarea[name=comment]");
    }
    if (key === "e") {
      return prepare(form, "edit", EDIT_FIELDS);
    }
    return false;
  }

  function inboxRows() {
    return Array.prototype.slice.call(document.querySelectorAll("#inbox-list tbody tr"));
  }

  function rowReview(row) {
    var link = row.querySelector("a[data-review-link]");
    var match = link && /\/reviews\/(\d+)\//.exec(link.getAttribute("href"));
    return match ? match[1] : null;
  }

  function moveCursor(rows, index, focus) {
    rows.forEach(function (r) { r.classList.remove("current"); });
    rows[index].classList.add("current");
    inboxCursor = { review: rowReview(rows[index]), index: index };
    var link = rows[index].querySelector("a[data-review-link]");
    if (link && focus) link.focus();
  }

  function restoreCursor(hadFocus) {
    // a live update or a filter swapped the list: the cursor stays on its review, or takes
    // the row now at its place when that review left the list
    var rows = inboxRows();
    if (!inboxCursor || !rows.length) return;
    var index = rows.findIndex(function (r) { return rowReview(r) === inboxCursor.review; });
    if (index === -1) index = Math.min(inboxCursor.index, rows.length - 1);
    moveCursor(rows, index, hadFocus);
  }

  function inboxKey(key) {
    var rows = inboxRows();
    if (!rows.length) return false;
    var current = rows.findIndex(function (r) { return r.classList.contains("current"); });
    if (key === "j" || key === "k") {
      var next = current === -1 ? 0 : current + (key === "j" ? 1 : -1);
      moveCursor(rows, Math.max(0, Math.min(rows.length - 1, next)), true);
      return true;
    }
    if (key === "x" && current !== -1) {
      var box = rows[current].querySelector("input[data-bulk-row]");
      if (box) { box.click(); return true; }
    }
    return false;
  }

  function isDecisionForm(form) {
    return !!(form && form.matches && form.matches("form.decide, form.agent-answer"));
  }

  function implicitlySubmits(el) {
    var kind = (el.getAttribute("type") || "text").toLowerCase();
    return el.tagName === "INPUT" && ["button", "submit", "reset", "image"].indexOf(kind) === -1;
  }

  function ctrlEnter(event) {
    var target = event.target;
    var form = isDecisionForm(target.form) ? target.form : null;
    var action = form ? fieldDecision(form, target) : "";
    if (!form && !typing(target)) {  // focus on the page: the decision prepared, if any
      form = decisionForm();
      action = form && (form.dataset.pending || (changedFields(form).length ? "edit" : ""));
    }
    if (form && action) { event.preventDefault(); send(form, action, target); }
  }

  function enterInField(event) {
    // The browser would press the form's first button, Approve, with the fields as they are.
    var form = event.target.form;
    event.preventDefault();
    if (changedFields(form).length) { send(form, "edit", event.target); return; }
    say(form, "Nothing changed: Enter sends nothing here. Press a to approve as asked, or " +
        "change a value and press Enter to save it.");
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.isComposing) return;
    var target = event.target;
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { ctrlEnter(event); return; }
    if (event.key === "Enter" && !event.altKey && isDecisionForm(target.form) &&
        implicitlySubmits(target)) {
      enterInField(event);
      return;
    }
    if (event.key === "Escape" && typing(target)) { target.blur(); return; }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(target)) return;
    if (event.repeat) return;  // a held key is one keystroke, not a burst of decisions
    var help = document.getElementById("kbd-help");
    if (event.key === "?") { event.preventDefault(); toggleHelp(); return; }
    if (help && help.open) return;
    var form = decisionForm();
    if (event.key === "Escape" && form && changedFields(form).length) {
      event.preventDefault();
      undoEdits(form);
      return;
    }
    if (event.key === "Escape" && form && form.dataset.refusedResponse) {
      event.preventDefault();  // only once refused: a plain Esc never throws away typed text
      clearResponses(form);
      return;
    }
    var handled = false;
    if (document.getElementById("review-page")) handled = reviewKey(event.key);
    else if (document.getElementById("inbox-list")) handled = inboxKey(event.key);
    if (handled) event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    var opener = event.target.closest && event.target.closest("[data-help-open]");
    if (opener) { toggleHelp(); return; }
    var undo = event.target.closest && event.target.closest("[data-undo-edits]");
    if (undo && isDecisionForm(undo.form)) { undoEdits(undo.form); return; }
    var clear = event.target.closest && event.target.closest("[data-clear-response]");
    if (clear && isDecisionForm(clear.form)) { clearResponses(clear.form); return; }
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

  document.addEventListener("submit", function (event) {
    // Approve clicked (or Enter the keydown above did not see) with changed values or a
    // typed response: the server would refuse it, so say why at once. Capturing: htmx never sees this submit.
    var form = event.target;
    var by = event.submitter;
    if (!isDecisionForm(form) || !by || !by.matches("[data-shortcut='a']")) return;
    if (!refuseApprove(form)) return;
    event.preventDefault();
    event.stopImmediatePropagation();
  }, true);

  document.addEventListener("input", function (event) {
    if (isDecisionForm(event.target.form)) syncUndo(event.target.form);
  });
  document.addEventListener("change", function (event) {
    if (isDecisionForm(event.target.form)) syncUndo(event.target.form);
  });

  document.addEventListener("focusin", function (event) {
    // the reason (or a response) says what Ctrl+Enter sends there, before it is pressed
    var field = event.target;
    if (!isDecisionForm(field.form) || !typing(field)) return;
    var action = fieldDecision(field.form, field);
    if (action) say(field.form, "Ctrl+Enter sends: " + action + ". Esc leaves the field.", true);
  });

  document.addEventListener("focusin", function (event) {
    // the field's hint goes once the focus is elsewhere on the page: after a decision htmx
    // puts the focus back in the next review's reason (same id) before it moves to the
    // heading, and the hint said "Ctrl+Enter sends: reject" under a box nobody was in. Not
    // on focusout: a click on a button below would move it up between press and release,
    // and the click would miss. A decision `r` prepared is still what Ctrl+Enter sends.
    var form = decisionForm();
    if (!form || !form.dataset.focusHint || form.contains(event.target)) return;
    var pending = form.dataset.pending;
    say(form, pending ? "Ctrl+Enter sends: " + pending + "." : "");
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
  function describeError(field) {
    // the field says it is invalid and which message explains it (read when it is focused)
    field.setAttribute("aria-invalid", "true");
    var ids = (field.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
    var box = field.closest(".field");
    Array.prototype.forEach.call(box ? box.querySelectorAll(".error[id]") : [], function (e) {
      if (ids.indexOf(e.id) === -1) ids.push(e.id);
    });
    if (ids.length) field.setAttribute("aria-describedby", ids.join(" "));
  }

  function focusFirstError() {
    // a refused decision (400) came back: the reviewer fixes the first invalid field
    var form = decisionForm();
    if (!form) return false;
    var invalid = form.querySelectorAll(".has-error input, .has-error textarea, .has-error select");
    Array.prototype.forEach.call(invalid, describeError);
    // only a value: after "Say why you reject it" the heading keeps the focus, so `r` still
    // puts the cursor in the reason (test_e2e_reviewer's keyboard flow relies on it)
    var value = form.querySelector("[data-edit-field] .has-error input, " +
      "[data-edit-field] .has-error textarea, [data-edit-field] .has-error select");
    if (value) { value.focus(); return true; }
    return false;
  }

  function focusRefusedForm() {
    // a refused fork or new run comes back as a whole page: the focus goes to what to fix
    // (the first invalid field, else the form's message), not to the top of the page
    var form = document.querySelector("form[data-focus-errors]");
    if (!form) return false;
    var invalid = form.querySelectorAll(".has-error input, .has-error textarea, .has-error select");
    Array.prototype.forEach.call(invalid, describeError);
    if (invalid.length) { invalid[0].focus(); return true; }
    var said = form.querySelector(".error[role=alert]");
    if (!said) return false;
    said.setAttribute("tabindex", "-1");
    said.focus();
    return true;
  }

  function pageShown() {
    if (focusRefusedForm()) return true;
    var form = decisionForm();
    if (form) syncUndo(form);
    if (form && form.querySelector(".has-error [data-response-field], .has-error textarea[name=text]")) {
      // the server refused Approve for the response: the same way out as when refused here
      form.dataset.refusedResponse = "1";
      form.querySelectorAll("[data-clear-response-box]").forEach(function (b) { b.hidden = false; });
    }
    return focusFirstError();
  }

  // ---- the review page's live refresh: the decision form goes once the review closes

  function typedText(area) {
    // what the reviewer wrote and would lose with the form: the reason, the response
    var texts = [];
    area.querySelectorAll("textarea[name=comment], textarea[name=text], [data-response-field]")
      .forEach(function (field) {
        if (field.value.trim()) texts.push(fieldLabel(field) + ": " + field.value.trim());
      });
    return texts;
  }

  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail.target;
    if (!target || target.id !== "decide-area") return;
    var fragment = event.detail.fragment;
    var incoming = fragment && fragment.querySelector ? fragment.querySelector("#decide-area") : null;
    incoming = incoming || (fragment && fragment.firstElementChild);
    var stillOpen = incoming && incoming.getAttribute("data-open") === "1";
    if (stillOpen && target.getAttribute("data-open") === "1") {
      // the review is still open: keep the form as it is (what was typed, the pending hint);
      // the claim box is refreshed on its own
      event.detail.shouldSwap = false;
      return;
    }
    if (!stillOpen && incoming) {
      var page = document.getElementById("review-page");
      if (page) page.setAttribute("data-open", "");
      var typed = typedText(target);
      if (typed.length) {
        // keep what was typed visible: it was not sent, and may be wanted elsewhere
        var kept = document.createElement("div");
        kept.className = "unsent";
        var note = document.createElement("p");
        note.className = "help";
        note.textContent = "Not sent (the review closed while you were writing):";
        kept.appendChild(note);
        typed.forEach(function (text) {
          var pre = document.createElement("pre");
          pre.className = "unsent-text";
          pre.textContent = text;
          kept.appendChild(pre);
        });
        incoming.appendChild(kept);
      }
    }
  });

  var listSwap = null;  // the inbox list is being replaced: was the focus in it?
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "inbox-list") {
      listSwap = { hadFocus: target.contains(document.activeElement) };
    }
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    // a swap may have removed selected rows (decided elsewhere) or brought new ones: the
    // count says what a bulk decision would send now, after every swap
    updateBulkCount();
    if (listSwap && document.getElementById("inbox-list")) {
      var hadFocus = listSwap.hadFocus;
      listSwap = null;
      restoreCursor(hadFocus);
      return;
    }
    if (event.target !== document.body) return;
    if (pageShown()) return;
    // focus the new review's heading so the keyboard (and a screen reader) starts there
    var heading = document.querySelector("#review-page h1");
    if (heading) {
      heading.setAttribute("tabindex", "-1");
      heading.focus({ preventScroll: true });
    }
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", pageShown);
  else pageShown();
})();
