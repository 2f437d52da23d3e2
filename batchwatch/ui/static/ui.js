// batchwatch dashboard: stop htmx polling while the tab is hidden, refresh once it is back.
// A static file (the Content-Security-Policy allows no inline script).
(function () {
  "use strict";
  document.addEventListener("htmx:beforeRequest", function (event) {
    var source = event.detail && event.detail.elt;
    if (document.visibilityState === "hidden" && source && source.hasAttribute("data-poll")) {
      event.preventDefault(); // a hidden tab does not poll
    }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && window.htmx) {
      document.querySelectorAll("[data-poll]").forEach(function (element) {
        window.htmx.trigger(element, "bw:refresh");
      });
    }
  });
})();
