"""Write a search tree for people: JSON, or one self-contained HTML page (no network, no files
beside it) that shows the tree as nested, collapsible steps with their code, output, PPM score,
visits and Q, the chosen path highlighted.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from .checkpoint import atomic_write_text
from .types import InputError, SolveResult

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>edgestar search tree: {title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }}
h1 {{ font-size: 1.2em; }} .meta {{ color: #555; margin-bottom: 1em; }}
details {{ margin-left: 1.2em; border-left: 2px solid #ddd; padding-left: .6em; }}
summary {{ cursor: pointer; }} pre {{ background: #f6f6f6; padding: .4em; margin: .2em 0;
  white-space: pre-wrap; }}
.chosen > summary {{ font-weight: bold; color: #0a5; }}
.k-error > summary, .k-invalid > summary {{ color: #b33; }}
.k-answer > summary {{ color: #05a; }}
.stat {{ color: #777; font-size: .9em; margin-left: .5em; }}
</style></head><body>
<h1>{title}</h1>
<div class="meta">answer: <b>{answer}</b> &middot; strategy {strategy} &middot; stopped by
{stopped_by} &middot; {nodes} nodes &middot; {tokens} tokens &middot; {seconds:.2f}s</div>
<div id="tree"></div>
<script id="data" type="application/json">{data}</script>
<script>
const T = JSON.parse(document.getElementById('data').textContent);
const byId = new Map(T.nodes.map(n => [n.id, n]));
const chosen = new Set(T.chosen || []);
function el(tag, cls, text) {{ const e = document.createElement(tag);
  if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; }}
function render(n) {{
  const d = el('details', 'k-' + n.kind + (chosen.has(n.id) ? ' chosen' : ''));
  d.open = chosen.has(n.id) || n.id === 0;
  const s = el('summary');
  const first = n.id === 0 ? 'question' : (n.text.split('\\n').find(l => l.trim()) || n.kind);
  s.append(el('span', '', first.slice(0, 120)));
  const st = ['N=' + n.N, 'Q=' + n.Q.toFixed(3)];
  if (n.prior !== null) st.push('ppm=' + n.prior.toFixed(3));
  if (n.answer !== null) st.push('answer=' + n.answer);
  if (n.error) st.push('error: ' + n.error);
  s.append(el('span', 'stat', n.kind + ' ' + st.join(' ')));
  d.append(s);
  if (n.id !== 0) d.append(el('pre', '', n.text));
  for (const c of n.children) d.append(render(byId.get(c)));
  return d;
}}
document.getElementById('tree').append(render(byId.get(0)));
</script></body></html>
"""


def chosen_path(result: SolveResult) -> list[int]:
    """Node ids of the chosen trajectory (root first), recovered from the tree."""
    tree = result.tree or {}
    nodes = {n["id"]: n for n in tree.get("nodes", [])}
    if not nodes or not result.steps:
        return [0] if nodes else []
    # The chosen path is the one whose texts match the result's steps, from the root down.
    path, cur = [0], nodes[0]
    for step in result.steps:
        nxt = next((nodes[c] for c in cur["children"] if nodes[c]["text"] == step.text), None)
        if nxt is None:
            break
        path.append(nxt["id"])
        cur = nxt
    return path


def tree_payload(result: SolveResult) -> dict[str, Any]:
    if result.tree is None:
        raise InputError("this result was made without its tree (keep_tree=False)")
    return {**result.tree, "chosen": chosen_path(result), "result": result.to_dict()}


def render_html(result: SolveResult) -> str:
    payload = json.dumps(tree_payload(result), ensure_ascii=False)
    payload = payload.replace("</", "<\\/")  # never close the <script> early
    s = result.stats
    return _PAGE.format(
        title=html.escape(result.question[:200]),
        answer=html.escape(str(result.answer)),
        strategy=html.escape(result.strategy),
        stopped_by=html.escape(result.stopped_by),
        nodes=s.nodes,
        tokens=s.tokens_generated,
        seconds=s.seconds,
        data=payload,
    )


def write_tree(result: SolveResult, path: str | Path) -> Path:
    """Write the tree as HTML (.html/.htm) or JSON (anything else), atomically."""
    p = Path(path)
    if p.suffix.lower() in (".html", ".htm"):
        atomic_write_text(p, render_html(result))
    else:
        atomic_write_text(p, json.dumps(tree_payload(result), ensure_ascii=False, indent=1))
    return p
