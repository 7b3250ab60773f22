// The quiz, one card at a time. Without this script the same form shows every card with
// Like / Dislike / Skip radio buttons, so the quiz works with JavaScript off.
(function () {
  "use strict";
  var form = document.getElementById("quiz");
  if (!form) return;
  var cards = Array.prototype.slice.call(form.querySelectorAll(".quiz-card"));
  var total = cards.length;
  var progress = document.getElementById("quiz-progress");
  var count = document.getElementById("quiz-count");
  var summary = document.getElementById("quiz-summary");
  var submit = document.getElementById("quiz-submit");
  var buttons = form.querySelector(".quiz-buttons");
  var help = form.querySelector(".quiz-help");
  var index = 0;

  form.classList.add("js");
  form.querySelector(".quiz-status").hidden = false;
  buttons.hidden = false;
  help.hidden = false;

  function answerOf(card) {
    var checked = card.querySelector("input[type=radio]:checked");
    return checked ? checked.value : "skip";
  }

  function tally() {
    var liked = 0, disliked = 0;
    cards.forEach(function (card) {
      var a = answerOf(card);
      if (a === "like") liked++;
      if (a === "dislike") disliked++;
    });
    return { liked: liked, disliked: disliked };
  }

  function show() {
    cards.forEach(function (card, i) { card.classList.toggle("current", i === index); });
    var t = tally();
    var done = index >= total;
    progress.value = Math.min(index, total);
    count.textContent = done ? "All " + total + " movies done" : "Movie " + (index + 1) + " of " + total;
    buttons.hidden = done;
    summary.textContent = t.liked + " liked · " + t.disliked + " disliked" +
      (t.liked + t.disliked === 0 ? " — like or dislike at least one movie" : "");
    submit.disabled = t.liked + t.disliked === 0;
    if (done && !submit.disabled) submit.focus();
  }

  function answer(value) {
    if (index >= total) return;
    var input = cards[index].querySelector("input[value=" + value + "]");
    if (input) input.checked = true;
    index++;
    show();
  }

  function back() {
    if (index > 0) { index--; show(); }
  }

  buttons.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-answer]");
    if (button) answer(button.getAttribute("data-answer"));
  });
  document.getElementById("quiz-back").addEventListener("click", back);

  document.addEventListener("keydown", function (event) {
    var tag = (event.target && event.target.tagName) || "";
    if (/^(INPUT|SELECT|TEXTAREA)$/.test(tag) || event.ctrlKey || event.metaKey || event.altKey) return;
    var key = event.key;
    var action = {
      l: "like", L: "like", ArrowRight: "like",
      d: "dislike", D: "dislike", ArrowLeft: "dislike",
      s: "skip", S: "skip", ArrowDown: "skip",
    }[key];
    if (action) { event.preventDefault(); answer(action); return; }
    if (key === "b" || key === "B" || key === "ArrowUp") { event.preventDefault(); back(); }
  });

  show();
})();
