// Chameleon console helpers shared by the pages (no build step).
window.chameleon = {
  csrfToken() {
    const match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  },
  async api(path, options = {}) {
    const response = await fetch(path, {
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": this.csrfToken(), ...(options.headers || {}) },
      ...options,
    });
    const body = response.status === 204 ? null : await response.json();
    if (!response.ok) throw Object.assign(new Error(body?.error?.message || response.statusText), { response, body });
    return body;
  },
};
