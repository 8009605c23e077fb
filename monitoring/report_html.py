"""Make a drift report page safe to open although it shows logged values.

Category strings come from callers of ``/predict`` and end up in the report. Evidently 0.7's
template writes the report's data as JavaScript (``var id = <json>;``) inside a ``<script>``
without escaping it, so a logged ``</script><script>...`` would end that block and run. Two
layers, each enough on its own:

- every ``<``, ``>``, ``&`` and U+2028/U+2029 inside the data block is written as a ``\\uXXXX``
  escape, which JavaScript reads back as the same character, so the data can close nothing;
- the page carries a Content-Security-Policy listing the sha256 of each of the template's own
  inline scripts: a script that is not one of them does not run.

The server adds its own policy (``sandbox allow-scripts``, see ``REPORT_POLICY``); browsers
enforce both. What the project itself writes into HTML goes through ``html.escape``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re

# Evidently's data block: json.dumps escapes newlines inside strings, so each `var` line holds
# its JSON whole and a raw newline only ever ends one.
_DATA_BLOCK = re.compile(
    r"<script>\n(    var (\w+) = [^\n]*;\n    var additional_graphs_\2 = [^\n]*;\n)</script>"
)
_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
_JS_UNSAFE = re.compile("[<>&\u2028\u2029]")
# The template's inline scripts: the data, `var global = globalThis`, the library, the drawing.
TEMPLATE_SCRIPTS = 4

# Served with every report: scripts run, but in an opaque origin, with no network, no forms,
# no plugins and no framing. Styles, fonts and images stay inline (the report is one file).
REPORT_POLICY = (
    "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; img-src data:; font-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
# Everything else the monitor serves (metrics, health, the report index) runs no script at all.
PAGE_POLICY = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


class UnsafeReport(ValueError):
    """Evidently's page is not shaped as expected, so its safety cannot be established."""


def escape_script_data(text: str) -> str:
    """``text`` with every character that could end a script block or a JavaScript line
    written as a ``\\uXXXX`` escape (valid in JSON strings and in JavaScript)."""
    return _JS_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def script_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def safe_evidently_page(body: str, banner: str) -> str:
    """Evidently's HTML with its data escaped, a policy pinning its scripts by hash, and
    ``banner`` (HTML the caller has escaped) at the top of the body."""
    blocks = list(_DATA_BLOCK.finditer(body))
    if len(blocks) != 1:
        raise UnsafeReport(f"expected one data block in Evidently's page, found {len(blocks)}")
    block = blocks[0]
    body = body[: block.start(1)] + escape_script_data(block.group(1)) + body[block.end(1) :]
    scripts = _SCRIPT.findall(body)
    if len(scripts) != TEMPLATE_SCRIPTS:
        raise UnsafeReport(
            f"expected {TEMPLATE_SCRIPTS} scripts in Evidently's page, found {len(scripts)}"
        )
    policy = (
        f"script-src {' '.join(dict.fromkeys(map(script_hash, scripts)))}; "
        "object-src 'none'; base-uri 'none'"
    )
    meta = f'<meta http-equiv="Content-Security-Policy" content="{html.escape(policy)}">'
    return _insert(_insert(body, "<head>", meta), "<body>", banner)


def plain_page(banner: str) -> str:
    """A page with only ``banner`` (when no column could be tested)."""
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f'<meta http-equiv="Content-Security-Policy" content="{PAGE_POLICY}">'
        f"</head><body>{banner}</body></html>"
    )


def _insert(page: str, tag: str, fragment: str) -> str:
    at = page.find(tag)
    if at < 0:
        raise UnsafeReport(f"no {tag} in Evidently's page")
    at += len(tag)
    return page[:at] + fragment + page[at:]
