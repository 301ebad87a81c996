// Renders /openapi.json as a list of operations grouped by tag. No dependencies, no network
// besides the document itself.
"use strict";

const METHODS = ["get", "head", "post", "put", "patch", "delete", "options"];

function element(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

function access(operation) {
  if (!operation.security || operation.security.length === 0) return "public";
  const permissions = operation["x-autoflow-permissions"];
  return permissions ? "permissions: " + permissions.join(", ") : "signed in";
}

function operationView(path, method, operation) {
  const summary = element("summary", {},
    element("span", { class: "method " + method }, method.toUpperCase()), " ",
    element("code", {}, path), " ",
    element("span", { class: "summary" }, operation.summary || ""));
  const details = element("details", { class: "operation" }, summary);
  details.dataset.search = [method, path, operation.summary, (operation.tags || []).join(" ")].join(" ").toLowerCase();
  details.append(element("p", {}, "Access: " + access(operation)));
  if (operation.description) details.append(element("p", {}, operation.description));
  const parameters = operation.parameters || [];
  if (parameters.length) {
    details.append(element("h4", {}, "Path parameters"));
    details.append(element("ul", {}, ...parameters.map((p) => element("li", {}, element("code", {}, p.name)))));
  }
  if (operation.requestBody) {
    const schema = operation.requestBody.content["application/json"].schema;
    details.append(element("h4", {}, "Request body (JSON)"));
    details.append(element("pre", {}, JSON.stringify(schema, null, 2)));
  }
  details.append(element("h4", {}, "Responses"));
  const rows = Object.entries(operation.responses || {}).map(([status, response]) => {
    const text = response.$ref ? response.$ref.split("/").pop() : response.description || "";
    return element("li", {}, element("code", {}, status), " " + text);
  });
  details.append(element("ul", {}, ...rows));
  return details;
}

function render(spec) {
  const main = document.getElementById("operations");
  main.replaceChildren();
  const byTag = new Map((spec.tags || []).map((tag) => [tag.name, []]));
  for (const [path, item] of Object.entries(spec.paths || {})) {
    for (const method of METHODS) {
      const operation = item[method];
      if (!operation) continue;
      const tag = (operation.tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operationView(path, method, operation));
    }
  }
  const descriptions = new Map((spec.tags || []).map((tag) => [tag.name, tag.description || ""]));
  for (const [tag, operations] of byTag) {
    if (!operations.length) continue;
    const section = element("section", { "aria-label": tag },
      element("h2", {}, tag), element("p", { class: "tag-description" }, descriptions.get(tag) || ""));
    section.append(...operations);
    main.append(section);
  }
}

function filter(text) {
  const needle = text.trim().toLowerCase();
  for (const operation of document.querySelectorAll(".operation")) {
    operation.hidden = needle !== "" && !operation.dataset.search.includes(needle);
  }
}

document.getElementById("filter").addEventListener("input", (event) => filter(event.target.value));
fetch("/openapi.json", { credentials: "same-origin" })
  .then((response) => {
    if (!response.ok) throw new Error("GET /openapi.json answered " + response.status);
    return response.json();
  })
  .then(render)
  .catch((error) => {
    document.getElementById("operations").replaceChildren(element("p", { role: "alert" }, String(error)));
  });
