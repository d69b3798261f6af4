"""Bad input is refused before anything is written, with one line that names the value and the
fix (exit code 2 at the command line)."""

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.errors import BenchError

runner = CliRunner()


@pytest.mark.parametrize(
    "template, complaint",
    [
        ("a {token} {class} in {place}", "only the placeholders"),
        ("a {token} {class} {", "only the placeholders"),
        ("a {token} {class} }", "only the placeholders"),
        ("a {token} {{class}}", "only the placeholders"),
        ("a {token} dog", "must contain {token} and {class} once each"),
    ],
)
def test_prompt_templates_use_only_token_and_class(template, complaint):
    from bench.data.prompts import Prompt, PromptSet

    with pytest.raises(BenchError, match=complaint):
        PromptSet("mine", (Prompt("p", template),))


def test_ids_with_a_trailing_newline_are_refused():
    from bench.data.prompts import Prompt, PromptSet
    from bench.data.subjects import Subject

    with pytest.raises(BenchError, match="prompt id 'p\\\\n'"):
        PromptSet("mine", (Prompt("p\n", "a {token} {class}"),))
    with pytest.raises(BenchError, match="id must be letters, digits"):
        Subject(id="dog\n", class_noun="dog", kind="live", images=(), token="sks")


@pytest.mark.parametrize("method", ["dreambooth_lora", "textual_inversion"])
@pytest.mark.parametrize("lr", ["inf", "nan", "0", "-1e-4"])
def test_learning_rates_must_be_finite_and_positive(method, lr, tmp_path):
    runs = tmp_path / "runs"
    value = {"inf": "inf", "nan": "nan"}.get(lr, lr)
    result = runner.invoke(
        app,
        ["run", "--method", method, "--suite", "micro", "--runs", str(runs), "--set",
         f"lr={value}"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "lr" in result.output and "finite and > 0" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not runs.exists() or not any(runs.rglob("*.json"))


def test_a_prompt_file_with_an_unknown_placeholder_writes_nothing(tmp_path):
    prompts = tmp_path / "mine.toml"
    prompts.write_text('[[prompt]]\ntemplate = "a {token} {class} on {planet}"\n')
    runs = tmp_path / "runs"
    result = runner.invoke(
        app,
        ["run", "--method", "base", "--suite", "micro", "--runs", str(runs), "--prompt-file",
         str(prompts)],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "may use only the placeholders {token} and {class}" in result.output
    assert not runs.exists()
