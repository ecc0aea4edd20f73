// The thread page's tree. The server draws what the page says it shows (#tree-state), so a
// click on a checkpoint records the selection there: live updates and unfolds then keep it.
(function () {
  "use strict";

  function select(id) {
    var state = document.querySelector("#tree-state input[name=checkpoint]");
    if (state) state.value = id;
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

  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("#tree-rows a.cp") : null;
    if (link) select(link.getAttribute("data-checkpoint"));
  });
})();
