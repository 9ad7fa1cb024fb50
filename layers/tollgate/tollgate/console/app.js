// The console shell: log in (the key is probed against the APIs it is for), navigation, the error banner,
// the colour theme. Pages: Chat and Usage with a tenant key, Admin with the admin key.

import {AdminPage} from "./admin.js";
import {ApiError, forgetKey, getJson, getKey, setKey} from "./api.js";
import {ChatPage} from "./chat.js";
import {UsagePage} from "./usage.js";

const $ = (id) => document.getElementById(id);

const banner = {
  show(message) {
    $("error-text").textContent = message;
    $("error-banner").hidden = false;
  },
  clear() {
    $("error-banner").hidden = true;
    $("error-text").textContent = "";
  },
};

const pages = {
  chat: {role: "tenant", page: new ChatPage($("page-chat"), banner)},
  usage: {role: "tenant", page: new UsagePage($("page-usage"), banner)},
  admin: {role: "admin", page: new AdminPage($("page-admin"), banner)},
};
let roles = new Set();

/** Which APIs the key opens: a tenant key answers /v1/models, the admin key /admin/keys. */
async function probe() {
  const attempt = (path) => getJson(path).then(() => null, (err) => err);
  const [tenant, admin] = await Promise.all([attempt("v1/models"), attempt("admin/keys")]);
  const found = new Set();
  if (!tenant) found.add("tenant");
  if (!admin) found.add("admin");
  return {found, error: tenant || admin};
}

function route() {
  if (!roles.size) return;
  let name = location.hash.slice(1);
  if (!pages[name] || !roles.has(pages[name].role)) name = roles.has("tenant") ? "chat" : "admin";
  for (const [key, {page}] of Object.entries(pages)) page.root.hidden = key !== name;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  pages[name].page.show();
}

function enter(found) {
  roles = found;
  $("login").hidden = true;
  $("nav").hidden = false;
  $("logout").hidden = false;
  for (const link of document.querySelectorAll("#nav a")) link.hidden = !roles.has(pages[link.dataset.page].role);
  route();
}

async function login(key) {
  banner.clear();
  setKey(key);
  const {found, error} = await probe();
  if (found.size) return enter(found);
  forgetKey();
  const why = error instanceof ApiError && error.status === 401
    ? "That key was not accepted: it is unknown, revoked or expired (or it is not the admin key)."
    : error.message;
  banner.show(why);
  $("login-key").focus();
}

function logout() {
  forgetKey();
  location.hash = "";
  location.reload();
}

const THEMES = ["auto", "light", "dark"];
function applyTheme(theme) {
  if (theme === "auto") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  $("theme").textContent = `Theme: ${theme}`;
  localStorage.setItem("tollgate.theme", theme);
}

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const key = $("login-key").value.trim();
  $("login-key").value = "";
  login(key).catch((err) => banner.show(err.message || String(err)));
});
$("logout").addEventListener("click", logout);
$("error-close").addEventListener("click", () => banner.clear());
$("theme").addEventListener("click", () => {
  const current = localStorage.getItem("tollgate.theme") || "auto";
  applyTheme(THEMES[(THEMES.indexOf(current) + 1) % THEMES.length]);
});
window.addEventListener("hashchange", route);
applyTheme(THEMES.includes(localStorage.getItem("tollgate.theme")) ? localStorage.getItem("tollgate.theme") : "auto");
if (getKey() !== null) login(getKey()).catch((err) => banner.show(err.message || String(err)));
else $("login-key").focus();
