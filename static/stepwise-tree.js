// The thread page's tree. The server draws what the page says it shows (#tree-state), so a
// click on a checkpoint records the selection there: live updates and unfolds then keep it.
(function () {
  "use strict";

  // the selection goes in the address (replaced, not a new history entry): a reload, a
  // bookmark or Back from another page shows the same checkpoint; the server then keeps it
  // selected across live updates, as it does a pick (it sets no `follow`)
  function remember(id) {
    if (!window.history || !window.URL) return;
    var url = new URL(window.location.href);
    url.searchParams.set("checkpoint", id);
    url.searchParams.delete("against");  // the new panel compares with its parent
    window.history.replaceState(window.history.state, "", url.toString());
  }

  function select(id) {
    remember(id);
    var state = document.querySelector("#tree-state input[name=checkpoint]");
    if (state) state.value = id;
    // the viewer's pick: live updates keep it, where they move the page's default to the head
    var follow = document.querySelector("#tree-state input[name=follow]");
    if (follow) follow.value = "";
    document.querySelectorAll("#tree-rows li.selected").forEach(function (li) {
      li.classList.remove("selected");
      var link = li.querySelector("a.cp");
      if (link) link.removeAttribute("aria-current");
    });
    var row = document.getElementById("cp-" + id);
    if (!row) return;
    row.classList.add("selected");
    var link = row.querySelector("a.cp");
    if (link) link.setAttribute("aria-current", "true");
  }

  // the newest rows (and the head) are at the bottom of a long tree: show the selected one
  function reveal() {
    var row = document.querySelector("#tree-rows li.selected");
    var box = row ? row.closest(".tree-scroll") : null;
    if (box) box.scrollTop = row.offsetTop - box.clientHeight / 2;
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", reveal);
  } else {
    reveal();
  }

  // a live update appends rows: a reader at the bottom follows them; a redrawn tree scrolls
  // back to the selected row
  var following = false;
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var box = document.querySelector("#tree-panel .tree-scroll");
    following = !!box && box.scrollTop + box.clientHeight >= box.scrollHeight - 40;
  });
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (!target) return;
    if (target.id === "tree-panel") {
      reveal();
    } else if (target.id === "tree-rows" && following) {
      var box = target.closest(".tree-scroll");
      if (box) box.scrollTop = box.scrollHeight;
    }
  });

  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("#tree-rows a.cp") : null;
    if (link) select(link.getAttribute("data-checkpoint"));
  });

  // "Compare with" asks for its choices once per panel, when it is about to be used: hovered,
  // focused (keyboard) or pressed (touch), so they are there when its list opens
  function loadChoices(event) {
    var box = event.target.closest ? event.target.closest("#against") : null;
    if (!box || box.hasAttribute("data-choices") || !window.htmx) return;
    box.setAttribute("data-choices", "asked");
    window.htmx.trigger(box.closest("label"), "choices");
  }
  ["mouseover", "focusin", "pointerdown"].forEach(function (name) {
    document.addEventListener(name, loadChoices, true);
  });
})();
