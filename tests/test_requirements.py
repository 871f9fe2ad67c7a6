from shared.requirements import ROOT, render


def test_requirements_txt_matches_pyproject() -> None:
    assert (ROOT / "requirements.txt").read_text() == render(), "run `make requirements`"
