"""The classroom in Czech as well as English (issue 16): the language from the URL or the browser, catalogues complete and
compiled, Czech numbers and plural forms, every page rendered in Czech, the English pages unchanged."""

from __future__ import annotations

import gettext
import json
import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from streamlit.testing.v1 import AppTest

import app
from classroom import data, lessons, notebooks, tensor_lab
from tests.markdown import shown
from ui import access, i18n, state
from ui import tutorial as tutorial_page

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
PO = ROOT / "locale" / "cs" / "LC_MESSAGES" / "classroom.po"
MO = PO.with_suffix(".mo")
KEYWORDS = {"_": None, "ngettext": (1, 2), "N_": None}  # as the Makefile's `messages` extracts them
PLACEHOLDER = re.compile(r"(?<!%)\{[^{}]*\}")  # str.format's fields; plotly's %{x} is not one
PAGES = [path for path, _title, _icon in app.LESSONS] + ["pages/lab.py", "pages/runs.py"]
TIMEOUT = 120


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A fresh RunManager on temporary runs/ and data/ folders (no CIFAR-10), no token; its runs stopped afterwards."""
    monkeypatch.setenv("CLASSROOM_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("CLASSROOM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CLASSROOM_TOKEN", raising=False)
    monkeypatch.setattr(state, "answers", state.Answers())
    state.manager.clear()
    yield tmp_path
    state.manager().shutdown()
    state.manager.clear()


def open_page(path: str, lang: str | None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if lang:
        at.query_params["lang"] = lang
    at.switch_page(path).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(block) -> list[str]:
    """What a block of the page says: headings, text, alerts, captions, and the labels of its widgets."""
    said = [e.value for kind in ("title", "header", "subheader", "markdown", "caption") for e in getattr(block, kind)]
    said += [e.value for kind in ("info", "warning", "success", "error") for e in getattr(block, kind)]
    said += [
        e.label
        for kind in ("button", "radio", "selectbox", "number_input", "slider", "toggle", "text_input")
        for e in getattr(block, kind)
    ]
    return said + [e.label for e in block.get("expander")]


# --- choosing the language --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("cs-CZ,cs;q=0.9,en;q=0.8", "cs"),
        ("en-US,en;q=0.9,cs;q=0.8", "en"),
        ("de-DE,de;q=0.9,cs;q=0.5", "cs"),  # the first of ours, past languages we lack
        ("en;q=0.5, cs;q=0.8", "cs"),  # by weight, not by order
        ("cs;q=0, en", "en"),  # q=0: not wanted
        ("CS", "cs"),
        ("en;q=abc, cs;q=0.1", "cs"),  # an unreadable weight counts as 0
        ("de, fr", None),
        ("", None),
        (None, None),
    ],
)
def test_accept_language_picks_the_first_of_our_languages_by_weight(header, expected):
    assert i18n.from_accept_language(header) == expected


def test_outside_a_page_the_language_is_english():
    assert i18n.language() == "en" and i18n._("Lessons") == "Lessons"


# --- numbers and plural forms ------------------------------------------------------------------------------------


def test_czech_numbers_have_a_decimal_comma_and_no_break_spaces():
    assert i18n.percent(0.538, lang="cs") == "53,8\u00a0%"
    assert i18n.percent(0.538, lang="en") == "53.8 %"  # as the English pages always wrote it
    assert i18n.percent(0.54, 0, space="", lang="en") == "54%" and i18n.percent(0.54, 0, space="", lang="cs") == "54\u00a0%"
    assert i18n.number(12345.67, 1, lang="cs") == "12\u00a0345,7" and i18n.number(12345.67, 1, lang="en") == "12,345.7"
    assert i18n.number(2000, 0, lang="cs") == "2000"  # four digits: no space (docs/glossary-cs.md)
    assert i18n.number(1.5, 1, plus=True, lang="cs") == "+1,5" and i18n.number(-1.5, 1, plus=True, lang="cs") == "-1,5"
    assert i18n.short(0.001, lang="cs") == "0,001" and i18n.short(0.001, lang="en") == "0.001"
    assert i18n.scientific(1.25e-7, lang="cs") == "1,2e-07"


def test_czech_has_three_plural_forms():
    singular, plural = (
        "{count} run, {active} going now. Runs from before a server restart are read back from disk.",
        "{count} runs, {active} going now. Runs from before a server restart are read back from disk.",
    )
    counts = (1, 2, 4, 5, 0, 22, 25)
    said = [i18n.catalogue("cs").ngettext(singular, plural, n).format(count=n, active=0).split(",")[0] for n in counts]
    assert said == ["1 běh", "2 běhy", "4 běhy", "5 běhů", "0 běhů", "22 běhů", "25 běhů"]  # Czech, unlike Polish: 22 běhů
    assert [i18n.catalogue("en").ngettext(singular, plural, n).split(",")[0] for n in (1, 2, 5)] == [
        "{count} run",
        *["{count} runs"] * 2,
    ]
    assert "Plural-Forms: nplurals=3; plural=(n==1) ? 0 : (n>=2 && n<=4) ? 1 : 2;" in PO.read_text(encoding="utf-8")


# --- the catalogues ----------------------------------------------------------------------------------------------


def extracted() -> Catalog:
    """Every marked interface string in the sources, as `make messages` extracts them (babel.cfg, the Makefile's keywords)."""
    with open(ROOT / "babel.cfg") as f:
        method_map, options_map = parse_mapping_cfg(f)
    catalog = Catalog()
    for _file, _line, message, comments, context in extract_from_dir(ROOT, method_map, options_map, keywords=KEYWORDS):
        catalog.add(message, None, auto_comments=comments, context=context)
    return catalog


def test_every_interface_string_has_a_czech_translation():
    template = extracted()
    with open(PO, "rb") as f:
        czech = read_po(f, locale="cs")
    assert len(template) > 300  # the extraction found the app's strings (a broken babel.cfg finds none)
    missing = [m.id for m in template if m.id and (czech.get(m.id) is None or not all(_strings(czech.get(m.id))))]
    fuzzy = [m.id for m in czech if m.id and m.fuzzy]
    stale = [m.id for m in czech if m.id and template.get(m.id) is None]
    assert not missing, f"no Czech for {missing[:5]}: run `make messages`, translate, `make catalogues`"
    assert not fuzzy, f"fuzzy (check, then drop the flag): {fuzzy[:5]}"
    assert not stale, f"no longer in the sources: {stale[:5]}: run `make messages`"
    for m in czech:
        ids = [m.id] if isinstance(m.id, str) else list(m.id)
        wanted = set(PLACEHOLDER.findall(" ".join(ids)))
        assert all(set(PLACEHOLDER.findall(s)) == wanted for s in _strings(m)), (m.id, m.string)


def _strings(message) -> list[str]:
    return [message.string] if isinstance(message.string, str) else list(message.string)


def test_the_compiled_catalogue_is_the_current_po():
    """locale/cs/.../classroom.mo (committed: the app runs without a build step) says what classroom.po says."""
    with open(PO, "rb") as f:
        czech = read_po(f, locale="cs")
    with open(MO, "rb") as f:
        compiled = gettext.GNUTranslations(f)
    for m in czech:
        if not m.id:
            continue
        if m.pluralizable:
            for n, form in ((1, 0), (2, 1), (5, 2)):  # 1 běh, 2 běhy, 5 běhů
                assert compiled.ngettext(m.id[0], m.id[1], n) == m.string[form], f"run `make catalogues`: {m.id[0]}"
        else:
            assert compiled.gettext(m.id) == m.string, f"run `make catalogues`: {m.id!r}"


def test_the_czech_class_names_are_the_glossary_s():
    rows = re.findall(
        r"^\| (\S[^|]*?) \| (\S[^|]*?) \| \| (\S[^|]*?) \| (\S[^|]*?) \|$", (ROOT / "docs" / "glossary-cs.md").read_text(), re.M
    )
    glossary = {}
    for cifar, cifar_cs, shape, shape_cs in rows[1:]:  # the header row first
        for name in re.findall(r"[a-z-]+", cifar):  # "airplane (plane)": both spellings
            glossary[name] = cifar_cs
        glossary[shape] = shape_cs
    assert glossary == i18n.CLASS_NAMES["cs"]
    assert set(data.CIFAR10_CLASSES) | set(data.SHAPES_CLASSES) <= set(glossary)


# --- pages in Czech ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_in_czech(server, path):
    at = open_page(path, "cs")
    assert tutorial_page.runs.wait(TIMEOUT)  # lesson 7's run of the Czech lesson ends here, not in a later test
    assert not at.error, [e.value for e in at.error]
    assert at.session_state["lang"] == "cs"
    english = next((title for page, title, _icon in app.LESSONS if page == path), None)
    if english:  # a lesson: the Czech lesson file, whose title is the page's title in the sidebar
        assert at.title[0].value == lessons.load(lessons.lesson_files()[PAGES.index(path)].stem, "cs").title
        assert at.title[0].value == i18n.catalogue("cs").gettext(english)
    czech = i18n.catalogue("cs")
    untranslated = [t for t in texts(at.main) if czech.gettext(t) != t]
    # No interface string of the catalogue left in English on the page or in its sidebar
    untranslated += [t for t in texts(at.sidebar) if czech.gettext(t) != t]
    assert not untranslated, untranslated


def test_the_language_survives_a_page_switch_and_english_is_the_default(server):
    at = open_page("pages/lab.py", "cs")
    assert at.title[0].value == "Natrénujte CNN"
    at.switch_page("pages/runs.py").run()  # the URL lost ?lang= on the way: the session keeps it (and puts it back)
    assert at.title[0].value == "Všechny běhy" and at.query_params["lang"] == "cs"
    assert open_page("pages/runs.py", None).title[0].value == "All runs"  # no ?lang=, no Accept-Language: English


def test_a_run_in_czech_shows_its_status_charts_and_classes_in_czech(server):
    at = open_page("pages/lab.py", "cs")
    for field, value in (("epochs", 1), ("batch_size", 64), ("lr", 0.02), ("max_steps", 40), ("log_interval", 10)):
        at.number_input(key=f"lab.tutorial.{field}").set_value(value)
    at.run()
    next(b for b in at.button if b.label == "Spustit trénování").click().run()
    run_id = at.session_state["lab_run"]
    assert state.manager().wait(run_id, timeout=TIMEOUT).status == "finished"
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.exception]
    said = shown(" ".join(texts(at.main)))
    assert "**dokončen** · běh" in said and "shapes (syntetická)" in said  # the status line, the data set's label
    assert "Výsledky testu po epoše 1" in said and "Ukázkové testovací obrázky" in said
    charts = {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    assert charts["lab-loss"]["layout"]["title"]["text"] == "Trénovací ztráta"
    per_class = charts["lab-per-class"]
    assert per_class["layout"]["title"]["text"] == "Testovací přesnost pro jednotlivé třídy"
    assert list(per_class["data"][0]["x"]) == [i18n.CLASS_NAMES["cs"][c] for c in data.SHAPES_CLASSES]  # kruh, prstenec, …
    assert "," in per_class["data"][0]["text"][0]  # the bars' values with a decimal comma
    assert any(c.value.startswith("Accuracy of the network on the") for c in at.code)  # the tutorial's lines, as it prints them
    accuracy = next(m for m in at.metric if m.label.startswith("Testovací přesnost"))
    assert re.fullmatch(r"\d+,\d\u00a0%", accuracy.value)  # 53,8 %
    runs = open_page("pages/runs.py", "cs")
    assert "1 běh, právě běží: 0." in " ".join(c.value for c in runs.main.caption)
    assert list(runs.dataframe[0].value.columns)[:2] == ["běh", "stav"] and list(runs.dataframe[0].value["stav"]) == ["dokončen"]


def test_a_question_answered_in_english_reads_answered_in_czech(server):
    at = open_page("pages/lesson_3_autograd.py", "en")
    right = next(o for o in lessons.load("03_autograd").questions[0].options if o.correct)
    at.radio(key="03_autograd-q1").set_value(right.text)
    next(b for b in at.button if b.label == "Check").click().run()
    at.query_params["lang"] = "cs"
    at.run()
    czech = next(o for o in lessons.load("03_autograd", "cs").questions[0].options if o.correct)
    assert f"Správně: {czech.why}" in [s.value for s in at.success]
    assert at.radio(key="03_autograd-q1").value == czech.text


def test_the_sign_in_box_speaks_czech_and_switches_language(server, monkeypatch):
    monkeypatch.setenv("CLASSROOM_TOKEN", "t" * 24)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["lang"] = "cs"
    at.run()
    assert any("Tato učebna je soukromá" in m.value for m in at.markdown)
    assert any(b.label == "Přihlásit se" for b in at.button)
    at.segmented_control(key=i18n.SWITCH).set_value("en").run()
    assert any("This classroom is private" in m.value for m in at.markdown) and at.query_params["lang"] == "en"
    assert access.ROLE not in at.session_state  # still signed out: the switch only changed the language


def test_the_tensor_playground_explains_in_czech():
    assert tensor_lab.apply("a + b", (2, 3), (4,), "cs").explanation.startswith("Broadcasting zarovná tvary zprava")
    assert "12 values" in tensor_lab.apply("a.reshape(b.shape)", (3, 4), (5,)).explanation  # English by default
    with pytest.raises(ValueError, match="není celé číslo"):
        tensor_lab.parse_shape("2, a", "cs")


def test_a_czech_lesson_notebook_is_czech_throughout():
    text = lessons.path("01_why", "cs").read_text(encoding="utf-8")
    cells = notebooks.lesson_notebook("01_why", text, "cs").cells
    assert cells[0].source.startswith(
        "# Proč PyTorch\n\nLekce 1 z 8, vygenerovaná aplikací Torch Classroom ze souboru `lessons/cs/01_why.md`"
    )
    assert cells[1].source.startswith("# Co aplikace udělá")
    assert any(c.source.startswith("**Ověřte si: otázka 1.**") and "Ukázat odpověď" in c.source for c in cells)
    assert notebooks.lesson_notebook("01_why").cells[0].source.startswith("# Why PyTorch\n\nLesson 1 of 8, generated by")


# --- the English pages, unchanged --------------------------------------------------------------------------------


def test_the_english_pages_say_what_they_always_said(server):
    lab = open_page("pages/lab.py", "en")
    assert lab.title[0].value == "Train the CNN" and any(b.label == "Start training" for b in lab.button)
    assert (
        lab.main.caption[0].value
        == "The CIFAR-10 tutorial's network, trained live in the background: switch pages, the run keeps going."
    )
    assert lab.radio(key="lab.source").value == "shapes" and "shapes (synthetic)" in lab.radio(key="lab.source").options
    lesson = open_page("pages/lesson_2_tensors.py", "en")
    assert lesson.title[0].value == "Tensors"
    assert lesson.main.caption[0].value == "Lesson 2 of 8 · every code block on this page ran when the page was opened"
    assert "[Skip to the check questions (3)](#check-yourself-1)" in [m.value for m in lesson.markdown]
    assert [s.value for s in lesson.subheader][:1] == ["Check yourself 1"]
    runs = open_page("pages/runs.py", "en")
    assert runs.title[0].value == "All runs" and runs.info[0].value == "No runs yet on this server. Start one in the lab."
