// The console's one script, served from Passport itself (CSP script-src 'self';
// connect-src 'self') on the two pages that use it; without it each page works the
// same, without the extra.
//
// 1. A copy button for the client secret shown once ([data-copy] names the field).
// 2. The audit log's live tail (/admin/audit): while "Follow" is on it asks
//    /admin/audit/tail for the events newer than the newest shown, with the page's own
//    filters, every few seconds, and puts them at the top of the table as text
//    (textContent, never HTML).
(function () {
  "use strict";

  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var field = document.getElementById(button.getAttribute("data-copy"));
    var status = document.getElementById(button.getAttribute("aria-describedby"));
    if (!field) return;
    function said(text) {
      if (status) status.textContent = text;
    }
    button.addEventListener("click", function () {
      var copied = navigator.clipboard
        ? navigator.clipboard.writeText(field.value)
        : Promise.reject(new Error("no clipboard"));
      copied.then(
        function () {
          said("Copied.");
        },
        function () {
          field.focus();
          field.select();
          said("Selected: copy it with your keyboard.");
        }
      );
    });
    button.hidden = false;
  });
})();

(function () {
  "use strict";

  var POLL_MS = 4000;
  var KEEP_ROWS = 500;
  var FILTERS = ["user", "application", "event", "outcome"];

  var panel = document.querySelector("[data-tail]");
  var table = document.querySelector("[data-tail-rows]");
  if (!panel || !table) return;
  var follow = panel.querySelector("input[type=checkbox]");
  var status = panel.querySelector("[role=status]");
  var after = table.getAttribute("data-after") || "0";
  var timer = null;
  var round = 0; // a poll answered after Follow was switched off (and on) is dropped

  function say(text) {
    status.textContent = text;
  }

  function cell(row, text) {
    var td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    row.appendChild(td);
  }

  function show(events) {
    // Newest first in the answer: insert the oldest first so that the newest ends on top.
    for (var i = events.length - 1; i >= 0; i--) {
      var e = events[i];
      var row = document.createElement("tr");
      cell(row, e.at);
      cell(row, e.event);
      cell(row, e.outcome);
      cell(row, e.username);
      cell(row, e.application);
      cell(row, e.ip);
      cell(row, (e.detail || "").slice(0, 200));
      table.insertBefore(row, table.firstChild);
    }
    while (table.rows.length > KEEP_ROWS) table.deleteRow(table.rows.length - 1);
  }

  function query() {
    var here = new URLSearchParams(window.location.search);
    var asked = new URLSearchParams();
    FILTERS.forEach(function (name) {
      var value = here.get(name);
      if (value) asked.set(name, value);
    });
    asked.set("after", after);
    return "/admin/audit/tail?" + asked.toString();
  }

  function stop(text) {
    round += 1;
    follow.checked = false;
    if (timer !== null) window.clearTimeout(timer);
    timer = null;
    say(text);
  }

  function poll() {
    var mine = round;
    timer = null;
    fetch(query(), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      redirect: "error",
      cache: "no-store",
    })
      .then(function (answer) {
        if (!answer.ok) throw new Error("status " + answer.status);
        return answer.json();
      })
      .then(function (body) {
        if (mine !== round || !follow.checked) return;
        if (body.events.length) {
          show(body.events);
          say(body.events.length + " new event" + (body.events.length === 1 ? "" : "s") +
              " at " + new Date().toLocaleTimeString());
        }
        after = String(body.last);
        timer = window.setTimeout(poll, POLL_MS);
      })
      .catch(function () {
        if (mine !== round) return;
        stop("Following stopped: Passport did not answer (signed out?). Reload the page.");
      });
  }

  follow.addEventListener("change", function () {
    if (follow.checked) {
      round += 1;
      say("Following: new events appear at the top.");
      poll();
    } else {
      stop("Not following.");
    }
  });
  panel.hidden = false;
})();
