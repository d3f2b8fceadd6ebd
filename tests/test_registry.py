"""The shared registry decorator (xaipipe.registry)."""

import pytest

from xaipipe.errors import XaipipeError
from xaipipe.registry import registrar


def test_registrar_adds_names_sets_class_name_and_refuses_duplicates():
    table: dict = {}
    register = registrar(table, "widget", set_name=True)

    @register("a")
    class A:
        pass

    assert table == {"a": A} and A.name == "a"
    with pytest.raises(XaipipeError, match="widget 'a' registered twice"):
        register("a")(type("B", (), {}))
    plain: dict = {}
    fn = registrar(plain, "rule")("f")(len)
    assert fn is len and plain == {"f": len}


def test_every_project_registry_refuses_a_second_registration():
    from xaipipe.losses import register_term
    from xaipipe.explain.base import register

    with pytest.raises(XaipipeError, match="text relevance method 'lime' registered twice"):
        register("lime")(type("X", (), {}))
    with pytest.raises(XaipipeError, match="loss term 'kd' registered twice"):
        register_term("kd")(len)
