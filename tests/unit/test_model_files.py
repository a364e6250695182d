"""Static checks of uploaded model files (parsed, never run)."""
from __future__ import annotations

import textwrap

import pytest

from chalicelib.errors import Unprocessable
from chalicelib.model_files import check_model_source


def source(text: str) -> bytes:
    return textwrap.dedent(text).encode()


def refused(data: bytes, model_class: str) -> str:
    with pytest.raises(Unprocessable) as caught:
        check_model_source(data, model_class)
    return caught.value.message


GOOD = source(
    """
    from kilele.model import BaseModel, FixedKnob


    class MyModel(BaseModel):
        @staticmethod
        def get_knob_config():
            return {"k": FixedKnob(1)}
    """
)


def test_direct_subclass_parses():
    check_model_source(GOOD, "MyModel")  # no error


def test_subclass_through_module_attribute():
    check_model_source(source("import kilele.model\nclass M(kilele.model.BaseModel): pass\n"), "M")


def test_indirect_subclass_through_another_class_in_the_file():
    data = source(
        """
        from kilele.model import BaseModel

        class Common(BaseModel):
            pass

        class Middle(Common):
            pass

        class Final(object, Middle):
            pass
        """
    )
    check_model_source(data, "Final")


def test_missing_class_lists_the_classes_found():
    message = refused(GOOD + b"\nclass Helper:\n    pass\n", "Other")
    assert message == "class 'Other' is not defined in the model file (classes found: Helper, MyModel)"


def test_missing_class_in_a_file_without_classes():
    assert "(classes found: none)" in refused(b"x = 1\n", "MyModel")


def test_nested_class_is_not_top_level():
    data = source(
        """
        from kilele.model import BaseModel

        def factory():
            class Inner(BaseModel):
                pass
            return Inner
        """
    )
    assert "class 'Inner' is not defined" in refused(data, "Inner")


def test_syntax_error_gives_the_line():
    data = source(
        """
        from kilele.model import BaseModel

        class MyModel(BaseModel)
            pass
        """
    )
    message = refused(data, "MyModel")
    assert message.startswith("the model file does not parse:")
    assert "(line 4)" in message


def test_class_not_deriving_from_base_model():
    data = source(
        """
        class Base:
            pass

        class MyModel(Base):
            pass
        """
    )
    assert refused(data, "MyModel") == "class 'MyModel' must subclass kilele.model.BaseModel"


def test_cyclic_bases_end_without_recursion_error():
    data = source(
        """
        class A(B):
            pass

        class B(A):
            pass
        """
    )
    assert "must subclass kilele.model.BaseModel" in refused(data, "A")


def test_non_utf8_file():
    message = refused(b"# caf\xe9\nclass MyModel(BaseModel): pass\n", "MyModel")
    assert message == "the model file is not UTF-8 text (byte 5)"


def test_null_bytes_do_not_parse_and_the_message_has_no_bogus_line():
    message = refused(GOOD + b"\x00", "MyModel")
    assert message.startswith("the model file does not parse:") and "line None" not in message


def test_deeply_nested_code_is_refused_not_crashed_on():
    message = refused(b"x = " + b"-" * 200_000 + b"1\n", "MyModel")
    assert message == "the model file does not parse: its code is nested too deeply"
