"""fmlib.exercises: verdicts a student can act on, typical mistakes named, the grader's log."""

import json

import pytest
import torch

from fmlib import exercises


def test_check_numbers(capsys):
    assert exercises.check("area", 2.0000001, 2.0, tol=1e-6)
    assert "✅ area" in capsys.readouterr().out
    assert not exercises.check("area", 2.1, 2.0)
    out = capsys.readouterr().out
    assert "❌ area: not quite: outside the tolerance 1e-06" in out
    assert "0.1" not in out and "2.0" not in out  # neither the distance nor the answer
    assert exercises.check("vec", torch.tensor([1.0, 2.0]), [1.0, 2.0])
    assert not exercises.check("vec", [1.0, 2.0, 3.0], [1.0, 2.0])
    assert "expected a number or an array of shape (2,)" in capsys.readouterr().out
    assert not exercises.check("nan", float("nan"), 1.0)
    assert not exercises.check("text", "two", 2.0)
    with pytest.raises(ValueError, match="tol must be >= 0"):
        exercises.check("x", 1, 1, tol=-1)


def test_not_attempted_never_raises(capsys):
    assert not exercises.check("area", None, 2.0)
    assert not exercises.check_choice("trend", None, "up", ("up", "down"))
    out = capsys.readouterr().out
    assert out.count("⏳") == 2 and "not attempted yet" in out


def test_a_typical_mistake_is_named(capsys):
    mistakes = {"the Jacobian factor |det J| is missing": 0.5, "time runs the other way": 4.0}
    assert not exercises.check("density", 0.5, 2.0, tol=1e-9, mistakes=mistakes)
    assert "not quite: the Jacobian factor |det J| is missing" in capsys.readouterr().out
    assert not exercises.check("density", 3.0, 2.0, tol=1e-9, mistakes=mistakes)
    assert "outside the tolerance" in capsys.readouterr().out  # no mistake matches: plain
    # A correct answer wins even when a mistake gives the same value.
    assert exercises.check("density", 2.0, 2.0, mistakes={"never shown": 2.0})


def test_check_choice(capsys):
    options = ("increases", "decreases", "stays the same")
    assert exercises.check_choice("error with steps", "decreases", "decreases", options)
    assert not exercises.check_choice(
        "error with steps",
        "increases",
        "decreases",
        options,
        mistakes={"increases": "more steps means smaller steps, so less error per step"},
    )
    assert "more steps means smaller steps" in capsys.readouterr().out
    assert not exercises.check_choice("error with steps", "stays the same", "decreases", options)
    out = capsys.readouterr().out
    assert "not what the measurement shows" in out and "decreases" not in out
    assert not exercises.check_choice("error with steps", "Decreases", "decreases", options)
    assert "answer with one of" in capsys.readouterr().out
    with pytest.raises(ValueError, match="expected must be one of"):
        exercises.check_choice("x", "a", "c", ("a", "b"))


def test_verdicts_go_to_the_grade_log(tmp_path, monkeypatch):
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv(exercises.GRADE_LOG, str(log))
    exercises.check("one", 1.0, 1.0)
    exercises.check("two", 3.0, 1.0)
    exercises.check_choice("three", None, "a", ("a", "b"))
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["exercise"], r["verdict"]) for r in records] == [
        ("one", "correct"),
        ("two", "wrong"),
        ("three", "not attempted"),
    ]


KEYED_CHECK = """
secret = 2 * side
print(f"the answer is {secret}")  # an instructor's check may print; the keyed run must not
_ = exercises.check("area", answer, secret, tol=1e-9, mistakes={"that is the side": side})
"""


def _keyed(tmp_path, monkeypatch, answer, export=("secret",)):
    key = tmp_path / "key.json"
    entry = {"notebook": "x.ipynb", "code": exercises.seal(KEYED_CHECK), "export": list(export)}
    key.write_text(json.dumps({"area": entry}))
    monkeypatch.setenv(exercises.ANSWER_KEY, str(key))
    namespace = {"exercises": exercises, "side": 3.0, "answer": answer}
    exec('_ = exercises.check("area", answer)', namespace)  # what the student edition runs
    return namespace


def test_a_keyed_check_shows_the_verdict_only(tmp_path, monkeypatch, capsys):
    assert exercises.unseal(exercises.seal(KEYED_CHECK)) == KEYED_CHECK
    namespace = _keyed(tmp_path, monkeypatch, 6.0)
    assert capsys.readouterr().out == "✅ area: correct (within 1e-09).\n"
    assert namespace["_"] is True and namespace["secret"] == 6.0  # exported for later cells
    exercises.require_correct("area")
    namespace = _keyed(tmp_path, monkeypatch, 3.0, export=())
    out = capsys.readouterr().out
    assert out == "❌ area: not quite: that is the side\n" and "secret" not in namespace
    with pytest.raises(AssertionError, match="area: wrong: not quite"):
        exercises.require_correct("area")
    _keyed(tmp_path, monkeypatch, None)
    assert "⏳ area: not attempted yet" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="not attempted"):
        exercises.require_correct("area")
    with pytest.raises(AssertionError, match="its check did not run"):
        exercises.require_correct("never checked")


def test_the_course_answer_key_covers_every_exercise():
    from pathlib import Path

    import nbformat

    from fmlib import answer_key, editions

    root = Path(__file__).resolve().parent.parent
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        for ex in editions.exercises(nbformat.read(path, as_version=4)):
            assert ex.name in answer_key.KEY, f"{path.name}: {ex.name!r} (run make student)"
            assert "exercises." in exercises.unseal(answer_key.KEY[ex.name]["code"])
