// The "Online" panel: who is connected to the demo topic, across every gateway
// (`h.presence(topic)`, docs/gateway.md#presence). Names show when the token has the claim
// `presence: true` (`herald up`'s dashboard token has it); otherwise only the count.

/** Renders `h.presence(topic)` into the panel `el` and keeps it current. */
export function showPresence(h, topic, el) {
  const view = h.presence(topic);
  const title = el.querySelector("[data-presence-topic]");
  const count = el.querySelector("[data-presence-count]");
  const list = el.querySelector("[data-presence-members]");
  title.textContent = topic;
  const render = () => {
    count.textContent = view.known ? String(view.count) : "–";
    el.dataset.count = view.known ? String(view.count) : "";
    list.replaceChildren(
      ...view.members.slice(0, 20).map((sub) => {
        const li = document.createElement("li");
        li.textContent = sub;
        return li;
      }),
    );
  };
  render();
  return view.on("change", render);
}
