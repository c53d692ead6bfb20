// The day view scrolls inside its box; open it at the earliest booking (or at 07:00) instead of midnight.
(function () {
  for (const grid of document.querySelectorAll(".tl-grid.tl-day")) {
    const names = grid.querySelector(".tl-name");
    if (!names) continue;
    const origin = grid.getBoundingClientRect().left - grid.scrollLeft;
    const lefts = [...grid.querySelectorAll(".tl-block")].map((block) => block.getBoundingClientRect().left);
    const seven = grid.querySelectorAll(".tl-axis .tl-mark")[7];
    if (!lefts.length && seven) lefts.push(seven.getBoundingClientRect().left);
    if (!lefts.length) continue;
    grid.scrollLeft = Math.max(0, Math.min(...lefts) - origin - names.offsetWidth - 48);
  }
})();
