/* ПОС ОГ survey form, progressive enhancement only: the form works fully without this file.
   - a character counter under each limited textarea (announced politely after a pause);
   - the submit button is disabled after the first submission (the server is idempotent anyway);
   - the error summary takes the focus, so a screen reader starts with what to fix. */
(function () {
  "use strict";

  function plural(n, one, few, many) {
    var n10 = n % 10, n100 = n % 100;
    if (n10 === 1 && n100 !== 11) return one;
    if (n10 >= 2 && n10 <= 4 && (n100 < 12 || n100 > 14)) return few;
    return many;
  }

  function counterText(length, max) {
    var left = max - length;
    if (left >= 0) {
      return "Осталось " + left + " " + plural(left, "символ", "символа", "символов") + " из " + max;
    }
    var over = -left;
    return "Превышение на " + over + " " + plural(over, "символ", "символа", "символов") + " (не более " + max + ")";
  }

  function setUpCounter(counter) {
    var field = document.getElementById(counter.getAttribute("data-counter-for"));
    if (!field) return;
    var max = parseInt(field.getAttribute("data-maxlength"), 10);
    if (!max) return;
    var live = document.createElement("p");
    live.className = "visually-hidden";
    live.setAttribute("aria-live", "polite");
    counter.parentNode.insertBefore(live, counter.nextSibling);
    var timer = null;
    function update(announce) {
      // Line breaks count as one character, as the server counts them.
      var length = field.value.replace(/\r\n/g, "\n").length;
      var text = counterText(length, max);
      counter.textContent = text;
      counter.classList.toggle("counter--over", length > max);
      if (announce) {
        window.clearTimeout(timer);
        timer = window.setTimeout(function () { live.textContent = text; }, 1000);
      }
    }
    field.addEventListener("input", function () { update(true); });
    update(false);
  }

  function setUpSubmitOnce(form) {
    var submitted = false;
    form.addEventListener("submit", function (event) {
      if (submitted) {
        event.preventDefault();
        return;
      }
      submitted = true;
      var buttons = form.querySelectorAll("[data-submit]");
      for (var i = 0; i < buttons.length; i++) {
        buttons[i].setAttribute("data-label", buttons[i].textContent);
        buttons[i].setAttribute("aria-disabled", "true");
        buttons[i].textContent = "Отправляем…";
      }
    });
    // Coming back through the history (back-forward cache): the form may be sent again.
    window.addEventListener("pageshow", function (event) {
      if (!event.persisted) return;
      submitted = false;
      var buttons = form.querySelectorAll("[data-submit]");
      for (var i = 0; i < buttons.length; i++) {
        buttons[i].removeAttribute("aria-disabled");
        if (buttons[i].hasAttribute("data-label")) buttons[i].textContent = buttons[i].getAttribute("data-label");
      }
    });
  }

  function init() {
    var counters = document.querySelectorAll("[data-counter-for]");
    for (var i = 0; i < counters.length; i++) setUpCounter(counters[i]);
    var forms = document.querySelectorAll("form[data-survey-form]");
    for (var j = 0; j < forms.length; j++) setUpSubmitOnce(forms[j]);
    var summary = document.querySelector("[data-error-summary]");
    if (summary) summary.focus();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
