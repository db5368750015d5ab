// Refreshes the tunnel status cells of the onboarded list without reloading the page.
// Loaded as a file so that a Content-Security-Policy of script-src 'self' allows it.
(function () {
  "use strict";

  var table = document.querySelector("[data-status-url]");
  if (!table) {
    return;
  }
  var statusUrl = table.getAttribute("data-status-url");
  var pollMilliseconds = (parseInt(table.getAttribute("data-poll-seconds"), 10) || 5) * 1000;
  var note = document.getElementById("live-note");
  var noteText = note ? note.textContent : "";

  function statusCells() {
    return table.querySelectorAll("td[data-controller-id]");
  }

  function showStale(message) {
    if (!note) {
      return;
    }
    note.textContent = message || noteText;
    note.classList.toggle("stale", Boolean(message));
  }

  function update(controller) {
    var cell = table.querySelector('td[data-controller-id="' + controller.id + '"]');
    if (!cell) {
      return;
    }
    var badge = document.createElement("span");
    badge.className = controller.status;
    badge.textContent = controller.status_label;
    cell.replaceChildren(badge);
    var heartbeat = table.querySelector('td[data-heartbeat-for="' + controller.id + '"]');
    if (heartbeat) {
      heartbeat.textContent = controller.last_heartbeat_display;
    }
  }

  function refresh() {
    var ids = Array.prototype.map.call(statusCells(), function (cell) {
      return cell.getAttribute("data-controller-id");
    });
    if (ids.length === 0) {
      return;
    }
    fetch(statusUrl + "?ids=" + ids.join(","), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) {
        if (response.status === 401 || response.status === 403) {
          throw new Error("Live status stopped: the session has ended. Reload the page to sign in again.");
        }
        if (!response.ok) {
          throw new Error("Live status failed (HTTP " + response.status + "); retrying.");
        }
        return response.json();
      })
      .then(function (data) {
        data.controllers.forEach(update);
        showStale("");
      })
      .catch(function (error) {
        showStale(error.message);
      });
  }

  window.setInterval(refresh, pollMilliseconds);
})();
