"""The unit tests of initiation/termination functions (maestromotif.options.program.init_term_tests), run
on untrusted code in the real sandbox worker, and the layer they make."""
from __future__ import annotations

import pytest

from maestromotif.options.program import (INIT_TERM_METHODS, init_term_layer, init_term_tests, method_source,
                                          reference_init_term)
from maestromotif.options.sandbox import Sandbox


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(timeout_s=2.0, memory_mb=256) as box:
        yield box


def reference(method: str) -> str:
    return method_source(reference_init_term(), method)


def test_the_reference_functions_pass(sandbox):
    lines, passed = init_term_tests({m: reference(m) for m in INIT_TERM_METHODS}, sandbox)
    assert passed == {"skill_precondition": True, "skill_termination": True}
    assert lines and all(line.endswith(": ok") for line in lines)


def test_numpy_style_code_passes_and_a_colour_blind_one_fails(sandbox):
    numpy_style = '''def skill_precondition(self, char_ascii_encodings, char_ascii_colors, num_items,
                       color_map):
    shop = ((char_ascii_encodings == 64) & (char_ascii_colors == color_map["@"])).any()
    altar = ((char_ascii_encodings == 95) & (char_ascii_colors == color_map["_"])).any()
    return altar and num_items > 0, shop and num_items > 0'''
    assert init_term_tests({"skill_precondition": numpy_style}, sandbox)[1] == {"skill_precondition": True}
    blind = numpy_style.replace(' & (char_ascii_colors == color_map["@"])', "")
    lines, passed = init_term_tests({"skill_precondition": blind}, sandbox)
    assert passed == {"skill_precondition": False}
    assert any("a red '@'" in line and line.endswith("WRONG") for line in lines)


@pytest.mark.parametrize("body,expected", [
    ("    return open('/etc/passwd').read() == ''", "not allowed in programs"),
    ("    while True:\n        pass", "time limit"),
    ("    return 1 / 0", "ZeroDivisionError"),
])
def test_bad_code_fails_with_the_reason_and_the_sandbox_survives(sandbox, body, expected):
    code = ("def skill_termination(self, skill, skill_time, current_depth, previous_depth, preconditions):\n"
            + body)
    lines, passed = init_term_tests({"skill_termination": code}, sandbox)
    assert passed == {"skill_termination": False}
    assert expected in "\n".join(lines)
    _, passed = init_term_tests({"skill_termination": reference("skill_termination")}, sandbox)
    assert passed["skill_termination"]  # the worker is usable again


def test_a_missing_method_is_the_reference_one():
    layer = init_term_layer({"skill_termination": "def skill_termination(self, *a):\n    return True"})
    assert "return True" in layer and "shopkeeper_color" in layer
