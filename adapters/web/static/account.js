// The account page: copy the /link command to the clipboard.
"use strict";

for (const button of document.querySelectorAll("[data-copy]")) {
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(button.dataset.copy);
      button.textContent = "Copied";
    } catch (_) {
      button.textContent = "Select and copy the command below";
    }
  });
}
