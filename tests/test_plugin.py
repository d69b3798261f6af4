"""The example outside package (tests/example_plugin) plugs a method in through the
`bench.methods` entry point, with no change to bench, and passes the conformance check."""

import json
import os
from importlib.metadata import PackageNotFoundError, version

import pytest
from typer.testing import CliRunner

from bench import registry
from bench.cli import app
from bench.errors import BenchError
from bench.tools.conformance import Check, check_method, raise_on_failure

runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def plugin_installed():
    try:
        version("bench-example-plugin")
    except PackageNotFoundError:
        message = "install it: pip install -e tests/example_plugin"
        if os.environ.get("CI"):
            pytest.fail(f"the example plugin is not installed; {message}")
        pytest.skip(f"the example plugin is not installed; {message}")


def test_plugin_is_discovered_like_a_built_in():
    assert "example_suffix" in registry.names(registry.METHODS)
    assert "example_suffix" in runner.invoke(app, ["methods"]).stdout


def test_plugin_runs_on_the_micro_suite(tmp_path):
    result = runner.invoke(
        app,
        [
            "run",
            "--method",
            "example_suffix",
            "--suite",
            "micro",
            "--runs",
            str(tmp_path),
            "--json",
            "--set",
            'suffix="oil painting"',
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["generated"] == 2 and out["scored_units"] == 1
    assert (tmp_path / "micro" / out["run_id"] / "red_mug/replicate-0/suffix.safetensors").is_file()


def test_plugin_passes_the_conformance_check():
    checks = check_method("example_suffix")
    assert all(c.passed for c in checks), checks
    assert len(checks) == 11
    assert "implements bench.plugin.Method" in [c.name for c in checks]


def test_conformance_catches_an_incomplete_method(monkeypatch):
    from bench_example_plugin import suffix

    monkeypatch.delattr(suffix.SuffixPrompt, "generate")
    checks = {c.name: c.passed for c in check_method("example_suffix")}
    assert checks["has generate()"] is False
    assert checks["implements bench.plugin.Method"] is False


def test_conformance_reports_failures():
    with pytest.raises(BenchError, match="fit leaves the backbone unchanged failed"):
        raise_on_failure([Check("fit leaves the backbone unchanged", False)])


def test_conformance_catches_a_method_that_mutates_the_backbone(monkeypatch):
    from bench_example_plugin import suffix

    def bad_fit(self, ctx):
        ctx.backbone.pipe.unet.conv_in.bias.data.add_(1.0)
        return {}

    monkeypatch.setattr(suffix.SuffixPrompt, "fit", bad_fit)
    checks = {c.name: c.passed for c in check_method("example_suffix")}
    assert checks["fit leaves the backbone unchanged"] is False


@pytest.mark.slow
def test_conformance_checks_a_packed_fit_against_fitting_each_unit_alone(monkeypatch):
    import dataclasses

    from bench.methods.dreambooth_lora import DreamBoothLoRA

    name = "a pack of two units fits each as fitting it alone does"
    assert {c.name: c.passed for c in check_method("dreambooth_lora")}[name] is True
    fit_pack = DreamBoothLoRA.fit_pack

    def crossed(self, ctxs):  # in a pack of two, each unit's folder gets the other unit's fit
        if len(ctxs) != 2:
            return fit_pack(self, ctxs)
        first, second = ctxs
        return fit_pack(
            self,
            [
                dataclasses.replace(first, replicate=second.replicate),
                dataclasses.replace(second, replicate=first.replicate),
            ],
        )

    monkeypatch.setattr(DreamBoothLoRA, "fit_pack", crossed)
    assert {c.name: c.passed for c in check_method("dreambooth_lora")}[name] is False


def test_the_example_plugin_imports_only_the_public_plugin_module():
    import ast
    import inspect

    from bench.methods.dreambooth_lora import DreamBoothLoRA
    from bench.methods.textual_inversion import TextualInversion
    from bench.plugin import Method
    from bench_example_plugin import suffix

    tree = ast.parse(inspect.getsource(suffix))
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert {m for m in modules if m.split(".")[0] == "bench"} == {"bench.plugin"}
    for method in (suffix.SuffixPrompt(), DreamBoothLoRA(), TextualInversion()):
        assert isinstance(method, Method)
    assert not isinstance(object(), Method)
