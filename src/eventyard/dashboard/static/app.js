// eventyard dashboard: small progressive enhancements. Every page works without this file;
// it adds auto-submitting selects, copy buttons, confirmations and the trigger-ID preview.
"use strict";

// The same rule as eventyard.domain.slugs.slugify: accents folded, lowercase, runs of
// anything but [a-z0-9_.-] become one "_", trimmed, at most 128 characters.
function slugify(name) {
  const folded = name.normalize("NFKD").replace(/[^\x00-\x7f]/g, "");
  let slug = folded.toLowerCase().replace(/[^a-z0-9_.\-]+/g, "_");
  slug = slug.replace(/^[_.\-]+|[_.\-]+$/g, "").replace(/_+/g, "_");
  return slug.slice(0, 128).replace(/[_.\-]+$/, "");
}

function announce(text) {
  const region = document.getElementById("announcer");
  if (region) { region.textContent = text; }
}

document.addEventListener("DOMContentLoaded", () => {
  // The switcher follows a choice made with the pointer at once. Arrow keys on a closed
  // select also fire "change", so keyboard users browse freely and press "Switch".
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    let pointer = false;
    select.addEventListener("pointerdown", () => { pointer = true; });
    select.addEventListener("keydown", () => { pointer = false; });
    select.addEventListener("change", () => { if (pointer) { select.form.submit(); } });
  }

  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.hidden = false;
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      const text = source.value !== undefined ? source.value : source.textContent;
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "Copied";
      } catch (err) {
        source.focus();
        if (source.select) { source.select(); }
        button.textContent = "Press Ctrl+C to copy";
      }
      announce(button.textContent);
    });
  }

  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
    });
  }

  // Create Trigger: the ID follows the name until someone edits the ID by hand.
  const nameInput = document.querySelector("input[data-name-for]");
  if (nameInput) {
    const idInput = document.getElementById(nameInput.dataset.nameFor);
    let edited = idInput.value !== "" && idInput.value !== slugify(nameInput.value);
    idInput.addEventListener("input", () => { edited = idInput.value !== ""; });
    nameInput.addEventListener("input", () => {
      if (!edited) { idInput.value = slugify(nameInput.value); }
    });
  }

  // Attribute rows: "Add attribute" clones the last row, emptied.
  const addRow = document.querySelector("button[data-add-row]");
  if (addRow) {
    addRow.hidden = false;
    addRow.addEventListener("click", () => {
      const body = document.getElementById(addRow.dataset.addRow);
      const last = body.querySelector("tr:last-child");
      const copy = last.cloneNode(true);
      for (const input of copy.querySelectorAll("input")) {
        if (input.type === "checkbox") { input.checked = false; } else { input.value = ""; }
      }
      for (const select of copy.querySelectorAll("select")) { select.selectedIndex = 0; }
      body.appendChild(copy);
      copy.querySelector("input").focus();
    });
  }
});
