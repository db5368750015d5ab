// Polls a tenant creation job and shows its state and step until it finishes.
// Loaded as a file so that a Content-Security-Policy of script-src 'self' allows it.
(function () {
  "use strict";

  var facts = document.querySelector("[data-job-status-url]");
  if (!facts) {
    return;
  }
  var statusUrl = facts.getAttribute("data-job-status-url");
  var pollMilliseconds = (parseInt(facts.getAttribute("data-poll-seconds"), 10) || 1) * 1000;
  var note = document.getElementById("job-live-note");

  function show(status) {
    document.getElementById("job-state").textContent = status.state;
    document.getElementById("job-step").textContent = status.step;
    document.getElementById("job-error").textContent = status.error || "none";
    if (status.state === "succeeded") {
      document.getElementById("job-key-form").hidden = false;
    }
    if (status.finished && note) {
      note.textContent = "";
    }
  }

  function poll() {
    fetch(statusUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) {
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.json();
      })
      .then(function (status) {
        show(status);
        if (!status.finished) {
          window.setTimeout(poll, pollMilliseconds);
        }
      })
      .catch(function () {
        if (note) {
          note.textContent = "Could not reach the server; retrying.";
        }
        window.setTimeout(poll, pollMilliseconds * 5);
      });
  }

  window.setTimeout(poll, pollMilliseconds);
})();
