/*
 * PruneScope upload page (frontend/pages/upload.py): drop zones, file pickers and streamed
 * uploads with a progress bar.
 *
 * The file never goes through Dash: it is posted as FormData (the File object, read by the
 * browser as it is sent) with XMLHttpRequest, whose upload.onprogress drives the bar. Dash
 * learns what happened through window.dash_clientside.set_props:
 *   upload-<kind>-selected  {name, size, type}         when a file is chosen or dropped
 *   upload-<kind>-response  {ok, status, body|detail}  when the API has answered
 * The text fields come from upload-<kind>-request, which the page's Python callback fills after
 * validating the form; the clientside callback window.dash_clientside.prunescope_upload.<kind>
 * (registered in upload.py) sends the file when that store changes.
 *
 * Dash renders the page after this script runs, so everything is attached by event delegation
 * on document, and the hidden <input type=file> of each drop zone is created when the zone
 * appears (Dash's html components have no file input).
 */
(function () {
  "use strict";

  var ZONE = ".upload-drop";
  var PROGRESS_EVERY_MS = 100;
  var chosen = {}; // kind -> File

  function idOf(kind, part) {
    return "upload-" + kind + "-" + part;
  }

  function setProps(id, props) {
    var dc = window.dash_clientside;
    if (!dc || typeof dc.set_props !== "function") {
      return;
    }
    try {
      dc.set_props(id, props);
    } catch (err) {
      // the page was left while an upload ran: its components are gone
      if (window.console) {
        window.console.warn("upload.js: cannot update " + id, err);
      }
    }
  }

  function formatBytes(n) {
    var units = [
      [1e9, "GB"],
      [1e6, "MB"],
      [1e3, "kB"],
    ];
    for (var i = 0; i < units.length; i++) {
      if (n >= units[i][0]) {
        return (n / units[i][0]).toFixed(1) + " " + units[i][1];
      }
    }
    return Math.round(n) + " B";
  }

  function zoneOf(target) {
    return target && target.closest ? target.closest(ZONE) : null;
  }

  function ensureInputs() {
    var zones = document.querySelectorAll(ZONE);
    for (var i = 0; i < zones.length; i++) {
      var kind = zones[i].getAttribute("data-upload-kind");
      var slot = document.getElementById(idOf(kind, "file-slot"));
      if (!slot || slot.querySelector("input[type=file]")) {
        continue;
      }
      var input = document.createElement("input");
      input.type = "file";
      input.id = idOf(kind, "file");
      input.className = "upload-file-input";
      input.tabIndex = -1;
      input.setAttribute("data-upload-kind", kind);
      input.setAttribute("aria-label", "Choose a " + kind + " file");
      slot.appendChild(input);
      delete chosen[kind]; // a freshly rendered page starts without a file
    }
  }

  function choose(kind, file) {
    if (!kind || !file) {
      return;
    }
    chosen[kind] = file;
    setProps(idOf(kind, "selected"), {
      data: { name: file.name, size: file.size, type: file.type || null, at: Date.now() },
    });
    setProps(idOf(kind, "progress-row"), { hidden: true });
  }

  function showProgress(kind, loaded, total, note) {
    var fraction = total > 0 ? Math.min(loaded / total, 1) : 0;
    var text =
      Math.floor(100 * fraction) + "% · " + formatBytes(loaded) + " of " + formatBytes(total) + " sent";
    setProps(idOf(kind, "progress"), { value: fraction.toFixed(3) });
    setProps(idOf(kind, "progress-text"), { children: note ? text + " · " + note : text });
  }

  function errorDetail(body, xhr) {
    if (body && typeof body.detail === "string") {
      return body.detail;
    }
    if (body && Array.isArray(body.detail)) {
      return body.detail
        .map(function (item) {
          if (item && item.msg) {
            return (item.loc ? item.loc.join(".") + ": " : "") + item.msg;
          }
          return String(item);
        })
        .join("; ");
    }
    var text = (xhr.responseText || "").trim();
    return text ? text.slice(0, 500) : xhr.statusText || "no detail";
  }

  function answer(xhr, file) {
    var body = null;
    try {
      body = JSON.parse(xhr.responseText);
    } catch (err) {
      body = null;
    }
    var ok = xhr.status >= 200 && xhr.status < 300 && body !== null;
    var out = { ok: ok, status: xhr.status, filename: file.name, size: file.size, at: Date.now() };
    if (ok) {
      out.body = body;
    } else {
      out.detail = errorDetail(body, xhr);
    }
    return out;
  }

  function failure(file, detail) {
    return { ok: false, status: 0, filename: file.name, size: file.size, detail: detail, at: Date.now() };
  }

  function send(kind, request) {
    var dc = window.dash_clientside || {};
    if (!request || !request.fields) {
      return dc.no_update;
    }
    var input = document.getElementById(idOf(kind, "file"));
    var file = chosen[kind] || (input && input.files && input.files[0]);
    if (!file) {
      return {
        ok: false,
        status: 0,
        reason: "no-file",
        detail: "Drop a file on the box above, or click the box to choose one.",
        at: Date.now(),
      };
    }
    var panel = document.getElementById(idOf(kind, "panel"));
    var url = (panel && panel.getAttribute("data-upload-url")) || "/api/" + kind + "s/upload";
    var form = new FormData();
    Object.keys(request.fields).forEach(function (key) {
      var value = request.fields[key];
      if (value !== null && value !== undefined && value !== "") {
        form.append(key, String(value));
      }
    });
    form.append("file", file, file.name);

    var button = idOf(kind, "submit");
    var started = Date.now();
    var last = 0;
    var xhr = new XMLHttpRequest();
    xhr.upload.onprogress = function (event) {
      var total = event.lengthComputable ? event.total : file.size;
      var now = Date.now();
      if (now - last < PROGRESS_EVERY_MS && event.loaded < total) {
        return;
      }
      last = now;
      showProgress(kind, event.loaded, total);
    };
    xhr.upload.onload = function () {
      showProgress(kind, file.size, file.size, "waiting for the server");
    };
    function finish(data) {
      setProps(button, { disabled: false });
      if (data.ok) {
        var seconds = ((Date.now() - started) / 1000).toFixed(1);
        showProgress(kind, file.size, file.size, "uploaded in " + seconds + " s");
      } else {
        setProps(idOf(kind, "progress-text"), { children: "upload failed" });
      }
      setProps(idOf(kind, "response"), { data: data });
    }
    xhr.onload = function () {
      finish(answer(xhr, file));
    };
    xhr.onerror = function () {
      finish(
        failure(
          file,
          "The connection failed while sending " +
            file.name +
            " (" +
            formatBytes(file.size) +
            "). Is the server running? A server also drops the connection when a file is " +
            "over its size limit (PRUNESCOPE_MAX_UPLOAD_BYTES)."
        )
      );
    };
    xhr.onabort = function () {
      finish(failure(file, "The upload was aborted."));
    };
    xhr.open("POST", url);
    xhr.setRequestHeader("Accept", "application/json");
    setProps(button, { disabled: true });
    setProps(idOf(kind, "progress-row"), { hidden: false });
    showProgress(kind, 0, file.size);
    xhr.send(form);
    return null; // clears the previous answer, and with it the previous result
  }

  var dc = (window.dash_clientside = window.dash_clientside || {});
  dc.prunescope_upload = {
    model: function (request) {
      return send("model", request);
    },
    dataset: function (request) {
      return send("dataset", request);
    },
  };

  // the drop zones and their file inputs, by delegation -----------------------------------

  function openPicker(zone) {
    var input = document.getElementById(idOf(zone.getAttribute("data-upload-kind"), "file"));
    if (input) {
      input.click();
    }
  }

  document.addEventListener("click", function (event) {
    var zone = zoneOf(event.target);
    if (!zone || event.target.matches("input[type=file]")) {
      return;
    }
    openPicker(zone);
  });

  document.addEventListener("keydown", function (event) {
    var zone = zoneOf(event.target);
    if (zone && event.target === zone && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      openPicker(zone);
    }
  });

  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches("input[type=file].upload-file-input")) {
      return;
    }
    choose(input.getAttribute("data-upload-kind"), input.files && input.files[0]);
  });

  function hasFiles(event) {
    var types = event.dataTransfer && event.dataTransfer.types;
    return !!types && Array.prototype.indexOf.call(types, "Files") !== -1;
  }

  ["dragenter", "dragover"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      if (!hasFiles(event) || !document.querySelector(ZONE)) {
        return;
      }
      // on the upload page a file dropped beside a zone must not replace the page
      event.preventDefault();
      var zone = zoneOf(event.target);
      event.dataTransfer.dropEffect = zone ? "copy" : "none";
      if (zone) {
        zone.classList.add("upload-drop-active");
      }
    });
  });

  document.addEventListener("dragleave", function (event) {
    var zone = zoneOf(event.target);
    if (zone && !zone.contains(event.relatedTarget)) {
      zone.classList.remove("upload-drop-active");
    }
  });

  document.addEventListener("drop", function (event) {
    if (!hasFiles(event) || !document.querySelector(ZONE)) {
      return;
    }
    event.preventDefault();
    var zone = zoneOf(event.target);
    if (!zone) {
      return;
    }
    zone.classList.remove("upload-drop-active");
    var files = event.dataTransfer.files;
    if (files && files.length) {
      choose(zone.getAttribute("data-upload-kind"), files[0]);
    }
  });

  function start() {
    ensureInputs();
    new MutationObserver(ensureInputs).observe(document.body, { childList: true, subtree: true });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
