// Refreshes the numbers and plots of a page in place: every element with
// data-live="SECONDS" is replaced by its fresh copy from the same URL. The
// pages work without it (reload them by hand).
(function () {
  "use strict";
  var live = document.querySelector("[data-live]");
  if (!live) { return; }
  var every = Math.max(1, parseFloat(live.getAttribute("data-live")) || 5) * 1000;
  function refresh() {
    fetch(location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.querySelector("[data-live]");
        var cur = document.querySelector("[data-live]");
        if (fresh && cur) { cur.replaceWith(document.importNode(fresh, true)); }
        document.documentElement.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () {})
      .then(function () { setTimeout(refresh, every); });
  }
  setTimeout(refresh, every);
})();
