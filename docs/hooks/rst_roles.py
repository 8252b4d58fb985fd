"""MkDocs hook: tgraph's docstrings use Sphinx roles (:class:`X`, :func:`~a.b.f`); after
mkdocstrings renders them as ``:class:<code>X</code>``, drop the role and a leading ``~``
(Sphinx's "last component only") so the API pages read as plain code."""

from __future__ import annotations

import re

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|data|attr|mod|exc|obj|math):(?=<code>)")
_TILDE = re.compile(r"<code>~(?:[\w.]+\.)?(\w+)</code>")


def on_page_content(html: str, **kwargs: object) -> str:
    return _TILDE.sub(r"<code>\1</code>", _ROLE.sub("", html))
