"""The accessibility check itself: it must see a serious problem when there is one (otherwise
a broken injection or a wrong rule set would make every journey pass vacuously)."""

from __future__ import annotations

import pytest

BROKEN_PAGE = """<!doctype html><html><head><title>Page fautive</title></head><body>
<main><h1>Formulaire</h1><form><input type="text" name="nom"></form>
<p style="color:#bbb;background:#fff">Texte peu contrasté</p></main></body></html>"""


def test_axe_check_reports_serious_violations(page, axe_check) -> None:
    page.set_content(BROKEN_PAGE)
    with pytest.raises(AssertionError) as failure:
        axe_check(page)
    message = str(failure.value)
    for rule in ("label", "color-contrast", "html-has-lang"):
        assert f"] {rule}:" in message, message
