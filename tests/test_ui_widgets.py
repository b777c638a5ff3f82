"""convmix.ui.widgets.choice: translated option labels, one widget per language, the choice carried
across a language switch and written to the URL as a language-neutral value."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _app():
    import streamlit as st

    from convmix.i18n import set_language
    from convmix.ui.widgets import choice, url_notes

    set_language(st.session_state.get("test_lang", "en"))
    names = {"en": {"a": "apple", "b": "banana", "c": "cherry"},
             "zh": {"a": "苹果", "b": "香蕉", "c": "樱桃"}}[st.session_state.get("test_lang", "en")]
    one = choice(st.selectbox, "fruit", ["a", "b", "c"], key="fruit", format_func=names.get, default="a")
    many = choice(st.multiselect, "fruits", ["a", "b", "c"], key="fruits", format_func=names.get,
                  default=["a"], multi=True)
    kept = choice(st.radio, "local", ["a", "b"], key="local", format_func=names.get, default="a", url=False)
    for note in url_notes():
        st.warning(note)
    st.write(f"chosen {one} {','.join(many)} {kept}")


def _run(query=None, lang="en"):
    at = AppTest.from_function(_app)
    at.session_state["test_lang"] = lang
    for k, v in (query or {}).items():
        at.query_params[k] = v
    return at.run()


def test_defaults_leave_the_url_clean():
    at = _run()
    assert at.markdown[-1].value == "chosen a a a"
    assert dict(at.query_params) == {}


def test_the_url_names_options_by_value_in_every_language():
    at = _run({"fruit": "c", "fruits": "b,c"}, lang="zh")
    assert at.markdown[-1].value == "chosen c b,c a"
    assert at.selectbox(key="fruit__zh").value == "c"
    assert at.query_params["fruit"] == "c" and at.query_params["fruits"] == "b,c"


def test_a_choice_survives_a_language_switch():
    at = _run()
    at.selectbox(key="fruit__en").set_value("b").run()
    at.multiselect(key="fruits__en").set_value(["c"]).run()
    at.radio(key="local__en").set_value("b").run()
    assert at.query_params["fruit"] == "b" and "local" not in at.query_params
    at.session_state["test_lang"] = "zh"
    at.run()
    assert at.selectbox(key="fruit__zh").value == "b"
    assert at.multiselect(key="fruits__zh").value == ["c"]
    assert at.radio(key="local__zh").value == "b"
    assert at.markdown[-1].value == "chosen b c b"
    assert at.query_params["fruit"] == "b"  # still the value, not 香蕉


def test_a_bad_url_value_is_told_and_dropped():
    at = _run({"fruit": "durian](http://x)", "fruits": "a,zzz"})
    assert at.markdown[-1].value == "chosen a a a"
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 2 and all("is not one of this menu's choices" in w for w in warnings)
    assert not any("](" in w for w in warnings)
    assert "fruit" not in at.query_params and "fruits" not in at.query_params
