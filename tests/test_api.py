"""The public API of `import seglab`."""

from __future__ import annotations


def test_public_api_names_resolve() -> None:
    import seglab

    for name in seglab.__all__:
        assert getattr(seglab, name) is not None, name
