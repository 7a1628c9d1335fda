"""The recipes of docs/howto.rst run: a changed API or a claim that stops
holding fails here, not in a reader's notebook."""

import doctest
from pathlib import Path

HOWTO = Path(__file__).resolve().parents[1] / "docs" / "howto.rst"


def test_howto_recipes_run():
    result = doctest.testfile(str(HOWTO), module_relative=False,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 20
    assert result.failed == 0
