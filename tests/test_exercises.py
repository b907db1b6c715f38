"""fmlib.exercises: verdicts a student can act on, typical mistakes named, the grader's log."""

import json

import pytest
import torch

from fmlib import exercises


def test_check_numbers(capsys):
    assert exercises.check("area", 2.0000001, 2.0, tol=1e-6)
    assert "✅ area" in capsys.readouterr().out
    assert not exercises.check("area", 2.1, 2.0)
    assert "❌ area: off by 0.1" in capsys.readouterr().out
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
    assert "off by 1" in capsys.readouterr().out  # no mistake matches: the plain message
    # A correct answer wins even when a mistake gives the same value.
    assert exercises.check("density", 2.0, 2.0, mistakes={"never shown": 2.0})


def test_check_choice(capsys):
    options = ("increases", "decreases", "stays the same")
    assert exercises.check_choice("error with steps", "decreases", "decreases", options)
    assert not exercises.check_choice(
        "error with steps", "increases", "decreases", options,
        mistakes={"increases": "more steps means smaller steps, so less error per step"},
    )  # fmt: skip
    assert "more steps means smaller steps" in capsys.readouterr().out
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
        ("one", "correct"), ("two", "wrong"), ("three", "not attempted"),
    ]  # fmt: skip
