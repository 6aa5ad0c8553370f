// The lineage picture: the kernel draws the SVG (every label escaped); this file only shows it
// and says which run node was clicked. The SVG is parsed as XML (DOMParser never runs scripts)
// and imported as nodes, never assigned as HTML.

// Whatever the kernel sent, the picture runs nothing: no event handler attribute, and no link
// but to a part of itself (a javascript: URL is a script too).
function inert(node) {
  for (const { name, value } of [...node.attributes]) {
    const link = name === "href" || name.endsWith(":href");
    if (name.toLowerCase().startsWith("on") || (link && !value.startsWith("#"))) {
      node.removeAttribute(name);
    }
  }
}

function render({ model, el }) {
  const box = document.createElement("div");
  box.className = "tracker-lineage-box";
  box.style.overflow = "auto";
  box.style.maxWidth = "100%";

  function draw() {
    const parsed = new DOMParser().parseFromString(model.get("svg"), "image/svg+xml");
    const root = parsed.documentElement;
    if (!root || root.localName !== "svg") {
      box.replaceChildren();
      return;
    }
    root.querySelectorAll("script, foreignObject").forEach((node) => node.remove());
    [root, ...root.querySelectorAll("*")].forEach(inert);
    box.replaceChildren(document.importNode(root, true));
  }

  function open(event) {
    const node = event.target.closest("[data-run]");
    if (node) model.send({ event: "open", id: node.getAttribute("data-run") });
  }

  box.addEventListener("click", open);
  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      open(event);
    }
  });
  model.on("change:svg", draw);
  draw();
  el.append(box);
}

export default { render };
