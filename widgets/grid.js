// The runs grid: one scroll container (sticky header, pinned name column, resizable columns) and
// the column manager. Every string from the kernel reaches the page through textContent, title
// or a checkbox state, never as markup. Rows are the page the kernel sent; nothing is cached.

const CHECK_WIDTH = 30;
const MAX_OFFERED = 200; // manager entries listed at once; the search narrows the rest

function make(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function iconButton(text, title, onClick) {
  const button = make("button", "tracker-grid-icon", text);
  button.type = "button";
  button.title = title;
  button.setAttribute("aria-label", title);
  button.addEventListener("click", onClick);
  return button;
}

function cellContent(td, cell) {
  if (Array.isArray(cell.l)) {
    for (const label of cell.l) td.append(make("span", "tracker-chip", label));
  } else if (cell.c && cell.c.startsWith("pill-")) {
    td.append(make("span", "tracker-pill tracker-" + cell.c.slice(5), cell.t));
  } else {
    td.textContent = cell.t;
    if (cell.c === "muted") td.classList.add("tracker-muted");
  }
  if (cell.tip) td.title = cell.tip;
}

function render({ model, el }) {
  el.classList.add("tracker-grid");
  const manager = make("div", "tracker-grid-manager");
  const scroll = make("div", "tracker-grid-scroll");
  scroll.tabIndex = -1;
  const table = make("table", "tracker-grid-table");
  table.setAttribute("role", "grid");
  const colgroup = make("colgroup");
  const thead = make("thead");
  const tbody = make("tbody");
  table.append(colgroup, thead, tbody);
  scroll.append(table);
  el.append(manager, scroll);
  let sortShown = null;
  let search = "";

  const columns = () => model.get("columns");
  const widthOf = (key, fallback) => model.get("widths")[key] || fallback;
  const selected = () => new Set(model.get("selected"));

  function setSelected(ids) {
    model.set("selected", ids);
    model.save_changes();
  }

  function stickyStyle(node, left) {
    node.classList.add("tracker-grid-pinned");
    node.style.left = left + "px";
  }

  function layout() {
    // Widths and pinned offsets of [check, name, ...columns]; the table is exactly as wide.
    const specs = [{ key: "", width: CHECK_WIDTH, pinned: true },
      { key: "name", width: widthOf("name", model.get("name_width")), pinned: true }];
    for (const column of columns()) {
      specs.push({ key: column.source, width: widthOf(column.source, column.width),
        pinned: column.pinned });
    }
    let left = 0;
    let stickyEnd = 0;
    for (const spec of specs) {
      spec.left = spec.pinned ? left : null;
      if (spec.pinned) stickyEnd = left += spec.width; else left = Number.NaN;
    }
    return { specs, stickyEnd, total: specs.reduce((sum, s) => sum + s.width, 0) };
  }

  function drawHead(specs) {
    colgroup.replaceChildren(...specs.map((spec) => {
      const col = make("col");
      col.style.width = spec.width + "px";
      return col;
    }));
    const row = make("tr");
    const all = make("input");
    all.type = "checkbox";
    all.title = "select every run on this page";
    all.setAttribute("aria-label", all.title);
    const ids = model.get("rows").map((r) => r.id);
    const chosen = selected();
    all.checked = ids.length > 0 && ids.every((id) => chosen.has(id));
    all.addEventListener("change", () => setSelected(all.checked ? ids : []));
    const heads = [{ key: "name", title: "name", source: "name", tip: "run name" }, ...columns()];
    const cells = [all, ...heads].map((head, index) => {
      const th = make("th");
      const spec = specs[index];
      if (spec.pinned) stickyStyle(th, spec.left);
      if (index === 0) {
        th.append(head);
        return th;
      }
      th.dataset.key = head.source;
      const sorted = head.key === model.get("order_key");
      const descending = model.get("descending");
      const button = make("button", "tracker-grid-sort", head.title);
      button.type = "button";
      button.title = (head.tip || head.source) + ": click to sort";
      if (head.kind) th.classList.add("tracker-grid-" + head.kind);
      if (head.numeric) th.classList.add("tracker-num");
      if (sorted) {
        th.setAttribute("aria-sort", descending ? "descending" : "ascending");
        th.classList.add("tracker-grid-sorted");
        button.append(make("span", "tracker-grid-arrow", descending ? " ▼" : " ▲"));
      }
      button.addEventListener("click", () => model.send({ event: "sort", key: head.key }));
      th.append(button, resizer(head.source, index));
      return th;
    });
    row.append(...cells);
    thead.replaceChildren(row);
  }

  function resizer(key, index) {
    const handle = make("span", "tracker-grid-resize");
    handle.title = "drag to resize";
    handle.addEventListener("pointerdown", (event) => {
      event.preventDefault();
      const col = colgroup.children[index];
      const start = event.clientX;
      const width = col.getBoundingClientRect().width || parseFloat(col.style.width);
      const tableWidth = parseFloat(table.style.width);
      const move = (e) => {
        const next = Math.max(40, Math.round(width + e.clientX - start));
        col.style.width = next + "px";
        table.style.width = tableWidth + next - width + "px";
      };
      const up = () => {
        window.removeEventListener("pointermove", move);
        window.removeEventListener("pointerup", up);
        model.set("widths", { ...model.get("widths"), [key]: parseFloat(col.style.width) });
        model.save_changes();
      };
      window.addEventListener("pointermove", move);
      window.addEventListener("pointerup", up);
    });
    return handle;
  }

  function drawBody(specs) {
    const chosen = selected();
    const rows = model.get("rows").map((record) => {
      const tr = make("tr", record.current ? "tracker-grid-row tracker-current"
        : "tracker-grid-row");
      tr.dataset.id = record.id;
      const check = make("td");
      stickyStyle(check, 0);
      const box = make("input");
      box.type = "checkbox";
      box.checked = chosen.has(record.id);
      box.setAttribute("aria-label", "select " + record.name);
      box.addEventListener("change", () => {
        const now = selected();
        if (box.checked) now.add(record.id); else now.delete(record.id);
        setSelected([...now]);
      });
      check.append(box);
      const nameCell = make("td", "tracker-grid-namecell");
      stickyStyle(nameCell, specs[1].left);
      const name = make("button", "tracker-grid-name", (record.current ? "● " : "") + record.name);
      name.type = "button";
      name.title = record.tip;
      name.addEventListener("click", () => model.send({ event: "open", id: record.id }));
      nameCell.append(name);
      tr.append(check, nameCell);
      record.cells.forEach((cell, index) => {
        const spec = specs[index + 2];
        const column = columns()[index];
        const td = make("td", column && column.numeric ? "tracker-num" : "");
        if (spec && spec.pinned) stickyStyle(td, spec.left);
        cellContent(td, cell);
        tr.append(td);
      });
      return tr;
    });
    tbody.replaceChildren(...rows);
  }

  function revealSort(stickyEnd) {
    // A new sort column is scrolled into view, right of the pinned columns.
    const key = model.get("order_key") + (model.get("descending") ? " desc" : " asc");
    if (key === sortShown) return;
    sortShown = key;
    const th = thead.querySelector("th.tracker-grid-sorted");
    if (!th || th.classList.contains("tracker-grid-pinned")) return;
    const left = th.offsetLeft - stickyEnd;
    const right = th.offsetLeft + th.offsetWidth;
    if (left < scroll.scrollLeft) scroll.scrollLeft = left;
    else if (right > scroll.scrollLeft + scroll.clientWidth) {
      scroll.scrollLeft = Math.min(left, right - scroll.clientWidth);
    }
  }

  function draw() {
    const { specs, stickyEnd, total } = layout();
    table.style.width = total + "px";
    drawHead(specs);
    drawBody(specs);
    requestAnimationFrame(() => revealSort(stickyEnd));
  }

  function drawManager() {
    manager.replaceChildren();
    manager.hidden = !model.get("manager_open");
    if (manager.hidden) return;
    const chosen = model.get("chosen");
    const pinned = new Set(model.get("pinned"));
    const offered = model.get("offered");
    const titles = new Map(offered.map((k) => [k.key, k]));
    const save = (nextChosen, nextPinned) => {
      model.set("chosen", nextChosen);
      model.set("pinned", nextPinned.filter((k) => nextChosen.includes(k)));
      model.save_changes();
    };
    const bar = make("div", "tracker-grid-manager-bar");
    const input = make("input", "tracker-grid-search");
    input.type = "search";
    input.placeholder = "search params., metrics. and attributes";
    input.setAttribute("aria-label", "search columns");
    input.value = search;
    input.addEventListener("input", () => {
      search = input.value;
      drawList();
      input.focus();
    });
    const reset = make("button", "tracker-bar-button", "Reset");
    reset.type = "button";
    reset.title = "back to the default columns";
    reset.addEventListener("click", () => model.send({ event: "reset" }));
    const done = make("button", "tracker-bar-button", "Done");
    done.type = "button";
    done.addEventListener("click", () => {
      model.set("manager_open", false);
      model.save_changes();
    });
    bar.append(input, reset, done);
    const list = make("div", "tracker-grid-manager-list");
    manager.append(bar, list);

    function entry(key, on) {
      const info = titles.get(key) || { key, title: key, kind: "" };
      const line = make("div", "tracker-grid-manager-entry");
      line.dataset.key = key;
      const label = make("label");
      const box = make("input");
      box.type = "checkbox";
      box.checked = on;
      box.addEventListener("change", () => {
        save(box.checked ? [...chosen, key] : chosen.filter((k) => k !== key), [...pinned]);
      });
      label.append(box, make("span", "", " " + info.title));
      if (info.kind) label.append(make("span", "tracker-muted", "  " + info.kind));
      line.append(label);
      if (on) {
        const at = chosen.indexOf(key);
        const swap = (by) => {
          const next = [...chosen];
          [next[at], next[at + by]] = [next[at + by], next[at]];
          save(next, [...pinned]);
        };
        const up = iconButton("↑", "move left", () => swap(-1));
        const down = iconButton("↓", "move right", () => swap(1));
        up.disabled = at === 0;
        down.disabled = at === chosen.length - 1;
        const pin = iconButton(pinned.has(key) ? "📌 pinned" : "pin",
          pinned.has(key) ? "unpin this column" : "keep this column in view, left",
          () => {
            const next = new Set(pinned);
            if (next.has(key)) next.delete(key); else next.add(key);
            save(chosen, [...next]);
          });
        pin.setAttribute("aria-pressed", String(pinned.has(key)));
        line.append(up, down, pin);
      }
      return line;
    }

    function drawList() {
      const needle = search.trim().toLowerCase();
      const matches = (key) => !needle || key.toLowerCase().includes(needle)
        || (titles.get(key)?.title || "").toLowerCase().includes(needle);
      const shown = chosen.filter(matches).map((key) => entry(key, true));
      const rest = offered.map((k) => k.key).filter((k) => !chosen.includes(k) && matches(k));
      shown.push(...rest.slice(0, MAX_OFFERED).map((key) => entry(key, false)));
      if (rest.length > MAX_OFFERED) {
        shown.push(make("div", "tracker-muted", `${rest.length - MAX_OFFERED} more: search`));
      }
      list.replaceChildren(...shown);
    }
    drawList();
  }

  function reveal() {
    // Bring the panel (detail, compare, trash) or the grid itself into view once it is drawn.
    const target = model.get("reveal_target");
    const root = el.closest(".tracker-ui") || el;
    let tries = 60;
    const attempt = () => {
      const node = target === "panel"
        ? root.querySelector(".tracker-panel:not(.tracker-hidden)") : el;
      if (node && node.offsetHeight > 0) {
        node.scrollIntoView({ block: "start", inline: "nearest" });
      } else if (tries-- > 0) {
        setTimeout(attempt, 50);
      }
    };
    attempt();
  }

  function keyboard(event) {
    // Up and down move between run names; Enter on a name opens it (a button already does).
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    const names = [...tbody.querySelectorAll("button.tracker-grid-name")];
    const at = names.indexOf(document.activeElement);
    if (at < 0) return;
    const next = names[at + (event.key === "ArrowDown" ? 1 : -1)];
    if (next) {
      event.preventDefault();
      next.focus();
    }
  }

  tbody.addEventListener("keydown", keyboard);
  const redraw = () => draw();
  for (const name of ["columns", "rows", "selected", "widths", "order_key", "descending"]) {
    model.on("change:" + name, redraw);
  }
  for (const name of ["manager_open", "chosen", "pinned", "offered"]) {
    model.on("change:" + name, drawManager);
  }
  model.on("change:reveal", reveal);
  draw();
  drawManager();
  return () => {
    for (const name of ["columns", "rows", "selected", "widths", "order_key", "descending"]) {
      model.off("change:" + name, redraw);
    }
    for (const name of ["manager_open", "chosen", "pinned", "offered"]) {
      model.off("change:" + name, drawManager);
    }
    model.off("change:reveal", reveal);
  };
}

export default { render };
