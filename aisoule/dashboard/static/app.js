/* aisoule dashboard: the few things a page needs JavaScript for (no inline script: strict CSP). */
(function () {
  "use strict";

  var dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  var dateOnly = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";

  /* Dates are rendered in UTC by the server; show them in the reader's own time zone. */
  function localTimes(root) {
    root.querySelectorAll("time[datetime]:not([data-local])").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d.getTime())) return;
      el.textContent = (el.dataset.format === "date" ? dateOnly : dateTime).format(d);
      el.title = d.toISOString().replace(".000Z", "Z") + " (UTC)";
      el.setAttribute("data-local", "");
    });
    root.querySelectorAll("input[data-tz]").forEach(function (el) { el.value = zone; });
    /* A datetime-local input filled from a UTC time (editing a scheduled campaign). */
    root.querySelectorAll("input[data-utc]").forEach(function (el) {
      var d = new Date(el.getAttribute("data-utc"));
      if (el.value || isNaN(d.getTime())) return;
      var two = function (n) { return String(n).padStart(2, "0"); };
      el.value = d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate()) + "T" + two(d.getHours()) + ":" + two(d.getMinutes());
    });
    root.querySelectorAll("[data-tz-name]").forEach(function (el) { el.textContent = zone ? " (" + zone + ")" : ""; });
  }

  function focusFirstError(root) {
    var bad = root.querySelector("[aria-invalid=true]");
    if (bad) bad.focus();
  }

  /* The live WhatsApp bubble of the template form. */
  function fill(text, examples, named) {
    var values = {};
    examples.forEach(function (line, i) {
      if (named) {
        var at = line.search(/[:=]/);
        if (at > 0) values[line.slice(0, at).trim()] = line.slice(at + 1).trim();
      } else {
        values[String(i + 1)] = line;
      }
    });
    return text.replace(/\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g, function (m, name) {
      return values[name] !== undefined && values[name] !== "" ? values[name] : m;
    });
  }

  function lines(value) {
    return value.split("\n").map(function (s) { return s.trim(); }).filter(Boolean);
  }

  function preview(form) {
    var get = function (name) { var el = form.querySelector("[name=" + name + "]"); return el ? el.value : ""; };
    var out = function (name) { return document.querySelector("[data-out=" + name + "]"); };
    var named = get("parameter_format") === "NAMED";
    var header = out("header"), body = out("body"), footer = out("footer"), buttons = out("buttons");
    if (!body) return;
    var h = get("header_text").trim();
    header.hidden = !h;
    header.textContent = fill(h, [get("header_example").trim()], named);
    body.textContent = fill(get("body"), lines(get("body_examples")), named) || "Your message appears here as you type.";
    var f = get("footer").trim();
    footer.hidden = !f;
    footer.textContent = f;
    buttons.textContent = "";
    lines(get("buttons")).slice(0, 10).forEach(function (b) {
      var li = document.createElement("li");
      li.textContent = b;
      buttons.appendChild(li);
    });
  }

  /* The campaign wizard's template bubble: each variable as the mapping below fills it (the
     server renders the same: pages/campaigns.py _mapped_bubble). */
  function mappedValue(form, map, where) {
    var input = function (suffix) { return form.querySelector('[name="p.' + where + suffix + '"]'); };
    var source = input(".source"), value = input(".value");
    var chosen = source ? source.value : "value";
    if (chosen === "value" || !map.labels[chosen]) {
      return (value && value.value) || map.examples[where] || "[value]";
    }
    if (chosen === "custom") {
      var key = input(".custom");
      return key && key.value.trim() ? "[" + key.value.trim() + "]" : "[custom field]";
    }
    return "[" + map.labels[chosen] + "]";
  }

  function mapped(form) {
    var box = document.querySelector("[data-mapping]");
    if (!box || !form) return;
    var map = JSON.parse(box.getAttribute("data-mapping"));
    Object.keys(map.texts).forEach(function (kind) {
      var out = box.querySelector(".wa-" + kind);
      if (!out) return;
      out.textContent = map.texts[kind].replace(/\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g, function (m, name) {
        var where = map.named ? kind + "." + name : (/^\d+$/.test(name) && +name > 0 ? kind + "[" + (+name - 1) + "]" : null);
        return where ? mappedValue(form, map, where) : m;
      });
    });
  }

  function wire(root) {
    localTimes(root);
    /* The invitation link carries its token after '#' (never sent to a server): into the form. */
    root.querySelectorAll("input[data-from-hash]").forEach(function (el) {
      if (!el.value && location.hash.length > 1) el.value = decodeURIComponent(location.hash.slice(1));
    });
    root.querySelectorAll("[data-preview-form]").forEach(function (form) {
      if (form.dataset.wired) return;
      form.dataset.wired = "1";
      form.addEventListener("input", function () { preview(form); });
      form.addEventListener("change", function () { preview(form); });
      preview(form);
    });
    var wizard = document.getElementById("wizard-form");
    if (wizard && !wizard.dataset.mapped) {
      wizard.dataset.mapped = "1";
      wizard.addEventListener("input", function () { mapped(wizard); });
      wizard.addEventListener("change", function () { mapped(wizard); });
    }
  }

  document.addEventListener("click", function (ev) {
    var copy = ev.target.closest("[data-copy]");
    if (copy) {
      var field = document.querySelector(copy.getAttribute("data-copy"));
      if (!field) return;
      var done = function () { copy.textContent = "Copied"; setTimeout(function () { copy.textContent = "Copy"; }, 2000); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(done, function () { field.select(); });
      } else {
        field.select();
        try { document.execCommand("copy"); done(); } catch (e) { /* selected: the user copies */ }
      }
    }
  });

  document.addEventListener("change", function (ev) {
    var all = ev.target.closest("[data-select-all]");
    if (all) {
      var form = all.closest("form");
      form.querySelectorAll("input[name=" + all.getAttribute("data-select-all") + "]").forEach(function (box) {
        box.checked = all.checked;
      });
    }
  });

  /* An error next to a field goes once the field is edited (the next answer says again). */
  function clearError(ev) {
    var box = ev.target.closest && ev.target.closest(".field.invalid, .param.invalid");
    if (!box || box.dataset.keepError !== undefined) return;
    box.classList.remove("invalid");
    box.querySelectorAll("[aria-invalid=true]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
    box.querySelectorAll(".error[data-field]").forEach(function (el) { el.hidden = true; });
  }
  document.addEventListener("input", clearError);

  document.addEventListener("DOMContentLoaded", function () { wire(document); });
  document.addEventListener("htmx:afterSettle", function (ev) {
    wire(document);
    focusFirstError(ev.target);
  });
})();
